"""A human's word from Slack or the CLI: who resumed goes into the history once; cancel stops, cordon kept."""

from __future__ import annotations

from dataclasses import replace

from test_machine import World, new_repair

from repairbot.machine import Step
from repairbot.model import Phase

WHO = "<@U0SANDBOX1> from Slack"


def messages(world: World) -> list[str]:
    return [e["message"] for e in world.status.get("history") or []]


def test_a_resume_that_names_its_human_writes_who_resumed_into_the_history_once() -> None:
    world = World(new_repair("ib-port-down"))
    world.step(Step.CORDON)
    world.step(Step.HOLD)
    world.facts = replace(world.facts, resume_requested=True, resumed_by=WHO)
    decision = world.step(Step.VALIDATE)
    assert decision.resume_consumed
    world.facts = replace(world.facts, resume_requested=False)  # the shell cleared the annotation
    world.answer("succeeded")
    world.step(Step.RETURN_TO_SERVICE)
    assert messages(world).count(f"resumed by {WHO}") == 1


def test_a_resume_without_a_name_writes_no_entry_of_its_own() -> None:
    world = World(new_repair("ib-port-down"))
    world.step(Step.CORDON)
    world.step(Step.HOLD)
    world.facts = replace(world.facts, resume_requested=True)
    world.step(Step.VALIDATE)
    assert not any(m.startswith("resumed by") for m in messages(world))


def test_cancel_of_a_held_repair_ends_it_cancelled_and_leaves_the_node_cordoned() -> None:
    world = World(new_repair("ib-port-down"))
    world.step(Step.CORDON)
    world.step(Step.HOLD)
    world.facts = replace(world.facts, cancel_requested_by=WHO)
    decision = world.step(Step.CANCEL)
    assert world.phase == Phase.CANCELLED.value
    assert decision.event == "CancelledByHuman" and not decision.uncordon and decision.remove_marks
    assert world.unschedulable  # cordoned for the human who asked
    assert any(m.startswith(f"cancelled by {WHO}") for m in messages(world))


def test_cancel_of_a_pending_repair_touches_nothing() -> None:
    world = World(new_repair())
    world.facts = replace(world.facts, cancel_requested_by=WHO)
    decision = world.step(Step.CANCEL)
    assert world.phase == Phase.CANCELLED.value and not decision.cordon and not world.unschedulable


def test_a_manual_quarantine_merged_into_a_running_repair_quarantines_it() -> None:
    world = World(new_repair("ib-port-down"))
    world.step(Step.CORDON)
    world.step(Step.HOLD)
    asked = {"code": "manual", "firstSeen": world.status["history"][0]["at"], "action": "quarantine",
             "source": "manual", "message": "quarantined", "evidence": {"requestedBy": WHO}}  # fmt: skip
    world.obj["spec"]["findings"].append(asked)
    world.step(Step.QUARANTINE)
    assert world.phase == Phase.QUARANTINED.value
    assert any(m.startswith(f"quarantined by {WHO}") for m in messages(world))
