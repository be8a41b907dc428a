"""The storm breaker as an output of the pure machine: table tests of ``decide(...).breakers``.

Each test plays the shell the way the reconciler does: it passes the stored
breakers in ``Facts.breakers`` and keeps what the decision returns.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from repairbot.machine import Decision, Facts, PoolUsage, RepairView, Step, decide
from repairbot.machine.breaker import Breaker, Breakers, BreakerState, Fault
from repairbot.model import LABEL_DISABLED, LABEL_FAILURE_DOMAIN, Phase, format_time
from repairbot.operator.facts import FleetView, counts_as_fault, fleet_faults
from repairbot.policy import parse_policy

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
POLICY = parse_policy({"breaker": {"settleTime": "0s", "maxPerDomain": 4, "maxFaults": 10, "halfOpenCanaries": 1}})


def repair(node: str, *, phase: str | None = None, acknowledged: bool = False, **status: Any) -> RepairView:
    finding = {"code": "xid-79", "firstSeen": format_time(T0), "gpu": {"index": 0}, "action": "reboot"}
    body: dict[str, Any] = {"metadata": {"name": f"{node}-20261122030000"},
                            "spec": {"nodeName": node, "source": "agent", "findings": [finding]}}  # fmt: skip
    if phase:
        body["status"] = {"phase": phase, "reason": "xid-79", "action": "reboot", "attempt": 1,
                          "detectedAt": format_time(T0), **status}  # fmt: skip
        if phase == "Blocked":
            body["status"]["conditions"] = [{"type": "Blocked", "status": "True", "reason": "BreakerOpen"}]
        if acknowledged:
            body["status"]["acknowledgedAt"] = format_time(T0)
    return RepairView.from_object(body)


def leaf(domain: str, count: int, *, prefix: str | None = None) -> tuple[Fault, ...]:
    return tuple(Fault(f"{prefix or domain}-n{i}", T0 - timedelta(seconds=5 * i), domain) for i in range(count))


def facts(domain: str | None, faults: tuple[Fault, ...] = (), **changes: Any) -> Facts:
    labels = {LABEL_FAILURE_DOMAIN: domain} if domain else {}
    return replace(Facts(pool=PoolUsage(size=100), node_labels=labels, recent_faults=faults), **changes)


def held(domain: str | None, faults: tuple[Fault, ...] = (), **changes: Any) -> Facts:
    """Facts of a node RepairBot already cordoned and tainted."""
    return facts(domain, faults, node_unschedulable=True, our_taint=True, **changes)


def stored(decision: Decision) -> Breakers:
    assert decision.breakers is not None, "decide always says what the breakers are after it"
    return decision.breakers


def test_a_storm_on_one_leaf_blocks_and_groups_only_that_leaf() -> None:
    storm = leaf("leaf-0", 4)
    blocked = decide(repair("leaf-0-n0"), facts("leaf-0", storm), POLICY, T0)
    assert blocked.step is Step.BLOCK and blocked.patch["incident"].endswith("-leaf-0")
    breakers = stored(blocked)
    assert breakers.domains["leaf-0"].state is BreakerState.OPEN and breakers.fleet.state is BreakerState.CLOSED

    bystander = decide(repair("leaf-1-n9"), facts("leaf-1", storm, breakers=breakers), POLICY, T0)
    assert bystander.step is Step.CORDON  # an Xid 79 on another leaf is repaired as usual
    assert "incident" not in bystander.patch


def test_only_the_fleet_threshold_blocks_every_leaf() -> None:
    spread = tuple(Fault(f"n{i}", T0 - timedelta(seconds=i), f"leaf-{i}") for i in range(11))  # 11 > maxFaults 10
    decision = decide(repair("leaf-99-n0"), facts("leaf-99", spread), POLICY, T0)
    assert decision.step is Step.BLOCK
    assert stored(decision).fleet.state is BreakerState.OPEN
    assert decision.patch["incident"] == stored(decision).fleet.incident
    unlabelled = decide(repair("n-unlabelled"), facts(None, spread, breakers=stored(decision)), POLICY, T0)
    assert unlabelled.step is Step.BLOCK  # no domain: still governed by the fleet's breaker


def test_two_leaves_tripping_in_the_same_second_are_two_incidents() -> None:
    storm = leaf("leaf-0", 4) + leaf("leaf-1", 4)
    breakers = Breakers().observe(storm, POLICY.breaker, now=T0)
    incidents = {breakers.domains[d].incident for d in ("leaf-0", "leaf-1")}
    assert len(incidents) == 2 and breakers.fleet.state is BreakerState.CLOSED


def half_open_with(canary: str) -> Breakers:
    opened = Breakers().observe(leaf("leaf-0", 4), POLICY.breaker, now=T0)
    return opened.map("leaf-0", lambda b: b.resume(now=T0).admit(canary, POLICY.breaker))


@pytest.mark.parametrize(
    "how_it_ended",
    ["cancelled", "deleted"],
)
def test_a_cancelled_or_deleted_canary_frees_its_slot_for_the_next_blocked_repair(how_it_ended: str) -> None:
    canary = "leaf-0-n0-20261122030000"
    breakers = half_open_with(canary)
    later = T0 + timedelta(minutes=1)
    if how_it_ended == "cancelled":  # the canary's node was deleted, say: it ends Cancelled
        gone = decide(repair("leaf-0-n0", phase="Cordoned", acknowledged=True), held("leaf-0", breakers=breakers,
                      node_exists=False), POLICY, later)  # fmt: skip
        assert gone.step is Step.CANCEL
        breakers = stored(gone)
        alive = frozenset({"leaf-0-n1-20261122030000"})
    else:  # kubectl delete gpurepair: the canary is simply no longer among the running repairs
        alive = frozenset({"leaf-0-n1-20261122030000"})
    assert breakers.domains["leaf-0"].state is BreakerState.HALF_OPEN
    waiting = repair("leaf-0-n1", phase="Blocked", acknowledged=True)
    decision = decide(waiting, held("leaf-0", breakers=breakers, active_repairs=alive), POLICY, later)
    assert decision.step is Step.ADMIT, decision.message  # the next blocked repair is the canary now
    assert stored(decision).domains["leaf-0"].canaries == ("leaf-0-n1-20261122030000",)


@pytest.mark.parametrize("state", [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED])
def test_resume_works_from_every_breaker_state(state: BreakerState) -> None:
    ghost = ("ghost-20261122030000",) if state is BreakerState.HALF_OPEN else ()  # a canary that ended long ago
    stuck = Breaker(state, "storm-1", "storm", T0, canaries=ghost)
    breakers = Breakers(domains={"leaf-0": stuck})
    waiting = repair("leaf-0-n1", phase="Blocked", acknowledged=True)
    alive = frozenset({"leaf-0-n1-20261122030000"})
    decision = decide(waiting, held("leaf-0", breakers=breakers, active_repairs=alive, resume_requested=True),
                      POLICY, T0 + timedelta(minutes=5))  # fmt: skip
    assert decision.step is Step.ADMIT, decision.message
    assert decision.resume_consumed  # one resume acts once


def test_a_canary_that_succeeds_closes_its_domain_and_one_that_is_quarantined_reopens_it() -> None:
    canary = "leaf-0-n0-20261122030000"
    breakers = half_open_with(canary)
    validating = repair("leaf-0-n0", phase="Validating", acknowledged=True,
                        request={"id": f"{canary}-1-validate", "action": "validate"},
                        agent={"requestId": f"{canary}-1-validate", "result": "succeeded"})  # fmt: skip
    done = decide(validating, held("leaf-0", breakers=breakers), POLICY, T0 + timedelta(minutes=2))
    assert done.step is Step.RETURN_TO_SERVICE
    assert "leaf-0" not in stored(done).domains or stored(done).domains["leaf-0"].state is BreakerState.CLOSED
    failed = replace(validating, agent=replace(validating.agent, result="failed"), attempt=1)  # type: ignore[arg-type]
    policy = parse_policy({"breaker": {"settleTime": "0s", "maxPerDomain": 4, "halfOpenCanaries": 1},
                           "ladders": {"xid-79": ["reboot"]}})  # fmt: skip
    reopened = decide(failed, held("leaf-0", breakers=breakers), policy, T0 + timedelta(minutes=2))
    assert reopened.step is Step.QUARANTINE
    assert stored(reopened).domains["leaf-0"].state is BreakerState.OPEN


def test_resumed_repairs_that_never_cordoned_queue_behind_the_budget() -> None:
    policy = parse_policy({"breaker": {"settleTime": "0s"}, "budget": {"maxUnavailable": 3}})
    full = PoolUsage("gpu-nodes", 100, 3)  # three nodes already out of service
    never_cordoned = repair("leaf-0-n5", phase="Blocked")  # blocked by the storm before the budget let it cordon
    decision = decide(never_cordoned, facts("leaf-0", pool=full, resume_requested=True), policy, T0)
    assert decision.step is Step.QUEUE and not decision.cordon
    assert decision.patch["phase"] == Phase.PENDING.value
    blocked = next(c for c in decision.patch["conditions"] if c["type"] == "Blocked")
    assert blocked["status"] == "False"
    room = decide(never_cordoned, facts("leaf-0", pool=PoolUsage("gpu-nodes", 100, 2)), policy, T0)
    assert room.step is Step.CORDON  # with a free slot it cordons as before


def test_dry_run_opted_out_and_no_action_repairs_count_toward_no_breaker() -> None:
    def obj(name: str, node: str, **spec: Any) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"nodeName": node, **spec},
                "status": {"detectedAt": format_time(T0), "receivedAt": format_time(T0)}}  # fmt: skip

    nodes = {f"n{i}": {"metadata": {"name": f"n{i}", "labels": {LABEL_FAILURE_DOMAIN: "leaf-0"}}} for i in range(8)}
    nodes["n5"]["metadata"]["labels"][LABEL_DISABLED] = "true"
    repairs = [obj(f"r{i}", f"n{i}", dryRun=True) for i in range(4)]
    repairs.append(obj("r5", "n5"))  # opted out
    no_action = obj("r6", "n6")
    no_action["status"]["conditions"] = [{"type": "Cancelled", "status": "True", "reason": "NoAction"}]
    repairs.append(no_action)
    repairs.append(obj("r7", "n7"))  # the only real fault
    fleet = FleetView(nodes, tuple(repairs))
    faults = fleet_faults(fleet, POLICY, T0)
    assert [f.node for f in faults] == ["n7"]
    assert not counts_as_fault(repairs[0], nodes["n0"], POLICY)
    storm_free = decide(repair("n7"), facts("leaf-0", faults), POLICY, T0)
    assert storm_free.step is Step.CORDON


def test_one_leafs_storm_however_large_is_that_leafs_incident_alone() -> None:
    whole_leaf = leaf("leaf-16", 16)  # 16 nodes: more than the fleet's maxFaults (10), all behind one switch
    breakers = Breakers().observe(whole_leaf, POLICY.breaker, now=T0)
    assert breakers.domains["leaf-16"].state is BreakerState.OPEN
    assert breakers.fleet.state is BreakerState.CLOSED  # other leaves keep being repaired
    resumed = breakers.map("leaf-16", lambda b: b.resume(now=T0).admit("c", POLICY.breaker))
    closed = resumed.map("leaf-16", lambda b: b.canary_finished("c", succeeded=True, policy=POLICY.breaker, now=T0))
    later = closed.observe(whole_leaf, POLICY.breaker, now=T0 + timedelta(minutes=6))
    assert later.fleet.state is BreakerState.CLOSED  # the resumed storm's faults never count for the fleet


def test_a_leaf_breaker_reopened_by_a_failed_canary_keeps_the_leaf_in_its_incident() -> None:
    resumed = half_open_with("c")
    reopened = resumed.map("leaf-0", lambda b: b.canary_finished("c", succeeded=False, policy=POLICY.breaker,
                                                                 now=T0 + timedelta(minutes=3)))  # fmt: skip
    breaker = reopened.domains["leaf-0"]
    assert breaker.state is BreakerState.OPEN and breaker.incident is not None and breaker.incident.endswith("-leaf-0")


def test_a_half_open_breaker_nobody_tests_closes_after_its_window() -> None:
    opened = Breakers().observe(leaf("leaf-0", 4), POLICY.breaker, now=T0)
    resumed = opened.map("leaf-0", lambda b: b.resume(now=T0))  # a storm of dead links: nothing will act
    soon = resumed.observe((), POLICY.breaker, now=T0 + timedelta(minutes=1))
    assert soon.domains["leaf-0"].state is BreakerState.HALF_OPEN
    later = resumed.observe((), POLICY.breaker, now=T0 + POLICY.breaker.domain_window + timedelta(seconds=1))
    assert "leaf-0" not in later.domains or later.domains["leaf-0"].state is BreakerState.CLOSED


def test_a_blocked_repair_names_the_storm_that_holds_it_in_its_message_and_its_incident() -> None:
    spread = tuple(Fault(f"n{i}", T0 - timedelta(seconds=i), f"leaf-{10 + i}") for i in range(11))  # fleet storm
    resumed_leaf = half_open_with("leaf-0-n0-20261122030000")  # leaf-0 half-open, its canary elsewhere
    breakers = resumed_leaf.observe(spread, POLICY.breaker, now=T0 + timedelta(seconds=1))
    assert breakers.fleet.state is BreakerState.OPEN
    decision = decide(repair("leaf-0-n3"), facts("leaf-0", breakers=breakers), POLICY, T0 + timedelta(seconds=1))
    assert decision.step is Step.BLOCK
    assert stored(decision).fleet.incident in decision.message
    assert decision.patch["incident"] == stored(decision).fleet.incident  # the same storm in both


def test_a_bad_rollout_over_every_leaf_is_one_fleet_storm_not_a_page_per_leaf() -> None:
    # A rollout goes leaf by leaf: 25 leaves lose 4 nodes each, each leaf's breaker trips at its 2nd node.
    arrivals = [Fault(f"leaf-{i // 4}-n{i % 4}", T0 + timedelta(milliseconds=10 * i), f"leaf-{i // 4}")
                for i in range(100)]  # fmt: skip
    policy = parse_policy({"breaker": {"maxPerDomain": 2, "maxFaults": 10}}).breaker  # a leaf trips at 2 nodes
    breakers, incidents = Breakers(), []
    for count, fault in enumerate(arrivals, start=1):
        now = fault.at
        breakers = breakers.observe(arrivals[:count], policy, now=now)
        incidents.append(breakers.incident_of(fault.domain))
    assert breakers.fleet.state is BreakerState.OPEN
    late = incidents[len(incidents) // 2 :]
    assert set(late) == {breakers.fleet.incident}  # once the fleet storm is on, every new repair joins it
    assert len(set(incidents) - {None}) <= 6  # the few leaves that tripped first, and the fleet: not 25 pages
