"""The demo's expectation checker: each scenario ✓ only when the cluster ended as it must; any ✗ is exit 1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from repairbot_sim.demo_expectations import (
    Observation,
    check_all,
    exit_code,
    failed_validations,
    notifications_caught_up,
    rungs_tried,
    settled,
)
from repairbot_sim.demo_scenarios import demo_scenarios

SCENARIOS = {s.key: s for s in demo_scenarios()}
STORM = SCENARIOS["storm"].nodes


def entry(step: str, outcome: str, message: str = "", action: str | None = None) -> dict[str, Any]:
    out = {"step": step, "outcome": outcome, "message": message, "at": "2026-11-22T10:00:01.000Z"}
    return out | ({"action": action} if action else {})


def repair(node: str, phase: str, *history: dict[str, Any], source: str = "agent", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{node}-20261122100000", "creationTimestamp": "2026-11-22T10:00:00Z"},
        "spec": {"nodeName": node, "source": source},
        "status": {"phase": phase, "history": list(history), **status},
    }


def node(name: str, *, cordoned: bool = False, state: str = "", tainted: bool = False) -> dict[str, Any]:
    labels = {"repairbot.io/state": state} if state else {}
    taints = [{"key": "repairbot.io/unhealthy", "effect": "NoSchedule"}] if tainted else []
    return {"metadata": {"name": name, "labels": labels}, "spec": {"unschedulable": cordoned, "taints": taints}}


def reboot(action: str) -> dict[str, Any]:
    return entry("request", "started", f"asked the agent for {action}", action)


def failed(action: str) -> dict[str, Any]:
    return entry(action, "failed", "validate failed: validation failed: row-remap-failure: GPU 2", action)


def good_end() -> Observation:
    """The cluster as a good run leaves it."""
    names = [f"gpu-node-{i:03d}" for i in range(16)]
    boots = {n: f"boot-{n}-1" for n in names}
    after = dict(boots) | {"gpu-node-002": "boot-2", "gpu-node-009": "boot-9"}
    repairs = [
        repair("gpu-node-002", "Succeeded", reboot("reboot")),
        repair("gpu-node-005", "Succeeded", reboot("gpu-reset")),
        repair("gpu-node-009", "Quarantined", reboot("gpu-reset"), failed("gpu-reset"), reboot("reboot"),
               failed("reboot"), entry("quarantine", "done", "ladder exhausted", "quarantine"),
               slack={"channel": "C1", "ts": "9.9"}),
        repair("gpu-node-006", "Remediating", entry("cordon", "done"), entry("hold", "started", action="notify"),
               action="notify"),
        repair("gpu-node-010", "Succeeded", reboot("gpu-reset"), source="grafana"),
        repair("gpu-node-001", "Succeeded", entry("defer", "deferred"), reboot("gpu-reset"), nodeWasCordoned=True),
        *(repair(n, "Blocked", entry("block", "BreakerOpen"), incident="storm-1",
                 jira={"key": "OPS-7", "incident": "storm-1"})
          for n in STORM),
    ]  # fmt: skip
    nodes = {n: node(n) for n in names}
    nodes["gpu-node-009"] = node("gpu-node-009", cordoned=True, state="quarantined", tainted=True)
    nodes["gpu-node-006"] = node("gpu-node-006", cordoned=True, state="repairing", tainted=True)
    nodes["gpu-node-001"] = node("gpu-node-001", cordoned=True)
    for n in STORM:
        nodes[n] = node(n, cordoned=True, state="repairing", tainted=True)
    slack = [
        {"path": "/api/chat.postMessage", "status": 200, "body": {"text": "gpu-node-002: xid-79 — Cordoned."}},
        {"path": "/api/chat.postMessage", "status": 200, "body": {"text": ":x: Fault storm: 4 nodes (storm-1)."}},
        {"path": "/api/chat.postMessage", "status": 200, "body": {"text": "storm reply", "thread_ts": "1.1"}},
        {"path": "/api/chat.postMessage", "status": 200, "mentions": ["<!subteam^S0GPUONCALL>"],
         "body": {"text": "<!subteam^S0GPUONCALL> :rotating_light: quarantine: done", "thread_ts": "9.9"}},
    ]
    return Observation(tuple(repairs), nodes, boots, after, tuple(slack))


def test_a_good_run_passes_every_scenario_and_exits_0() -> None:
    verdicts = check_all(list(SCENARIOS.values()), good_end())
    assert [(v.scenario.key, v.ok) for v in verdicts if not v.ok] == []
    assert exit_code(verdicts) == 0
    observed = {v.scenario.key: v.observed for v in verdicts}
    assert observed["xid79"] == "Succeeded · reboot · boot id changed"
    assert observed["row-remap"].startswith("Quarantined after 2 failed validation(s) (gpu-reset → reboot → quar")
    assert observed["storm"] == (
        "4/4 Blocked · 4/4 cordoned · 0 reboot(s) · incident storm-1 · 1 Slack storm message(s) · 1 Jira ticket(s)"
    )


def test_a_storm_member_cordoned_just_before_the_trip_keeps_its_own_ticket_and_the_storm_still_has_one() -> None:
    """Seen in a full run once admissions got faster: the first member opened its own ticket before the breaker
    tripped. It is that repair's ticket, not a second storm ticket."""
    obs = good_end()
    first = repair(STORM[0], "Blocked", entry("block", "BreakerOpen"), incident="storm-1", jira={"key": "OPS-3"})
    [verdict] = [v for v in check_all([SCENARIOS["storm"]], _break(obs, repairs=_replace(obs, STORM[0], first)))]
    assert verdict.ok, verdict.observed
    assert verdict.observed.endswith("1 Jira ticket(s)")


def _break(obs: Observation, **changes: Any) -> Observation:
    fields = {f: getattr(obs, f) for f in ("repairs", "nodes", "boots_before", "boots_after", "slack")}
    return Observation(**(fields | changes))


def _replace(obs: Observation, node_name: str, new: dict[str, Any]) -> tuple[Mapping[str, Any], ...]:
    return tuple(new if r["spec"]["nodeName"] == node_name else r for r in obs.repairs)


@pytest.mark.parametrize(
    ("key", "spoil"),
    [
        ("xid79", lambda o: _break(o, boots_after=dict(o.boots_after) | {"gpu-node-002": "boot-gpu-node-002-1"})),
        ("xid79", lambda o: _break(o, repairs=_replace(o, "gpu-node-002", repair("gpu-node-002", "Failed")))),
        ("dbe", lambda o: _break(o, boots_after=dict(o.boots_after) | {"gpu-node-005": "rebooted"})),
        ("xid13", lambda o: _break(o, repairs=(*o.repairs, repair("gpu-node-003", "Cancelled")))),
        ("row-remap", lambda o: _break(o, repairs=_replace(
            o, "gpu-node-009", repair("gpu-node-009", "Quarantined", failed("gpu-reset"))))),
        ("row-remap", lambda o: _break(o, slack=tuple({**r, "mentions": []} for r in o.slack))),  # nobody paged
        ("ib-flap", lambda o: _break(o, repairs=_replace(
            o, "gpu-node-006", repair("gpu-node-006", "Succeeded", reboot("reboot"), action="notify")))),
        ("alert", lambda o: _break(o, repairs=_replace(o, "gpu-node-010", repair("gpu-node-010", "Succeeded")))),
        ("human", lambda o: _break(o, nodes=dict(o.nodes) | {"gpu-node-001": node("gpu-node-001")})),
        ("human", lambda o: _break(o, repairs=_replace(o, "gpu-node-001", repair(  # reset under the running job
            "gpu-node-001", "Succeeded", reboot("gpu-reset"), nodeWasCordoned=True)))),
        ("storm", lambda o: _break(o, boots_after=dict(o.boots_after) | {STORM[0]: "rebooted"})),
        ("storm", lambda o: _break(o, slack=(*o.slack, *o.slack))),
        ("storm", lambda o: _break(o, repairs=_replace(o, STORM[1], repair(STORM[1], "Blocked", incident="storm-2")))),
        ("storm", lambda o: _break(o, repairs=_replace(o, STORM[2], repair(  # a second storm ticket
            STORM[2], "Blocked", incident="storm-1", jira={"key": "OPS-99", "incident": "storm-1"})))),
    ],
)  # fmt: skip
def test_a_failed_expectation_is_a_cross_and_exit_1(key: str, spoil: Any) -> None:
    verdicts = check_all(list(SCENARIOS.values()), spoil(good_end()))
    assert [v.scenario.key for v in verdicts if not v.ok] == [key]
    assert exit_code(verdicts) == 1


def test_no_verdicts_is_not_a_pass() -> None:
    assert exit_code([]) == 1


def test_missing_repairs_are_reported_not_raised() -> None:
    verdicts = check_all(list(SCENARIOS.values()), Observation((), {}))
    observed = {v.scenario.key: (v.ok, v.observed) for v in verdicts}
    assert observed["xid79"] == (False, "no GPURepair")
    assert observed["xid13"] == (True, "no GPURepair · schedulable")  # nothing to see is right for an app Xid
    assert exit_code(verdicts) == 1


def test_rungs_and_failed_validations_read_from_history() -> None:
    quarantined = good_end().repairs_of("gpu-node-009")[0]
    assert rungs_tried(quarantined) == ["gpu-reset", "reboot", "quarantine"]
    assert failed_validations(quarantined) == 2


def test_settled_waits_for_the_state_each_scenario_is_judged_in() -> None:
    end = good_end()
    assert all(settled(s, end.repairs) for s in SCENARIOS.values())
    assert settled(SCENARIOS["xid13"], ())  # nothing to wait for
    assert not settled(SCENARIOS["xid79"], (repair("gpu-node-002", "Remediating"),))
    assert not settled(SCENARIOS["ib-flap"], (repair("gpu-node-006", "Cordoned", entry("cordon", "done")),))
    assert not settled(SCENARIOS["storm"], tuple(repair(n, "Blocked") for n in STORM[:3]))


def test_notifications_caught_up_needs_thread_ticket_and_current_phase() -> None:
    told = {"slack": {"phase": "Succeeded"}, "jira": {"phase": "Succeeded"}}
    done = repair("n", "Succeeded", slack={"ts": "1.1"}, jira={"key": "OPS-1"}, deliveries=told)
    assert notifications_caught_up([done])
    behind = repair("n", "Succeeded", slack={"ts": "1.1"}, jira={"key": "OPS-1"},
                    deliveries=told | {"jira": {"phase": "Remediating"}})  # fmt: skip
    assert not notifications_caught_up([behind])
    assert not notifications_caught_up([repair("n", "Succeeded", deliveries=told)])



def _resumed(node: str, drained: str | None, back: str | None = None, *, held_at: str | None = None) -> dict[str, Any]:
    """A storm member after the Resume storm click: resumed from Slack, drained at ``drained`` (None: not yet),
    back in service at ``back`` (the canary); ``held_at``: resumed first into a hold for a human."""
    history = [entry("resume", "requested", "resumed by <@U1> from Slack")]
    if held_at is not None:
        history += [{**entry("admit", "resumed"), "at": held_at}, {**entry("hold", "started"), "at": held_at}]
    if drained is not None:
        history += [{**entry("admit", "resumed"), "at": drained}, {**entry("start-drain", "done"), "at": drained}]
    if back is not None:
        history.append({**entry("return-to-service", "done"), "at": back})
    phase = "Succeeded" if back else "Remediating" if drained or held_at else "Blocked"
    return repair(node, phase, *history, incident="storm-1")


def _after_resume(*members: dict[str, Any]) -> str:
    obs = good_end()
    after = _break(obs, repairs=tuple(r for r in obs.repairs if r["spec"]["nodeName"] not in STORM) + members)
    [verdict] = check_all([SCENARIOS["storm"]], after, before_resume=obs)
    return ("ok " if verdict.ok else "bad ") + verdict.observed.split(" · then ")[-1]


T1, T2, T3, T4 = (f"2026-12-02T10:00:0{n}.000Z" for n in (1, 2, 3, 4))


def test_a_resumed_storm_passes_when_its_canary_came_back_before_any_other_member_drained() -> None:
    rest = [_resumed(n, T4) for n in STORM[1:]]
    canary = _resumed(STORM[0], T1, back=T3)
    assert _after_resume(canary, *rest) == f"ok resumed from Slack (4/4): canary {STORM[0]} first"


def test_a_member_drained_before_the_canary_came_back_is_named_with_both_times() -> None:
    early = _resumed(STORM[1], T2)
    rest = [_resumed(n, T4) for n in STORM[2:]]
    assert _after_resume(_resumed(STORM[0], T1, back=T3), early, *rest) == (
        f"bad resumed from Slack (4/4): {STORM[1]} drained at {T2}, before canary {STORM[0]} came back at {T3}"
    )


def test_a_member_resumed_into_a_hold_for_a_human_while_the_canary_works_is_no_breach() -> None:
    """Seen under load: a member's repair opened on its InfiniBand finding (a notify rung) before its Xid 79
    merged. Resumed, it went to its hold at once (it touches nothing); escalated to the reboot, the half-open
    breaker blocked it until the canary was back. The check used to count that first admission as going."""
    held = _resumed(STORM[1], T4, held_at=T2)
    rest = [_resumed(n, T4) for n in STORM[2:]]
    assert _after_resume(_resumed(STORM[0], T1, back=T3), held, *rest) == (
        f"ok resumed from Slack (4/4): canary {STORM[0]} first"
    )


def test_a_canary_still_on_its_way_is_said_so_not_hidden_as_no_canary() -> None:
    members = [_resumed(STORM[0], T1), *(_resumed(n, None) for n in STORM[1:])]
    assert _after_resume(*members) == f"bad resumed from Slack (4/4): canary {STORM[0]} not back"
