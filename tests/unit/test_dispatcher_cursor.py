"""Which repairs owe Slack or Jira a message: the history cursor and the phase."""

from __future__ import annotations

from repairbot.operator.dispatcher import owed


def repair(history: int, phase: str, deliveries: dict | None = None) -> dict:
    entries = [{"step": "cordon", "outcome": "done", "at": "2026-11-22T10:00:00Z"}] * history
    return {"metadata": {"name": "r"}, "status": {"phase": phase, "history": entries, "deliveries": deliveries or {}}}


def test_new_steps_are_owed() -> None:
    assert owed(repair(3, "Draining", {"slack": {"sent": 2, "phase": "Draining"}}), "slack")


def test_a_phase_change_is_owed_even_without_new_steps() -> None:
    assert owed(repair(3, "Succeeded", {"jira": {"sent": 3, "phase": "Validating"}}), "jira")


def test_nothing_owed_once_caught_up() -> None:
    assert not owed(repair(3, "Succeeded", {"slack": {"sent": 3, "phase": "Succeeded"}}), "slack")


def test_a_repair_nobody_has_touched_yet_owes_nothing() -> None:
    assert not owed({"metadata": {"name": "r"}, "status": {}}, "slack")
