"""Intake hears each finding once; the GPUHealthy condition says what is wrong, and since when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from repairbot.agent.tracker import FindingTracker, condition_reason
from repairbot.detectors.base import SignalHealth, SignalState
from repairbot.kube.nodes import NodeCondition, merged_conditions
from repairbot.model import Action, Finding, GpuRef, SignalKind, Source


def finding(code: str, action: Action = Action.GPU_RESET, gpu: int = 0) -> Finding:
    return Finding(code, f"{code} on GPU {gpu}", action, gpu=GpuRef(index=gpu, uuid=f"GPU-{gpu}"))


def test_persistent_poll_finding_is_reported_once() -> None:
    tracker = FindingTracker()
    assert [f.code for f in tracker.observe_poll("nvml", [finding("row-remap-pending")])] == ["row-remap-pending"]
    assert tracker.observe_poll("nvml", [finding("row-remap-pending")]) == []
    assert len(tracker.take_outbox()) == 1


def test_cleared_then_back_is_reported_again() -> None:
    tracker = FindingTracker()
    tracker.observe_poll("ib", [finding("ib-port-down", Action.NOTIFY)])
    tracker.observe_poll("ib", [])
    assert len(tracker.observe_poll("ib", [finding("ib-port-down", Action.NOTIFY)])) == 1


def test_action_none_is_never_sent_to_intake() -> None:
    tracker = FindingTracker()
    tracker.observe_poll("kmsg", [finding("xid-13", Action.NONE)])
    tracker.observe_event(finding("xid-13", Action.NONE))
    assert tracker.take_outbox() == []


def test_requeue_keeps_order_and_loses_nothing() -> None:
    tracker = FindingTracker()
    tracker.observe_event(finding("xid-79", Action.REBOOT))
    taken = tracker.take_outbox()
    tracker.observe_event(finding("xid-48"))
    tracker.requeue(taken)
    assert [f.code for f in tracker.take_outbox()] == ["xid-79", "xid-48"]


def test_condition_false_names_the_strongest_finding() -> None:
    tracker = FindingTracker()
    tracker.observe_poll("pcie", [finding("pcie-degraded", Action.NOTIFY, gpu=1)])
    tracker.observe_event(finding("xid-79", Action.REBOOT, gpu=2))
    condition = tracker.condition([SignalHealth("nvml")])
    assert condition.status == "False"
    assert condition.reason == "Xid79"
    assert "pcie-degraded" in condition.message and "xid-79" in condition.message


def test_events_stay_until_cleared() -> None:
    tracker = FindingTracker()
    tracker.observe_event(finding("xid-48"))
    assert tracker.condition([]).status == "False"
    tracker.clear_events()
    assert tracker.condition([]).status == "True"


def test_no_driver_is_unknown_not_a_fault() -> None:
    tracker = FindingTracker()
    healths = [SignalHealth("nvml", SignalState.UNKNOWN, "no GPU driver on this node")]
    condition = tracker.condition(healths)
    assert (condition.status, condition.reason) == ("Unknown", "NoGpuDriver")


def test_condition_reason_is_camel_case() -> None:
    assert condition_reason("row-remap-failure") == "RowRemapFailure"
    assert condition_reason("xid-79") == "Xid79"


def test_transition_time_kept_while_status_stays_bad() -> None:
    t0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
    bad = NodeCondition("GPUHealthy", "False", "Xid79", "xid-79")
    first, changed = merged_conditions([{"type": "Ready", "status": "True"}], bad, t0)
    assert changed
    worse = NodeCondition("GPUHealthy", "False", "Xid79", "xid-79, xid-48")
    second, changed = merged_conditions(first, worse, t0 + timedelta(minutes=5))
    ours = next(c for c in second if c["type"] == "GPUHealthy")
    assert changed and ours["lastTransitionTime"] == "2026-11-22T10:00:00.000Z"
    assert any(c["type"] == "Ready" for c in second)
    healed = NodeCondition("GPUHealthy", "True", "GPUsHealthy", "ok")
    third, _ = merged_conditions(second, healed, t0 + timedelta(minutes=9))
    assert next(c for c in third if c["type"] == "GPUHealthy")["lastTransitionTime"] == "2026-11-22T10:09:00.000Z"


def test_unchanged_condition_is_not_rewritten() -> None:
    t0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
    ok = NodeCondition("GPUHealthy", "True", "GPUsHealthy", "ok")
    first, _ = merged_conditions([], ok, t0)
    _, changed = merged_conditions(first, ok, t0 + timedelta(seconds=10))
    assert not changed


def test_second_source_within_window_corroborates_not_repeats() -> None:
    now = [100.0]
    tracker = FindingTracker(clock=lambda: now[0])
    nvml = finding("xid-79", Action.REBOOT, gpu=3)
    nvml.evidence["source"] = "nvml-event"
    kmsg = finding("xid-79", Action.REBOOT, gpu=3)
    kmsg.evidence["raw"] = "NVRM: Xid (PCI:0000:5d:00): 79, GPU has fallen off the bus."
    assert tracker.observe_event(nvml, "nvml-events")
    now[0] += 0.2
    assert not tracker.observe_event(kmsg, "kmsg")
    (only,) = tracker.take_outbox()
    assert only.count == 1
    assert tracker.active()[0].evidence["raw"].startswith("NVRM: Xid")


def test_same_source_repeat_and_late_second_source_are_reported() -> None:
    now = [100.0]
    tracker = FindingTracker(clock=lambda: now[0])
    assert tracker.observe_event(finding("xid-48"), "kmsg")
    now[0] += 1
    assert tracker.observe_event(finding("xid-48"), "kmsg")
    now[0] += 60
    assert tracker.observe_event(finding("xid-48"), "nvml-events")
    assert len(tracker.take_outbox()) == 3


class _Host:
    """Only what validation asks of a host: the DCGM diagnostic."""

    def __init__(self, diag: object) -> None:
        self.diag = diag
        self.levels: list[int] = []

    def dcgm_diag(self, level: int) -> object:
        self.levels.append(level)
        return self.diag


def test_validation_runs_dcgm_diag_when_asked_and_says_when_it_could_not() -> None:
    from repairbot.agent.runner import NodeAgent
    from repairbot.agent.service import validate_node
    from repairbot.remediations.action import ActionOutcome

    agent = NodeAgent(node="n", detectors=[])
    absent = _Host(None)
    verdict = validate_node(agent, absent, 2)  # type: ignore[arg-type]
    assert verdict.ok and "dcgmi not installed" in verdict.message and absent.levels == [2]
    failing = _Host(ActionOutcome(False, "dcgmi diag -r 3 failed (exit 226)"))
    verdict = validate_node(agent, failing, 3)  # type: ignore[arg-type]
    assert not verdict.ok and "exit 226" in verdict.message
    skipped = _Host(None)
    assert validate_node(agent, skipped, 0).ok and skipped.levels == []  # type: ignore[arg-type]


def test_a_required_load_check_fails_validation_where_dcgm_is_missing() -> None:
    from repairbot.agent.runner import NodeAgent
    from repairbot.agent.service import validate_node

    verdict = validate_node(NodeAgent(node="n", detectors=[]), _Host(None), 2, True)  # type: ignore[arg-type]
    assert not verdict.ok and "requires a load check" in verdict.message


# --- an agent that just started, and positive evidence -------------------------------------------------------

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_a_starting_agent_reports_unknown_never_true() -> None:
    condition = FindingTracker().condition([SignalHealth("nvml")], starting=True)
    assert (condition.status, condition.reason) == ("Unknown", "AgentStarting")


def test_a_starting_agent_that_took_back_a_fault_reports_false() -> None:
    tracker = FindingTracker()
    tracker.restore([stamped("xid-79", Action.REBOOT, "kmsg", SignalKind.EVENT)], polled_signals={"nvml-health"})
    condition = tracker.condition([], starting=True)
    assert (condition.status, condition.reason) == ("False", "Xid79")


def stamped(code: str, action: Action, signal: str, kind: SignalKind | None) -> Finding:
    found = finding(code, action)
    found.signal, found.signal_kind = signal, kind
    return found


def test_findings_are_stamped_with_the_signal_that_raised_them() -> None:
    tracker = FindingTracker()
    (polled,) = tracker.observe_poll("nvml-health", [finding("row-remap-pending")])
    tracker.observe_event(event := finding("xid-79", Action.REBOOT), "nvml-events")
    assert (polled.signal, polled.signal_kind) == ("nvml-health", SignalKind.POLLED)
    assert (event.signal, event.signal_kind) == ("nvml-events", SignalKind.EVENT)


@pytest.mark.parametrize(
    ("polls", "clean_since"),
    [
        ([("clean", T0)], T0),  # the first complete clean poll starts the streak
        ([("clean", T0), ("clean", T0 + timedelta(seconds=10))], T0),  # a streak keeps its start
        ([("dirty", T0)], None),
        ([("clean", T0), ("dirty", T0 + timedelta(seconds=10))], None),  # a fault ends it
        ([("dirty", T0), ("clean", T0 + timedelta(seconds=10))], T0 + timedelta(seconds=10)),
        ([("clean", T0), ("unreadable", T0 + timedelta(seconds=10))], None),  # no reading is no evidence
        ([("unreadable", T0), ("clean", T0 + timedelta(seconds=20))], T0 + timedelta(seconds=20)),
        ([("none-action", T0)], T0),  # an informational finding is not a fault
    ],
)
def test_a_signals_clean_streak(polls: list[tuple[str, datetime]], clean_since: datetime | None) -> None:
    tracker = FindingTracker()
    for verdict, at in polls:
        found = {
            "clean": [],
            "dirty": [finding("row-remap-pending")],
            "unreadable": [],
            "none-action": [finding("xid-13", Action.NONE)],
        }[verdict]
        tracker.observe_poll("nvml-health", found, complete=verdict != "unreadable", at=at)
    assert tracker.clean_signals().get("nvml-health") == clean_since


def test_an_unreadable_poll_forgets_no_fault() -> None:
    tracker = FindingTracker()
    tracker.observe_poll("nvml-health", [finding("row-remap-failure")])
    assert tracker.observe_poll("nvml-health", [], complete=False) == []
    assert [f.code for f in tracker.active()] == ["row-remap-failure"]


def test_a_restored_polled_finding_is_not_reported_again_and_goes_when_a_poll_no_longer_sees_it() -> None:
    tracker = FindingTracker()
    restored = stamped("row-remap-pending", Action.GPU_RESET, "nvml-health", SignalKind.POLLED)
    assert tracker.restore([restored], polled_signals={"nvml-health"}) == 1
    assert tracker.take_outbox() == []  # intake has it already
    assert tracker.observe_poll("nvml-health", [finding("row-remap-pending")]) == []  # still there: no new report
    tracker.observe_poll("nvml-health", [])
    assert tracker.active() == []


def test_a_restored_event_finding_stays_until_a_validation_clears_it() -> None:
    tracker = FindingTracker()
    tracker.restore([stamped("xid-79", Action.REBOOT, "kmsg", SignalKind.EVENT)], polled_signals={"nvml-health"})
    tracker.observe_poll("nvml-health", [])
    assert tracker.condition([SignalHealth("nvml-health")]).status == "False"
    tracker.clear_events()
    assert tracker.condition([SignalHealth("nvml-health")]).status == "True"


def test_restore_skips_what_is_not_this_agents_to_hold() -> None:
    alert = stamped("xid-79", Action.REBOOT, "", None)
    alert.source = Source.GRAFANA
    unknown_signal = stamped("dcgm-xid", Action.REBOOT, "dcgm", SignalKind.POLLED)  # a detector not run here
    legacy = stamped("xid-48", Action.GPU_RESET, "", None)  # from an agent too old to name its signal: sticky
    tracker = FindingTracker()
    assert tracker.restore([alert, unknown_signal, legacy], polled_signals={"nvml-health"}) == 1
    assert [f.code for f in tracker.active()] == ["xid-48"]


def test_a_poll_seeing_a_fault_the_repair_holds_under_its_event_does_not_report_it_again() -> None:
    """The repair names the finding by the event that raised it; the restarted agent's first poll sees it too."""
    tracker = FindingTracker()
    tracker.restore([stamped("row-remap-failure", Action.GPU_RESET, "nvml-events", SignalKind.EVENT)], {"nvml-health"})
    assert tracker.observe_poll("nvml-health", [finding("row-remap-failure")]) == []
    tracker.observe_poll("nvml-health", [])
    tracker.clear_events()  # a validation passed
    assert len(tracker.observe_poll("nvml-health", [finding("row-remap-failure")])) == 1  # back: news again
