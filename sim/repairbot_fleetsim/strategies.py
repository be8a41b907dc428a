"""The three ways of running a fleet that the simulation compares on one failure trace.

- **RepairBot**: the agent's event path finds a fault within a second; the
  operator cordons, waits the breaker's settle time, then climbs the policy's
  ladder for the finding (the operator's own ``Policy.ladder_for`` with the Xid
  catalog behind it), within the budget, the storm breakers (the fleet's and
  the node's leaf's), the reboot cap and the lemon rule. ``notify`` rungs page a human and hold the node cordoned.
- **Polling checker**: a script that looks at every node each five minutes,
  then climbs the same ladder, with no storm breaker and no settle time.
- **Manual on-call**: a human acknowledges in 101 s and reboots first,
  whatever the fault — then power-cycles, then escalates to hardware (or, for
  a dead link, to the network team). Thirty minutes per action, no budget, no
  breaker, no lemon rule, and, generously, as many hands as there are pages.

Each strategy is bound to one :class:`~repairbot_fleetsim.engine.Fleet` and
returns, per failure, the process that handles it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Protocol

from repairbot.catalog.xid import default_catalog
from repairbot.machine import catalog_fallback
from repairbot.model import Action
from repairbot.policy import LadderFallback, Policy, Rung
from repairbot_fleetsim.engine import Fleet, Process, Wait
from repairbot_fleetsim.failures import Failure, TrueFix
from repairbot_fleetsim.storm_gate import NoGate, Repair, StormGate


def policy_ladder(policy: Policy, finding: str) -> tuple[Rung, ...]:
    """The ladder the operator climbs for a finding class: the policy's, with the Xid catalog behind it."""
    return policy.ladder_for(finding, fallback=_catalog_ladders())


@functools.cache
def _catalog_ladders() -> LadderFallback:
    return catalog_fallback(default_catalog())


class Strategy(Protocol):
    """A way of running the fleet: bound to one fleet, it returns the process that handles each failure."""

    @property
    def name(self) -> str: ...
    @property
    def label(self) -> str: ...

    def bind(self, fleet: Fleet) -> Callable[[Failure], Process]: ...


def maintenance(fleet: Fleet, failure: Failure) -> Process:
    """Unplanned host maintenance: done by hand, the same under every strategy."""
    if not fleet.begin(failure, broken=True):
        return
    fleet.cordon(failure, acknowledge=False)
    fleet.set_outcome(failure, "maintenance")
    yield fleet.timings.maintenance
    fleet.finish(failure, "maintenance")


def replace_hardware(fleet: Fleet, failure: Failure) -> Process:
    """Quarantine → RMA → the hardware team swaps the part → validation → back in service."""
    fleet.ledger.quarantines += 1
    fleet.set_outcome(failure, "quarantined")
    yield fleet.timings.replacement
    yield fleet.timings.validation
    fleet.finish(failure, "quarantined", replaced=True)


def wait_for_network(fleet: Fleet, failure: Failure, *, paged_at: float) -> Process:
    """The node waits, cordoned, for the network team's repair of its switch or cable, then is validated."""
    fleet.set_outcome(failure, "network")
    yield fleet.network_repair(failure, paged_at=paged_at)
    yield fleet.timings.validation
    fleet.finish(failure, "network")


@dataclass(frozen=True, slots=True)
class Automated:
    """RepairBot (``storm_breaker`` on, event detection) or the polling checker (off, 5-minute polls)."""

    name: str
    label: str
    storm_breaker: bool
    polling: bool

    def bind(self, fleet: Fleet) -> Callable[[Failure], Process]:
        return _AutomatedRun(self, fleet).process


class _AutomatedRun:
    def __init__(self, spec: Automated, fleet: Fleet) -> None:
        self.spec = spec
        self.fleet = fleet
        self.timings = fleet.timings
        self.gate = StormGate(fleet) if spec.storm_breaker else NoGate(fleet)
        self._ladders: dict[str, tuple[Rung, ...]] = {}

    def ladder(self, finding: str) -> tuple[Rung, ...]:
        """The policy's ladder for a finding class, as the operator computes it."""
        if finding not in self._ladders:
            self._ladders[finding] = policy_ladder(self.fleet.policy, finding)
        return self._ladders[finding]

    def detection(self, failure: Failure) -> float:
        if self.spec.polling:
            return failure.poll_delay
        return failure.alert_delay if failure.kind.detected_by == "alert" else failure.agent_delay

    def process(self, failure: Failure) -> Process:
        fleet = self.fleet
        if failure.fix is TrueFix.MAINTENANCE:
            yield from maintenance(fleet, failure)
            return
        ladder = self.ladder(failure.finding) if failure.finding else ()
        if not ladder or ladder[0].action is Action.NONE:
            fleet.ledger.seen.append(failure.id)  # no repair opens: the job restarts elsewhere
            return
        if not fleet.begin(failure, broken=failure.fix is not TrueFix.NONE):
            return
        yield self.detection(failure) + self.timings.intake
        repair = Repair(failure, opened=fleet.now, acts=any(rung.action.is_destructive for rung in ladder))
        self.gate.opened(repair)
        yield from self._admit(repair)
        yield from self._climb(repair, ladder)

    def _admit(self, repair: Repair) -> Process:
        """Pending → Cordoned: a blocked repair still cordons (budget permitting); the budget queues."""
        fleet, failure = self.fleet, repair.failure
        while True:
            if not self.gate.allows(repair):
                if fleet.budget_allows():
                    fleet.cordon(failure)
                yield from self.gate.wait(repair)
            elif not fleet.node(failure.node).cordoned and not fleet.budget_allows():
                yield fleet.budget.next()
            else:
                break
        fleet.cordon(failure)

    def _climb(self, repair: Repair, ladder: tuple[Rung, ...]) -> Process:
        fleet, failure = self.fleet, repair.failure
        state = fleet.node(failure.node)
        lemon = fleet.policy.lemon
        earlier = [t for t in state.acted_repairs if fleet.now - t <= lemon.window.total_seconds()]
        if len(earlier) >= lemon.max_repairs:
            fleet.ledger.lemons += 1
            yield from self._quarantine(repair)
            return
        drained = acted = False
        cured_by: list[Action] = []
        for rung in ladder:
            if rung.action is Action.QUARANTINE:
                break
            if rung.action is Action.NOTIFY:
                resolved = yield from self._hold(repair)
                if resolved:
                    return
                continue
            if rung.action is Action.NONE:
                continue
            yield from self._clear_to_act(repair, rung.action, first=not acted)
            if not drained:
                yield self.timings.drain
                drained = True
                yield from self._clear_to_act(repair, rung.action, first=False)
            if not acted:
                state.acted_repairs.append(repair.opened)
                acted = True
            runtime = self.timings.action_runtime[rung.action]
            limit = rung.timeout.total_seconds() if rung.timeout is not None else runtime
            cured = runtime <= limit and failure.fix.fixed_by(rung.action)
            fleet.act(failure, rung.action, by="automation", cured=cured)
            yield min(runtime, limit)
            if runtime > limit:
                continue  # timed out: the next rung
            cured_by.append(rung.action)
            yield self.timings.validation
            if fleet.validation_passes(failure, cured):
                if not cured:
                    fleet.relapse_later(failure)
                fleet.finish(failure, "repaired", cured_by=tuple(cured_by))
                self.gate.finished(repair, succeeded=True)
                return
        yield from self._quarantine(repair)

    def _clear_to_act(self, repair: Repair, action: Action, *, first: bool) -> Process:
        """The destructive-step blockers (breaker, reboot cap), then the settle time before a first action."""
        fleet, failure = self.fleet, repair.failure
        while True:
            if not self.gate.allows(repair):
                yield from self.gate.wait(repair)
                continue
            capped = fleet.reboot_cap_wait(failure) if action in (Action.REBOOT, Action.POWER_CYCLE) else 0.0
            if capped > 0:
                fleet.ledger.reboot_cap_waits += 1
                yield capped
                continue
            settling = repair.opened + self.gate.settle_time - fleet.now if first else 0.0
            if settling > 0:
                yield settling
                continue
            return

    def _hold(self, repair: Repair) -> Generator[Wait, None, bool]:
        """A ``notify`` rung: the node stays cordoned, undrained, while a human looks. True: resolved here."""
        fleet, failure = self.fleet, repair.failure
        if repair.incident is not None:
            acknowledged = repair.incident.acknowledged  # already paged as part of the storm incident
        else:
            fleet.ledger.pages += 1
            acknowledged = fleet.now + self.timings.human_ack
        if acknowledged > fleet.now:
            yield acknowledged - fleet.now
        if failure.fix is TrueFix.FABRIC:
            yield from wait_for_network(fleet, failure, paged_at=acknowledged)
        elif failure.fix is TrueFix.REPLACE:
            return False  # the human resumes the repair; the ladder runs out into quarantine
        elif failure.fix is TrueFix.NONE:
            yield self.timings.validation
            fleet.finish(failure, "no-fault")
        else:
            action = Action(failure.fix.value)  # the human runs the cure by hand
            fleet.act(failure, action, by="human", cured=True)
            yield self.timings.manual_action
            fleet.finish(failure, "repaired", cured_by=(action,))
        self.gate.finished(repair, succeeded=True)
        return True

    def _quarantine(self, repair: Repair) -> Process:
        self.gate.finished(repair, succeeded=False)
        yield from replace_hardware(self.fleet, repair.failure)


@dataclass(frozen=True, slots=True)
class ManualOnCall:
    """A human on call: reboot first, power cycle next, then escalate."""

    name: str = "manual"
    label: str = "Manual on-call"

    def bind(self, fleet: Fleet) -> Callable[[Failure], Process]:
        def process(failure: Failure) -> Process:
            return self._handle(fleet, failure)

        return process

    def _handle(self, fleet: Fleet, failure: Failure) -> Process:
        timings = fleet.timings
        if failure.fix is TrueFix.MAINTENANCE:
            yield from maintenance(fleet, failure)
            return
        if not failure.kind.node_blamed:
            fleet.ledger.seen.append(failure.id)
            return
        if not fleet.begin(failure, broken=failure.fix is not TrueFix.NONE):
            return
        fleet.ledger.pages += 1
        yield timings.human_ack
        fleet.cordon(failure)
        tries = (Action.REBOOT,) if failure.fix is TrueFix.FABRIC else (Action.REBOOT, Action.POWER_CYCLE)
        cured_by: list[Action] = []
        for action in tries:
            cured = failure.fix.fixed_by(action)
            fleet.act(failure, action, by="human", cured=cured)
            yield timings.manual_action
            cured_by.append(action)
            if fleet.validation_passes(failure, cured):
                if not cured:
                    fleet.relapse_later(failure)
                outcome = "no-fault" if failure.fix is TrueFix.NONE else "repaired"
                fleet.finish(failure, outcome, cured_by=tuple(cured_by))
                return
        if failure.fix is TrueFix.FABRIC:
            yield from wait_for_network(fleet, failure, paged_at=fleet.now)
        else:
            yield from replace_hardware(fleet, failure)


REPAIRBOT = Automated("repairbot", "RepairBot", storm_breaker=True, polling=False)
POLLING = Automated("polling", "5-min polling checker", storm_breaker=False, polling=True)
MANUAL = ManualOnCall()
STRATEGIES: tuple[Strategy, ...] = (REPAIRBOT, POLLING, MANUAL)
