"""The pure rules of delivery: refusal lines that never loop, held until the history keeps them; storm memory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from repairbot.notify import NotifyError
from repairbot.notify.messages import StormView
from repairbot.operator.delivery import (
    MAX_INCIDENTS_REMEMBERED,
    IncidentMemo,
    incidents_of,
    owed,
    parent_ticket_owed,
    refusal_entry,
    refused_by,
    settle_refusals,
    storm_view,
)

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def step(name: str, at: str = "2026-12-01T10:00:00.000Z") -> dict[str, Any]:
    return {"step": name, "outcome": "done", "message": "", "at": at}


def refusal(target: str = "slack", code: str = "invalid_blocks", reduced: bool = True) -> dict[str, Any]:
    error = NotifyError(target, "chat.postMessage", code, "channel C1", retryable=False)
    return refusal_entry(error, what="the reply for step 'start-drain'", reduced=reduced, now=NOW)


def test_a_refusal_line_names_the_service_the_code_and_what_was_done() -> None:
    line = refusal()
    assert line["step"] == "slack-refused" and line["outcome"] == "sent-plain"
    assert "invalid_blocks" in line["message"] and "plain text" in line["message"]
    assert refusal("jira", "http-400", reduced=False)["outcome"] == "skipped"
    long = NotifyError("jira", "comment", "http-400", "x" * 5000, retryable=False)
    assert len(refusal_entry(long, what="a comment", reduced=False, now=NOW)["message"]) == 500


def test_a_refusal_is_never_sent_to_the_service_that_refused_it_but_is_to_the_other() -> None:
    line = refusal("slack")
    assert refused_by(line, "slack") and not refused_by(line, "jira")
    assert not refused_by(step("start-drain"), "slack")


def test_a_held_refusal_keeps_the_repair_owed_until_let_go() -> None:
    status = {"phase": "Succeeded", "history": [step("cordon")],
              "deliveries": {"slack": {"sent": 1, "phase": "Succeeded", "unrecorded": [refusal()]}}}  # fmt: skip
    assert owed({"status": status}, "slack")
    status["deliveries"]["slack"]["unrecorded"] = []
    assert not owed({"status": status}, "slack")


def test_a_refusal_the_history_lacks_is_appended_and_held() -> None:
    line = refusal()
    missing, keep = settle_refusals([step("cordon")], [line], "Draining")
    assert missing == [line] and keep == [line]


def test_no_refusal_is_appended_behind_a_step_in_flight() -> None:
    line = refusal()
    started = {**step("return-to-service"), "outcome": "started"}
    assert settle_refusals([step("cordon"), started], [line], "Validating") == ([], [line])


def test_a_refusal_in_the_history_is_held_until_a_later_step_or_the_end_proves_it_kept() -> None:
    line = refusal()
    assert settle_refusals([step("cordon"), line], [line], "Draining") == ([], [line])  # a step write may drop it
    assert settle_refusals([step("cordon"), line, step("start-drain")], [line], "Draining") == ([], [])
    assert settle_refusals([step("cordon"), line], [line], "Succeeded") == ([], [])
    other = refusal("jira", "http-400", reduced=False)
    assert settle_refusals([line, other], [line], "Draining") == ([], [line])  # another refusal proves nothing


def test_storm_memory_forgets_incidents_whose_repairs_are_gone() -> None:
    memo: IncidentMemo[str] = IncidentMemo()
    for incident in ("storm-1", "storm-2", "storm-3"):
        memo.remember(incident, f"OPS-{incident[-1]}")
        memo.rendered_as(incident, StormView.of(incident, [("gpu-1", "Blocked")]))
        memo.detail(incident, "4 faults")
    repairs = [{"status": {"incident": "storm-2"}}, {"status": {}}]
    memo.prune(incidents_of(repairs))
    assert set(memo.anchors) == set(memo.rendered) == set(memo.details) == {"storm-2"}


def test_storm_memory_is_bounded_whatever_the_number_of_storms() -> None:
    memo: IncidentMemo[str] = IncidentMemo()
    for n in range(MAX_INCIDENTS_REMEMBERED * 4):
        memo.remember(f"storm-{n}", "x")
        memo.rendered_as(f"storm-{n}", StormView.of(f"storm-{n}", []))
        memo.detail(f"storm-{n}", "d")
    assert len(memo) == MAX_INCIDENTS_REMEMBERED
    assert f"storm-{MAX_INCIDENTS_REMEMBERED * 4 - 1}" in memo.anchors and "storm-0" not in memo.anchors


def test_a_storm_view_holds_every_member_once_with_its_latest_phase() -> None:
    members = [
        {"spec": {"nodeName": "gpu-2"}, "status": {"incident": "s", "phase": "Blocked"}},
        {"spec": {"nodeName": "gpu-1"}, "status": {"incident": "s", "phase": "Blocked"}},
        {"spec": {"nodeName": "gpu-9"}, "status": {"incident": "other", "phase": "Blocked"}},
    ]
    fresh = {"spec": {"nodeName": "gpu-2"}, "status": {"incident": "s", "phase": "Succeeded"}}
    storm = storm_view("s", members, fresh, detail="why", jira_key="OPS-1")
    assert storm.members == (("gpu-1", "Blocked"), ("gpu-2", "Succeeded"))
    assert storm.phase_counts() == "1 Blocked · 1 Succeeded"


def test_a_members_own_thread_from_before_the_storm_never_becomes_the_storms_message() -> None:
    from repairbot.operator.delivery import stored_by_member

    first = {"status": {"incident": "storm-1", "slack": {"channel": "C1", "ts": "1.1"}, "jira": {"key": "OPS-1"}}}
    later = {"status": {"incident": "storm-1"}}
    assert stored_by_member([first, later], "slack", "ts", "storm-1") is None  # it cordoned before the trip
    assert stored_by_member([first, later], "jira", "key", "storm-1") is None
    storm = {"status": {"incident": "storm-1", "slack": {"channel": "C1", "ts": "2.2", "incident": "storm-1"},
                        "jira": {"key": "OPS-2", "incident": "storm-1"}}}  # fmt: skip
    assert stored_by_member([first, storm], "slack", "ts", "storm-1") == {"channel": "C1", "ts": "2.2",
                                                                          "incident": "storm-1"}  # fmt: skip
    assert (stored_by_member([first, storm], "jira", "key", "storm-1") or {}).get("key") == "OPS-2"
    assert stored_by_member([storm], "slack", "ts", "storm-2") is None  # another storm's message is not this one's


def test_a_ticket_opened_after_the_parent_was_written_owes_slack_a_parent_that_links_it() -> None:
    status: dict[str, Any] = {"phase": "Quarantined", "history": [{"step": "quarantine"}],
                              "slack": {"channel": "C1", "ts": "1.1"}, "jira": {"key": "OPS-1"},
                              "deliveries": {"slack": {"sent": 1, "phase": "Quarantined"}}}  # fmt: skip
    assert parent_ticket_owed(status) and owed({"status": status}, "slack")
    status["deliveries"]["slack"]["ticket"] = "OPS-1"
    assert not parent_ticket_owed(status) and not owed({"status": status}, "slack")
    storm = {**status, "incident": "storm-1", "deliveries": {"slack": {"sent": 1, "phase": "Quarantined"}}}
    assert not parent_ticket_owed(storm)  # a storm's message is rewritten from the storm
