"""The operator's storm breaker on the simulated clock, with the human who resumes it.

The arithmetic is the operator's own: :class:`repairbot.operator.breaker.Breaker`
sees every repair opened (node, time, failure domain) and trips when the
policy's ``maxFaults``/``window`` or ``maxPerDomain``/``domainWindow`` say a
storm is on. While it is open, repairs cordon but take no destructive step
(they wait in Blocked); one incident pages a human, who looks, calls the
network team where the nodes' findings point at the fabric, and resumes after
``resume_after``. Resuming half-opens the breaker and admits one canary — the
human picks a repair outside the storm's domain when there is one — and the
canary's outcome closes or reopens it, exactly as the reconciler does.

A polling checker has no breaker: :class:`NoGate` lets everything through.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from repairbot.fleetsim.engine import Fleet, Process, Pulse
from repairbot.fleetsim.failures import Failure, TrueFix
from repairbot.operator.breaker import Breaker, BreakerState, Fault

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
"""Simulated second 0 as a datetime, for the breaker's window arithmetic."""


@dataclass(frozen=True, slots=True)
class Incident:
    """One open breaker: one page, acknowledged ``human_ack`` after it opened."""

    opened: float
    acknowledged: float
    message: str


@dataclass
class Repair:
    """One GPURepair: the failure it was opened for, when, and the incident it was held under."""

    failure: Failure
    opened: float
    incident: Incident | None = None
    acts: bool = True  # its ladder holds an action on the node; notify-only repairs never take a canary slot

    @property
    def node(self) -> str:
        return f"gpu-node-{self.failure.node:04d}"

    @property
    def name(self) -> str:
        return f"{self.node}-{self.failure.id}"


class StormGate:
    """The storm breaker of one simulated run."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.policy = fleet.policy.breaker
        self.breaker = Breaker()
        self.changed = Pulse(fleet.kernel)
        self.incident: Incident | None = None
        self._faults: list[Fault] = []
        self._blocked: dict[str, Repair] = {}
        self._lookback = max(self.policy.window, self.policy.domain_window)

    @property
    def settle_time(self) -> float:
        """A repair waits this long after detection before its first drain, so a storm is seen first."""
        return self.policy.settle_time.total_seconds()

    def opened(self, repair: Repair) -> None:
        """A new repair is a new fault for the breaker to count."""
        now = _at(self.fleet.now)
        self._faults = [f for f in self._faults if now - f.at <= self._lookback]
        self._faults.append(Fault(repair.node, now, f"leaf-{repair.failure.domain:03d}"))
        self._settle(self.breaker.observe(self._faults, self.policy, now=now))

    def allows(self, repair: Repair) -> bool:
        """As the operator's StormBreaker: canaries act; once resumed, notify-only repairs may hold too."""
        resumed = self.breaker.state is BreakerState.HALF_OPEN
        return self.breaker.allows(repair.name) or (resumed and not repair.acts)

    def wait(self, repair: Repair) -> Process:
        """Blocked until the breaker lets this repair act; a storm's fabric faults go to the network team."""
        if self.allows(repair):
            return
        started = self.fleet.now
        self._blocked[repair.name] = repair
        repair.incident = repair.incident or self.incident
        if repair.failure.fix is TrueFix.FABRIC and self.incident is not None:
            self.fleet.network_repair(repair.failure, paged_at=max(started, self.incident.acknowledged))
        while not self._admitted(repair):
            yield self.changed.next()
        del self._blocked[repair.name]
        self.fleet.ledger.breaker_blocked_seconds += self.fleet.now - started
        if repair.failure.storm is None:
            self.fleet.ledger.breaker_held_bystanders.append(self.fleet.now - started)

    def _admitted(self, repair: Repair) -> bool:
        """A blocked repair that acts takes a free canary slot of a half-open breaker, as the reconciler lets it."""
        if self.breaker.state is BreakerState.HALF_OPEN and repair.acts:
            self.breaker = self.breaker.admit(repair.name, self.policy)
        return self.allows(repair)

    def finished(self, repair: Repair, *, succeeded: bool) -> None:
        """A repair reached Succeeded or Quarantined: a canary's outcome closes or reopens the breaker."""
        now = _at(self.fleet.now)
        self._settle(self.breaker.canary_finished(repair.name, succeeded=succeeded, policy=self.policy, now=now))

    def _settle(self, breaker: Breaker) -> None:
        tripped = breaker.state is BreakerState.OPEN and self.breaker.state is not BreakerState.OPEN
        changed = breaker.state is not self.breaker.state
        self.breaker = breaker
        if tripped:
            now = self.fleet.now
            self.incident = Incident(now, now + self.fleet.timings.human_ack, breaker.message)
            self.fleet.ledger.breaker_trips.append((now, breaker.message))
            self.fleet.ledger.pages += 1
            self.fleet.kernel.spawn(self._resume(), self.fleet.timings.resume_after)
        if changed:
            self.changed.pulse()

    def _resume(self) -> Process:
        """The human resumes the breaker and names one canary."""
        if self.breaker.state is not BreakerState.OPEN:
            return
        self.breaker = self.breaker.resume(now=_at(self.fleet.now))
        canary = self._pick_canary()
        if canary is not None:
            self.breaker = self.breaker.admit(canary.name, self.policy)
        self.incident = None
        self.changed.pulse()
        yield 0.0

    def _pick_canary(self) -> Repair | None:
        """The oldest blocked repair that acts, outside a crowded failure domain (a human avoids the storm's nodes)."""
        candidates = [repair for repair in self._blocked.values() if repair.acts]
        if not candidates:
            return None
        crowd = Counter(repair.failure.domain for repair in self._blocked.values())
        return min(candidates, key=lambda r: (crowd[r.failure.domain] > 1, r.opened, r.name))


class NoGate(StormGate):
    """The polling checker: no breaker, no settle time; every repair acts at once."""

    @property
    def settle_time(self) -> float:
        return 0.0

    def opened(self, repair: Repair) -> None:
        return None

    def allows(self, repair: Repair) -> bool:
        return True

    def finished(self, repair: Repair, *, succeeded: bool) -> None:
        return None


def _at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)
