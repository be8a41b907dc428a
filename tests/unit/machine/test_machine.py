"""The state machine, step by step, against a tiny in-test world that applies each decision.

``World`` plays the handler: it writes ``patch``, performs the node marks, then
writes ``after`` — exactly the order the real handler must follow.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repairbot.catalog.sxid import default_sxid_catalog
from repairbot.catalog.xid import default_catalog
from repairbot.detectors.kernel_log import parse_line
from repairbot.machine import (
    DESTRUCTIVE_STEPS,
    Decision,
    Facts,
    GpuRepair,
    PoolUsage,
    RepairView,
    Step,
    catalog_fallback,
    decide,
    request_id,
)
from repairbot.machine.breaker import Breaker, Breakers, BreakerState, Fault
from repairbot.machine.transitions import step_failed
from repairbot.model import (
    LABEL_DISABLED,
    LABEL_FAILURE_DOMAIN,
    LABEL_STATE,
    Action,
    GpuRef,
    NodeState,
    Phase,
    Source,
    format_time,
)
from repairbot.policy import LadderFallback, Policy, parse_policy

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
NAME = "gpu-node-007-20261122030000"


def policy_for(data: dict[str, Any] | None = None) -> Policy:
    """The policy under test, without the breaker's settle time unless a test studies it."""
    data = dict(data or {})
    data.setdefault("breaker", {}).setdefault("settleTime", "0s")
    return parse_policy(data)


POLICY = policy_for()


def new_repair(code: str = "xid-79", **spec: Any) -> dict[str, Any]:
    finding = {"code": code, "firstSeen": format_time(T0), "gpu": {"index": 3}, "action": "reboot"}
    return {"metadata": {"name": NAME}, "spec": {"nodeName": "gpu-node-007", "source": "agent",
                                                 "findings": [finding], **spec}}  # fmt: skip


@dataclass
class World:
    obj: dict[str, Any]
    policy: Policy = POLICY
    now: datetime = T0
    unschedulable: bool = False
    taint: bool = False
    state: NodeState | None = None
    facts: Facts = field(default_factory=lambda: Facts(pool=PoolUsage(size=100)))
    log: list[Decision] = field(default_factory=list)
    fallback: LadderFallback | None = None

    def current_facts(self) -> Facts:
        return replace(self.facts, node_unschedulable=self.unschedulable, our_taint=self.taint)

    @property
    def status(self) -> dict[str, Any]:
        return self.obj.setdefault("status", {})

    @property
    def phase(self) -> str:
        return str(self.status.get("phase", "Pending"))

    def decide(self) -> Decision:
        return decide(RepairView.from_object(self.obj), self.current_facts(), self.policy, self.now,
                      fallback=self.fallback)  # fmt: skip

    def step(self, expected: Step, *, crash_before_after: bool = False) -> Decision:
        decision = self.decide()
        assert decision.step is expected, (decision.step, decision.message)
        self.log.append(decision)
        if decision.breakers is not None:  # the shell stores the breakers the machine computed
            self.facts = replace(self.facts, breakers=decision.breakers)
        self.status.update(copy.deepcopy(dict(decision.patch)))
        if crash_before_after:
            return decision
        if decision.cordon:
            self.unschedulable = self.taint = True
        if decision.node_state is not None:
            self.state = decision.node_state
        if decision.remove_marks:
            self.taint, self.state = False, None
        if decision.uncordon:
            self.unschedulable = False
        self.status.update(copy.deepcopy(dict(decision.after)))
        return decision

    def answer(self, result: str, message: str = "", boot_id: str = "b1") -> None:
        ident = self.status["request"]["id"]
        self.status["agent"] = {"requestId": ident, "result": result, "message": message, "bootId": boot_id}

    def later(self, delta: timedelta) -> None:
        self.now += delta


def drain_and_request(world: World, pods: int = 2) -> Decision:
    world.facts = replace(world.facts, pods_left=pods)
    world.step(Step.START_DRAIN)
    if pods:
        world.step(Step.CONTINUE_DRAIN)
        world.facts = replace(world.facts, pods_left=0)
    return world.step(Step.REQUEST_ACTION)


def test_xid79_happy_path_pending_to_succeeded() -> None:
    world = World(new_repair("xid-79"))
    cordon = world.step(Step.CORDON)
    assert world.phase == "Cordoned" and world.unschedulable and world.taint and world.state is NodeState.REPAIRING
    assert cordon.patch["nodeWasCordoned"] is False and "acknowledgedAt" in world.status
    assert world.status["reason"] == "xid-79" and world.status["detectedAt"] == format_time(T0)
    request = drain_and_request(world)
    assert world.phase == "Remediating"
    assert request.action is Action.REBOOT and request.request_id == f"{NAME}-1-reboot"
    assert world.status["request"]["deadline"] == format_time(T0 + timedelta(minutes=20))
    world.step(Step.WAIT_FOR_AGENT)
    world.answer("succeeded", "rebooted: boot id b1 → b2")
    world.step(Step.VALIDATE)
    assert world.phase == "Validating" and world.status["request"]["action"] == "validate"
    world.answer("succeeded")
    done = world.step(Step.RETURN_TO_SERVICE)
    assert done.uncordon and done.remove_marks
    assert world.phase == "Succeeded" and "resolvedAt" in world.status
    assert not world.unschedulable and not world.taint and world.state is None
    world.step(Step.NOTHING)
    steps = [entry["step"] for entry in world.status["history"]]
    assert steps[:2] == ["cordon", "cordon"] and steps[-1] == "return-to-service"


def test_reset_fails_then_reboot_passes() -> None:
    world = World(new_repair("xid-48"))
    world.step(Step.CORDON)
    reset = drain_and_request(world)
    assert reset.action is Action.GPU_RESET and world.status["request"]["gpu"] == {"index": 3}
    world.answer("failed", "reset refused: GPU in use")
    rung = world.step(Step.NEXT_RUNG)
    assert rung.action is Action.REBOOT and world.phase == "Cordoned" and world.status["attempt"] == 2
    world.step(Step.START_DRAIN)  # re-checked and re-drained: already empty
    reboot = world.step(Step.REQUEST_ACTION)
    assert reboot.request_id == request_id(NAME, 2, "reboot")
    world.answer("succeeded")
    world.step(Step.VALIDATE)
    world.answer("succeeded")
    world.step(Step.RETURN_TO_SERVICE)
    assert world.phase == "Succeeded"
    outcomes = [(e["step"], e["outcome"]) for e in world.status["history"]]
    assert ("gpu-reset", "failed") in outcomes


def test_ladder_exhausted_quarantines_and_keeps_the_node_out() -> None:
    world = World(new_repair("xid-79"))
    world.step(Step.CORDON)
    drain_and_request(world, pods=0)
    world.answer("failed", "node did not come back")
    world.step(Step.NEXT_RUNG)
    world.step(Step.START_DRAIN)
    world.facts = replace(world.facts, boot_id="boot-a")
    cycle = world.step(Step.POWER_CYCLE)
    assert world.status["request"]["bootId"] == "boot-a" and cycle.action is Action.POWER_CYCLE
    world.step(Step.WAIT_FOR_AGENT)  # the boot id has not changed yet
    world.later(timedelta(minutes=31))
    quarantine = world.step(Step.QUARANTINE)
    assert "ladder exhausted" in quarantine.message
    assert world.phase == "Quarantined" and world.state is NodeState.QUARANTINED
    assert world.unschedulable and world.taint


def test_power_cycle_succeeds_when_the_boot_id_changes() -> None:
    world = World(new_repair("xid-79", requestedAction="power-cycle"))
    world.facts = replace(world.facts, boot_id="boot-a")
    world.step(Step.CORDON)
    world.step(Step.START_DRAIN)
    world.step(Step.POWER_CYCLE)
    world.facts = replace(world.facts, boot_id="boot-b")
    world.step(Step.VALIDATE)


def test_a_power_cycle_the_bmc_refused_climbs_at_once_in_the_refusals_words() -> None:
    world = World(new_repair("xid-79", requestedAction="power-cycle"))
    world.facts = replace(world.facts, boot_id="boot-a")
    world.step(Step.CORDON)
    world.step(Step.START_DRAIN)
    cycle = world.step(Step.POWER_CYCLE, crash_before_after=True)
    # The shell's power cycle failed: it writes the step's outcome as failed, with the BMC's reason.
    why = "node gpu-node-007: BMC Secret repairbot/bmc may not be read by the operator (RBAC: grant get on it)"
    world.status.update(step_failed(cycle.after, why, world.now))
    world.later(timedelta(seconds=1))  # long before the rung's timeout
    climbed = world.step(Step.QUARANTINE)  # the ladder above power-cycle is quarantine
    assert climbed.message == f"power-cycle failed: {why}; ladder exhausted for xid-79"
    assert world.phase == "Quarantined" and why in world.status["conditions"][-1]["message"]
    failures = [e for e in world.status["history"] if e["outcome"] == "failed"]
    assert [(e["step"], e["message"]) for e in failures] == [("power-cycle", why)]  # once, not twice
    assert not any("did not come back" in e["message"] for e in world.status["history"])


def test_node_cordoned_by_a_human_stays_cordoned_after_success() -> None:
    world = World(new_repair("xid-48"), unschedulable=True)
    world.step(Step.CORDON)
    assert world.status["nodeWasCordoned"] is True
    drain_and_request(world, pods=0)
    world.answer("succeeded")
    world.step(Step.VALIDATE)
    world.answer("succeeded")
    done = world.step(Step.RETURN_TO_SERVICE)
    assert not done.uncordon and world.unschedulable and not world.taint
    assert "left cordoned" in world.status["message"]


def test_human_uncordon_mid_repair_cancels_and_leaves_the_node_alone() -> None:
    world = World(new_repair("xid-79"))
    world.step(Step.CORDON)
    world.facts = replace(world.facts, pods_left=3)
    world.step(Step.START_DRAIN)
    world.unschedulable = False  # kubectl uncordon
    cancel = world.step(Step.CANCEL)
    assert not cancel.uncordon and not cancel.is_destructive and cancel.remove_marks
    assert world.phase == "Cancelled" and not world.unschedulable
    assert "uncordoned by hand" in cancel.message


def test_opt_out_cancels_without_touching_the_node() -> None:
    world = World(new_repair())
    world.facts = replace(world.facts, node_labels={LABEL_DISABLED: "true"})
    cancel = world.step(Step.CANCEL)
    assert not cancel.touches_node and world.phase == "Cancelled"
    assert world.status["conditions"][0]["reason"] == "OptedOut"


@pytest.mark.parametrize("repair_dry_run", [False, True])
def test_dry_run_records_the_plan_and_touches_nothing(repair_dry_run: bool) -> None:
    policy = POLICY if repair_dry_run else policy_for({"dryRun": True})
    world = World(new_repair(dryRun=repair_dry_run), policy=policy)
    plan = world.step(Step.RECORD_DRY_RUN)
    assert not plan.touches_node and not world.unschedulable
    assert "would cordon node gpu-node-007, drain it and climb reboot → power-cycle → quarantine" in plan.message
    assert world.phase == "Cancelled"


def test_drain_timeout_blocks_with_a_message_naming_the_pdb_then_resumes() -> None:
    world = World(new_repair())
    world.step(Step.CORDON)
    world.facts = replace(world.facts, pods_left=1, blocking_pdbs=("train/llama",))
    world.step(Step.START_DRAIN)
    world.later(timedelta(minutes=31))
    timed_out = world.step(Step.DRAIN_TIMED_OUT)
    assert world.phase == "Blocked"
    assert "drain timed out after 31m; 1 pods left; eviction blocked by PDB train/llama" in timed_out.message
    world.step(Step.NOTHING)
    world.facts = replace(world.facts, resume_requested=True)
    world.step(Step.ADMIT)
    assert world.phase == "Cordoned"
    world.facts = replace(world.facts, resume_requested=False, pods_left=0)
    world.step(Step.START_DRAIN)
    world.step(Step.REQUEST_ACTION)


def test_request_ids_are_deterministic_across_a_restart() -> None:
    world = World(new_repair("xid-79"))
    world.step(Step.CORDON)
    world.facts = replace(world.facts, pods_left=0)
    world.step(Step.START_DRAIN)
    first, again = world.decide(), world.decide()
    assert first == again  # same inputs → same decision, same id
    world.step(Step.REQUEST_ACTION)
    restarted = World(copy.deepcopy(world.obj), unschedulable=True, taint=True, facts=world.facts, now=world.now)
    restarted.step(Step.WAIT_FOR_AGENT)  # no second request
    assert restarted.status["request"]["id"] == request_id(NAME, 1, "reboot")


def test_crash_between_uncordon_and_status_finishes_the_return() -> None:
    world = World(new_repair("xid-48"))
    world.step(Step.CORDON)
    drain_and_request(world, pods=0)
    world.answer("succeeded")
    world.step(Step.VALIDATE)
    world.answer("succeeded")
    world.step(Step.RETURN_TO_SERVICE, crash_before_after=True)
    world.unschedulable = world.taint = False  # the marks came off, the status write did not
    world.step(Step.RETURN_TO_SERVICE)
    assert world.phase == "Succeeded"


def test_crash_between_cordon_and_status_finishes_that_cordon_without_recording_a_second() -> None:
    world = World(new_repair())
    world.step(Step.CORDON, crash_before_after=True)
    assert world.phase == "Cordoned"
    finished = world.step(Step.CORDON)
    assert finished.cordon and not finished.patch  # the marks again (idempotent), no new "started"
    assert "acknowledgedAt" in world.status
    assert [(e["step"], e["outcome"]) for e in world.status["history"]] == [("cordon", "started"), ("cordon", "done")]


def test_a_storm_block_killed_mid_cordon_finishes_its_cordon_and_resumes_with_one_cordon_on_record() -> None:
    faults = tuple(Fault(f"n{i}", T0 - timedelta(seconds=i), "leaf-3") for i in range(6))
    world = World(new_repair())
    world.facts = replace(world.facts, recent_faults=faults, node_labels={LABEL_FAILURE_DOMAIN: "leaf-3"})
    world.step(Step.BLOCK, crash_before_after=True)  # SIGKILL after "cordon only" was recorded, before it was done
    assert world.phase == "Blocked" and "acknowledgedAt" not in world.status
    world.step(Step.CORDON)
    assert world.phase == "Blocked" and "acknowledgedAt" in world.status
    cordons = [e for e in world.status["history"] if e["step"] == "cordon" and e["outcome"] == "started"]
    assert len(cordons) == 1


def test_notify_rung_keeps_the_node_cordoned_undrained_until_the_finding_clears() -> None:
    world = World(new_repair("ib-port-down"))
    world.step(Step.CORDON)
    hold = world.step(Step.HOLD)
    assert world.phase == "Remediating" and world.status["action"] == "notify" and not hold.is_destructive
    quiet = world.step(Step.HOLD)
    assert not quiet.patch  # waiting writes nothing
    world.facts = replace(world.facts, finding_present=False)
    world.step(Step.VALIDATE)


def test_a_fatal_xid_during_a_notify_hold_escalates_to_its_own_ladder() -> None:
    world = World(new_repair("ib-port-down"))
    world.step(Step.CORDON)
    world.step(Step.HOLD)
    xid79 = {"code": "xid-79", "firstSeen": format_time(T0 + timedelta(minutes=5)), "gpu": {"index": 1},
             "action": "reboot"}  # fmt: skip
    world.obj["spec"]["findings"].append(xid79)
    escalated = world.step(Step.ESCALATE)
    assert escalated.event == "Escalated" and "xid-79" in escalated.message
    assert world.phase == "Cordoned" and world.status["reason"] == "xid-79" and world.status["attempt"] == 1
    request = drain_and_request(world)  # drained this time, then the reboot xid-79's ladder starts with
    assert request.action is Action.REBOOT


def test_resume_of_a_hold_with_nothing_left_to_climb_validates_without_dcgm() -> None:
    world = World(new_repair("ib-port-down"))
    world.step(Step.CORDON)
    world.step(Step.HOLD)
    world.facts = replace(world.facts, resume_requested=True)
    validate = world.step(Step.VALIDATE)  # "I looked, it is fine": check and return, not quarantine
    assert dict(validate.patch)["request"]["dcgmDiagLevel"] == 0  # never drained: no diag on busy GPUs
    world.facts = replace(world.facts, resume_requested=False)
    world.answer("succeeded")
    world.step(Step.RETURN_TO_SERVICE)
    assert world.phase == "Succeeded"


def test_lemon_node_is_quarantined_straight_after_cordon() -> None:
    world = World(new_repair())
    world.facts = replace(world.facts, recent_repairs=(T0 - timedelta(days=1), T0 - timedelta(days=2), T0))
    world.step(Step.CORDON)
    lemon = world.step(Step.QUARANTINE)
    assert "repaired 3 times within 7d" in lemon.message and world.phase == "Quarantined"


def test_a_lemon_gpu_is_quarantined_straight_after_cordon_while_the_node_is_no_lemon() -> None:
    board = {"index": 3, "uuid": "GPU-6b1d3f2a", "pci": "0000:2b:00.0", "serial": "1650123012345"}
    finding = {"code": "xid-79", "firstSeen": format_time(T0), "gpu": board, "action": "reboot"}
    world = World({**new_repair(), "spec": {**new_repair()["spec"], "findings": [finding]}})
    same = GpuRef.from_dict(board)
    world.facts = replace(world.facts, recent_repairs=(T0 - timedelta(days=2), T0 - timedelta(days=1)),
                          recent_gpu_repairs=(GpuRepair(T0 - timedelta(days=2), (same,)),
                                              GpuRepair(T0 - timedelta(days=1), (same,))))  # fmt: skip
    world.step(Step.CORDON)
    lemon = world.step(Step.QUARANTINE)
    assert "serial 1650123012345" in lemon.message and world.phase == "Quarantined"
    assert [c["reason"] for c in world.status["conditions"] if c["type"] == "Quarantined"] == ["LemonGpu"]


def test_reboot_cap_blocks_then_lets_go_a_day_later() -> None:
    world = World(new_repair())
    world.facts = replace(world.facts, recent_reboots=(T0 - timedelta(hours=2), T0 - timedelta(hours=1)))
    world.step(Step.CORDON)
    blocked = world.step(Step.BLOCK)
    assert world.phase == "Blocked" and "rebooted 2 times in 24h" in blocked.message
    world.later(timedelta(hours=23))
    world.step(Step.ADMIT)


def test_budget_queues_visibly_and_quietly() -> None:
    world = World(new_repair(), policy=policy_for({"budget": {"maxUnavailable": 2}}))
    world.facts = replace(world.facts, pool=PoolUsage("a100", 50, 2))
    queued = world.step(Step.QUEUE)
    assert world.phase == "Pending" and "2 of 50 nodes in pool a100" in queued.message
    assert not world.step(Step.QUEUE).patch
    world.facts = replace(world.facts, pool=PoolUsage("a100", 50, 1))
    world.step(Step.CORDON)


def test_storm_blocks_admission_with_cordon_only_and_an_incident() -> None:
    faults = tuple(Fault(f"n{i}", T0 - timedelta(seconds=10 * i), "leaf-3") for i in range(6))
    world = World(new_repair())
    world.facts = replace(world.facts, recent_faults=faults, node_labels={LABEL_FAILURE_DOMAIN: "leaf-3"})
    blocked = world.step(Step.BLOCK)
    assert blocked.cordon and world.unschedulable and world.phase == "Blocked"
    assert world.status["incident"].startswith("storm-") and "leaf-3" in blocked.message
    world.step(Step.NOTHING)


def test_breaker_opening_mid_drain_blocks_before_the_action() -> None:
    world = World(new_repair())
    world.step(Step.CORDON)
    world.facts = replace(world.facts, pods_left=2)
    world.step(Step.START_DRAIN)
    world.facts = replace(world.facts, breakers=Breakers(fleet=Breaker(BreakerState.OPEN, "storm-1", "leaf down", T0)))
    world.step(Step.BLOCK)
    half_open = Breaker(BreakerState.HALF_OPEN, "storm-1", canaries=(NAME,))
    world.facts = replace(world.facts, breakers=Breakers(fleet=half_open))
    world.step(Step.ADMIT)


@pytest.mark.parametrize(("deleting", "exists"), [(True, True), (False, False)])
def test_node_going_away_cancels(deleting: bool, exists: bool) -> None:
    world = World(new_repair())
    world.step(Step.CORDON)
    world.facts = replace(world.facts, node_deleting=deleting, node_exists=exists)
    assert not world.step(Step.CANCEL).touches_node


def test_finding_cleared_before_any_action_returns_the_node() -> None:
    world = World(new_repair())
    world.step(Step.CORDON)
    world.facts = replace(world.facts, finding_present=False)
    release = world.step(Step.CANCEL)
    assert release.uncordon and world.phase == "Cancelled" and not world.unschedulable


def test_validation_waits_for_the_quiet_period_and_fails_on_new_faults() -> None:
    policy = policy_for({"validation": {"prometheusUrl": "http://prom:9090", "quietPeriod": "10m"}})
    world = World(new_repair("xid-48"), policy=policy)
    world.step(Step.CORDON)
    drain_and_request(world, pods=0)
    world.answer("succeeded")
    world.step(Step.VALIDATE)
    world.answer("succeeded")
    world.step(Step.WAIT_FOR_AGENT)
    world.later(timedelta(minutes=11))
    world.facts = replace(world.facts, quiet_period_ok=False)
    assert "quiet period" in world.step(Step.NEXT_RUNG).message


# --------------------------------------------------------------------------- properties


def _snapshots() -> list[dict[str, Any]]:
    """Repairs in every non-terminal phase, taken from real runs of the machine."""
    shots: list[dict[str, Any]] = [new_repair(), new_repair("ib-port-down")]
    world = World(new_repair("xid-48"))
    for expected in (Step.CORDON, Step.START_DRAIN):
        world.step(expected)
        shots.append(copy.deepcopy(world.obj))
    world.facts = replace(world.facts, pods_left=0)
    world.step(Step.REQUEST_ACTION)
    shots.append(copy.deepcopy(world.obj))
    world.answer("succeeded")
    world.step(Step.VALIDATE)
    shots.append(copy.deepcopy(world.obj))
    world.answer("failed")
    world.step(Step.NEXT_RUNG)
    shots.append(copy.deepcopy(world.obj))
    return shots


SNAPSHOTS = _snapshots()
facts_strategy = st.builds(
    Facts,
    node_unschedulable=st.booleans(),
    our_taint=st.booleans(),
    pods_left=st.integers(0, 3),
    finding_present=st.sampled_from([None, True, False]),
    resume_requested=st.booleans(),
    pool=st.builds(PoolUsage, size=st.integers(0, 20), out_of_service=st.integers(0, 20)),
    recent_reboots=st.lists(st.just(T0), max_size=3).map(tuple),
)


@settings(max_examples=300)
@given(st.sampled_from(SNAPSHOTS), facts_strategy, st.integers(0, 120))
def test_no_destructive_step_while_the_breaker_is_open(obj: dict[str, Any], facts: Facts, minutes: int) -> None:
    open_breaker = Breaker(BreakerState.OPEN, "storm-x", "storm", T0)
    facts = replace(facts, breakers=Breakers(fleet=open_breaker))
    decision = decide(RepairView.from_object(obj), facts, POLICY, T0 + timedelta(minutes=minutes))
    assert decision.step not in DESTRUCTIVE_STEPS


@settings(max_examples=300)
@given(st.sampled_from(SNAPSHOTS), facts_strategy, st.booleans(), st.integers(0, 120))
def test_dry_run_never_touches_a_node(obj: dict[str, Any], facts: Facts, per_repair: bool, minutes: int) -> None:
    obj = copy.deepcopy(obj)
    obj["spec"]["dryRun"] = per_repair
    policy = POLICY if per_repair else policy_for({"dryRun": True})
    decision = decide(RepairView.from_object(obj), facts, policy, T0 + timedelta(minutes=minutes))
    assert not decision.touches_node, decision


@settings(max_examples=200)
@given(st.sampled_from(SNAPSHOTS), facts_strategy, st.integers(0, 120))
def test_same_inputs_same_decision(obj: dict[str, Any], facts: Facts, minutes: int) -> None:
    view = RepairView.from_object(obj)
    now = T0 + timedelta(minutes=minutes)
    assert decide(view, facts, POLICY, now) == decide(RepairView.from_object(copy.deepcopy(obj)), facts, POLICY, now)


def test_terminal_phases_do_nothing() -> None:
    for phase in (Phase.SUCCEEDED, Phase.QUARANTINED, Phase.CANCELLED, Phase.FAILED):
        obj = new_repair() | {"status": {"phase": phase.value}}
        assert decide(RepairView.from_object(obj), Facts(), POLICY, T0).step is Step.NOTHING


def test_first_destructive_step_waits_for_the_breaker_settle_time() -> None:
    """Cordon at once (MTTA), but no drain before the settle time: a storm must be seen before a reboot."""
    world = World(new_repair(), policy=parse_policy({"breaker": {"settleTime": "30s"}}))
    world.step(Step.CORDON)
    world.now = T0 + timedelta(seconds=10)
    waiting = world.decide()
    assert waiting.step is Step.NOTHING and "settle time" in waiting.message
    assert waiting.requeue_after == timedelta(seconds=20)
    world.now = T0 + timedelta(seconds=30)
    world.step(Step.START_DRAIN)


def test_validation_request_carries_the_dcgm_level_and_a_required_load_check() -> None:
    world = World(new_repair(), policy=policy_for({"validation": {"dcgmDiagLevel": 1, "requireLoadCheck": True}}))
    world.step(Step.CORDON)
    world.step(Step.START_DRAIN)
    world.step(Step.REQUEST_ACTION)
    request = world.status["request"]
    world.status["agent"] = {"requestId": request["id"], "result": "succeeded", "message": "rebooted"}
    decision = world.step(Step.VALIDATE)
    validate = dict(decision.patch)["request"]
    assert validate["action"] == "validate"
    assert validate["dcgmDiagLevel"] == 2  # a load check needs at least level 2 (real work on every GPU)
    assert validate["requireLoadCheck"] is True


def test_only_repairs_that_act_may_be_canaries_and_notify_holds_pass_a_half_open_breaker() -> None:
    from repairbot.machine.decide import acts_on_node

    assert acts_on_node(RepairView.from_object(new_repair("xid-79")), POLICY, None)
    held = RepairView.from_object(new_repair("ib-port-down"))
    assert not acts_on_node(held, POLICY, None)  # a canary must prove automatic repairs work again
    half_open = Breaker(state=BreakerState.HALF_OPEN, canaries=("someone-else",))
    world = World(new_repair("ib-port-down"), facts=Facts(pool=PoolUsage(size=100), breakers=Breakers(fleet=half_open)))
    world.step(Step.BLOCK)  # admission: not a canary
    world.step(Step.ADMIT)  # its rung is notify: nothing destructive, so it may go and hold for its human


def test_a_nonfatal_nvlink5_xid_is_not_reset_by_the_catalog_ladder() -> None:
    nonfatal = new_repair("xid-145")
    nonfatal["spec"]["findings"][0]["action"] = "notify"  # the agent decoded "Nonfatal" from the Xid's text
    catalog = catalog_fallback(default_catalog())
    world = World(nonfatal, fallback=catalog)
    world.step(Step.CORDON)
    world.step(Step.HOLD)  # the policy's default ladder: held for a human, no GPU reset
    fatal = World(new_repair("xid-145"), fallback=catalog)  # "Fatal": the catalog's ladder acts
    fatal.obj["spec"]["findings"][0]["action"] = "gpu-reset"
    fatal.step(Step.CORDON)
    assert drain_and_request(fatal).action is Action.GPU_RESET


def test_a_hold_a_human_asks_to_quarantine_is_quarantined() -> None:
    world = World(new_repair("ib-port-down"))
    world.step(Step.CORDON)
    world.step(Step.HOLD)
    world.obj["spec"]["requestedAction"] = "quarantine"  # repairbot repair NODE --action quarantine
    world.step(Step.QUARANTINE)
    assert world.phase == "Quarantined" and world.state is NodeState.QUARANTINED and world.unschedulable


SXID_AWARE = catalog_fallback(default_catalog(), default_sxid_catalog())
NVSWITCH = "nvidia-nvswitch3: SXid (PCI:0000:c6:00.0): "


def repair_of_line(line: str) -> dict[str, Any]:
    """The repair an agent opens for one kernel-log line, with the action the line's own words asked for."""
    event = parse_line(line)
    assert event is not None
    repair = new_repair(event.finding_code)
    repair["spec"]["findings"][0]["action"] = event.action.value
    return repair


def test_a_fatal_nvswitch_ecc_double_bit_error_reboots_the_baseboard() -> None:
    """FM guide: a fatal SXid needs the partition's GPUs and NVSwitches reset; on HGX that is a reboot."""
    world = World(repair_of_line(NVSWITCH + "19067, Fatal, Link 12 NVLTLC TX ECC DBE"), fallback=SXID_AWARE)
    world.step(Step.CORDON)
    assert drain_and_request(world).action is Action.REBOOT


@pytest.mark.parametrize("line", [NVSWITCH + "19067, Non-fatal, Link 12 ECC DBE", NVSWITCH + "10004, Fatal, thermal"])
def test_an_nvswitch_line_a_reboot_does_not_help_holds_the_node_for_a_person(line: str) -> None:
    """A Non-fatal ECC line, and a Fatal thermal event (a reboot does not cool a switch), reset nothing."""
    world = World(repair_of_line(line), fallback=SXID_AWARE)
    world.step(Step.CORDON)
    world.step(Step.HOLD)


def test_a_fatal_line_of_an_sxid_the_table_ignores_climbs_the_fabric_reset() -> None:
    world = World(repair_of_line(NVSWITCH + "11012, Fatal, ingress header ECC limit"), fallback=SXID_AWARE)
    world.step(Step.CORDON)
    assert drain_and_request(world).action is Action.REBOOT


# --------------------------------------------------------------------------- the faulty tag of a waiting repair
# Intake no longer labels a node when an alert opens a repair (issue 16: one API request per alert): the
# operator writes ``faulty`` only when its decision leaves a Pending repair waiting without touching the
# node (the budget queue; an open breaker with the budget full), for every source alike. A repair admitted
# at once goes straight to ``repairing`` in its cordon patch. The shell skips the write when the node
# already carries one of RepairBot's states (tests/integration/operator/test_waiting_repair_tag.py).

BUDGET_OF_TWO = policy_for({"budget": {"maxUnavailable": 2}})
FULL = PoolUsage("a100", 50, 2)
OPEN_FLEET = Breakers(fleet=Breaker(BreakerState.OPEN, "storm-1", "leaf down"))


@pytest.mark.parametrize("source", [Source.AGENT, Source.GRAFANA, Source.ALERTMANAGER, Source.MANUAL])
def test_a_repair_queued_by_a_full_budget_tags_its_node_faulty_whatever_its_source(source: Source) -> None:
    world = World(new_repair(source=source.value), policy=BUDGET_OF_TWO)
    world.facts = replace(world.facts, pool=FULL)
    queued = world.step(Step.QUEUE)
    assert queued.node_state is NodeState.FAULTY and not queued.cordon and not queued.is_destructive
    assert world.step(Step.QUEUE).node_state is NodeState.FAULTY  # the shell skips it: the node has it
    world.facts = replace(world.facts, pool=PoolUsage("a100", 50, 1))
    admitted = world.step(Step.CORDON)
    assert admitted.node_state is NodeState.REPAIRING and world.state is NodeState.REPAIRING


def test_a_repair_admitted_at_once_never_asks_for_faulty() -> None:
    world = World(new_repair(source="grafana"))
    admitted = world.step(Step.CORDON)
    assert admitted.node_state is NodeState.REPAIRING and [d.node_state for d in world.log] == [NodeState.REPAIRING]


def test_a_new_repair_blocked_by_an_open_breaker_with_the_budget_full_tags_its_node_faulty() -> None:
    world = World(new_repair(), policy=BUDGET_OF_TWO)
    world.facts = replace(world.facts, pool=FULL, breakers=OPEN_FLEET)
    blocked = world.step(Step.BLOCK)
    assert not blocked.cordon and blocked.node_state is NodeState.FAULTY and world.phase == "Blocked"


def test_a_new_repair_blocked_by_an_open_breaker_with_room_cordons_as_repairing() -> None:
    world = World(new_repair())
    world.facts = replace(world.facts, breakers=OPEN_FLEET)
    blocked = world.step(Step.BLOCK)
    assert blocked.cordon and blocked.node_state is NodeState.REPAIRING


def test_a_dry_run_repair_never_asks_for_the_tag() -> None:
    world = World(new_repair(dryRun=True), policy=BUDGET_OF_TWO)
    world.facts = replace(world.facts, pool=FULL)
    recorded = world.step(Step.RECORD_DRY_RUN)
    assert not recorded.touches_node


def test_a_queued_repair_cancelled_by_its_finding_clearing_takes_its_faulty_tag_off() -> None:
    """Left behind with no repair, the label would make the operator open a manual repair of a healthy node."""
    world = World(new_repair(), policy=BUDGET_OF_TWO)
    world.facts = replace(world.facts, pool=FULL)
    world.step(Step.QUEUE)
    world.facts = replace(world.facts, finding_present=False, node_labels={LABEL_STATE: NodeState.FAULTY.value})
    cancelled = world.step(Step.CANCEL)
    assert cancelled.remove_marks and not cancelled.uncordon and world.phase == "Cancelled" and world.state is None


def test_a_queued_repair_cancelled_by_a_human_takes_its_faulty_tag_off_but_never_uncordons() -> None:
    world = World(new_repair(), policy=BUDGET_OF_TWO)
    world.facts = replace(world.facts, pool=FULL)
    world.step(Step.QUEUE)
    world.facts = replace(world.facts, cancel_requested_by="alice", node_labels={LABEL_STATE: "faulty"})
    cancelled = world.step(Step.CANCEL)
    assert cancelled.remove_marks and not cancelled.uncordon and not cancelled.cordon


def test_a_pending_repair_that_never_waited_leaves_a_faulty_label_alone_when_cancelled() -> None:
    """A human's ``faulty`` label (the repair it opened was never queued) is the human's to take off."""
    world = World(new_repair())
    world.facts = replace(world.facts, finding_present=False, node_labels={LABEL_STATE: "faulty"})
    assert not world.step(Step.CANCEL).touches_node


def test_a_queued_repair_of_a_node_opted_out_meanwhile_touches_nothing() -> None:
    world = World(new_repair(), policy=BUDGET_OF_TWO)
    world.facts = replace(world.facts, pool=FULL)
    world.step(Step.QUEUE)
    labels = {LABEL_STATE: "faulty", "repairbot.io/disabled": "true"}
    world.facts = replace(world.facts, node_labels=labels)
    assert not world.step(Step.CANCEL).touches_node
