"""The operator's storm breakers on the simulated clock, with the human who resumes them.

The breakers are the operator's own :class:`repairbot.machine.breaker.Breakers`:
one per failure domain (here a leaf switch, ``leaf-NNN``), opened by
``maxPerDomain`` of its nodes in ``domainWindow``, and one for the fleet,
opened by more than ``maxFaults`` nodes in ``window`` *outside* the leaves
whose breaker is open or half-open (and never by the faults of a leaf storm a
human already resumed from). Every repair opened is a fault (node, time, leaf)
they count. A repair is governed by the fleet's breaker and its own leaf's:
while one of them is open it cordons but takes no destructive step (it waits
in Blocked). So a whole leaf switch going down (16 nodes, more than
``maxFaults``) is that leaf's incident alone and the other leaves keep being
repaired; only faults spread over many leaves hold every leaf.

Each breaker that opens is one incident (``storm-<ts>`` for the fleet,
``storm-<ts>-<leaf>`` for a leaf, a reopening keeps its leaf in the name). A
blocked repair joins its own leaf's incident first, else the fleet's, and an
incident pages once, when its first repair joins it, as the operator's storm
message is posted from its first member. A human looks, calls the network
team where the nodes' findings point at the fabric, and after
``resume_after`` resumes that incident through one of its blocked repairs, as
``repairbot resume <repair>`` does: the breakers that govern that repair
half-open. The human names the incident's canary — for a leaf, the leaf's
oldest blocked repair that acts; for the fleet, one outside every stormed
leaf — and a blocked repair that acts, fits the budget and is governed by no
open breaker takes a free canary slot, as the reconciler lets it. A canary's
success closes its breakers; its quarantine reopens them. A half-open breaker
that no repair tested within its window (``domainWindow`` for a leaf,
``window`` for the fleet) closes by itself, as the operator's next reconcile
closes it.

A polling checker has no breaker: :class:`NoGate` lets everything through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from repairbot.machine import FLEET, Breaker, Breakers, BreakerState, Fault
from repairbot_fleetsim.engine import Fleet, Process, Pulse
from repairbot_fleetsim.failures import Failure, TrueFix

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
"""Simulated second 0 as a datetime, for the breakers' window arithmetic."""


@dataclass(frozen=True, slots=True)
class Incident:
    """One breaker that opened: one page, acknowledged ``human_ack`` after it opened."""

    id: str
    scope: str  # FLEET ("") or the leaf's domain
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

    @property
    def domain(self) -> str:
        """The node's failure domain label: its leaf switch."""
        return leaf_of(self.failure)


def leaf_of(failure: Failure) -> str:
    return f"leaf-{failure.domain:03d}"


class StormGate:
    """The storm breakers of one simulated run."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.policy = fleet.policy.breaker
        self.breakers = Breakers()
        self.changed = Pulse(fleet.kernel)
        self._incidents: dict[str, Incident] = {}  # by incident id, while its breaker is not closed
        self._faults: list[Fault] = []
        self._blocked: dict[str, Repair] = {}
        self._lookback = max(self.policy.window, self.policy.domain_window)
        self._relaying = False
        self._paged: set[str] = set()  # incident ids that have paged: one page each, from its first member

    @property
    def settle_time(self) -> float:
        """A repair waits this long after detection before its first drain, so a storm is seen first."""
        return self.policy.settle_time.total_seconds()

    def opened(self, repair: Repair) -> None:
        """A new repair is a new fault for the breakers to count, in the fleet and in its leaf."""
        now = _at(self.fleet.now)
        self._faults.append(Fault(repair.node, now, repair.domain))
        self._observe()

    def _observe(self) -> None:
        """Count the recent faults as the operator's reconcile does (it also closes untested half-open breakers)."""
        now = _at(self.fleet.now)
        self._faults = [f for f in self._faults if now - f.at <= self._lookback]
        self._settle(self.breakers.observe(self._faults, self.policy, now=now))

    def allows(self, repair: Repair) -> bool:
        """As the operator's StormBreaker: canaries act; once resumed, notify-only repairs may hold too."""
        breaker = self.breakers.blocking(repair.name, repair.domain)
        return breaker is None or (breaker.state is BreakerState.HALF_OPEN and not repair.acts)

    def incident_of(self, repair: Repair) -> Incident | None:
        """The incident a blocked repair is grouped under: its own leaf's storm, else the fleet's."""
        incident = self.breakers.incident_of(repair.domain)
        return self._incidents.get(incident) if incident else None

    def wait(self, repair: Repair) -> Process:
        """Blocked until the breakers let this repair act; a storm's fabric faults go to the network team."""
        if self.allows(repair):
            return
        started = self.fleet.now
        self._blocked[repair.name] = repair
        self._join(repair)
        if repair.failure.fix is TrueFix.FABRIC and repair.incident is not None:
            self.fleet.network_repair(repair.failure, paged_at=max(started, repair.incident.acknowledged))
        self._relay_budget()
        while not self._admitted(repair):
            yield self.changed.next()
            self._join(repair)
        del self._blocked[repair.name]
        self.fleet.ledger.breaker_blocked_seconds += self.fleet.now - started
        if repair.failure.storm is None:
            self.fleet.ledger.breaker_held_bystanders.append(self.fleet.now - started)

    def _join(self, repair: Repair) -> None:
        """A blocked repair takes the incident that blocks it now, as the operator's Blocked status names it;
        an incident pages when its first repair joins it (the operator posts its storm message from a member)."""
        incident = self.incident_of(repair)
        if incident is None or (repair.incident is not None and repair.incident.id == incident.id):
            return
        repair.incident = incident
        if incident.id not in self._paged:
            self._paged.add(incident.id)
            self.fleet.ledger.pages += 1

    def _admitted(self, repair: Repair) -> bool:
        """May ``repair`` go on? On the way, take a free canary slot as the reconciler's breaker flow does."""
        if self.allows(repair):
            return True
        self._admit(repair)
        return self.allows(repair)

    def _admit(self, repair: Repair) -> None:
        """A blocked repair that acts, fits the budget and is governed by no open breaker takes a free slot."""
        governing = [b for _, b in self.breakers.scope(repair.domain)]
        if not repair.acts or any(b.state is BreakerState.OPEN for b in governing):
            return
        if not (self.fleet.node(repair.failure.node).cordoned or self.fleet.budget_allows()):
            return  # a canary must go at once: one waiting for the budget would hold its breaker half-open
        self._settle(self.breakers.map(repair.domain, lambda b: b.admit(repair.name, self.policy)))

    def finished(self, repair: Repair, *, succeeded: bool) -> None:
        """A repair reached Succeeded or Quarantined: a canary's outcome closes or reopens its breakers."""
        now = _at(self.fleet.now)

        def finish(breaker: Breaker) -> Breaker:
            return breaker.canary_finished(repair.name, succeeded=succeeded, policy=self.policy, now=now)

        self._settle(self.breakers.map(repair.domain, finish))

    def _settle(self, breakers: Breakers) -> None:
        """Keep ``breakers``; every breaker that opened now is a new incident: one page, one human resume."""
        before = self.breakers
        self.breakers = breakers
        changed = False
        for scope, breaker in _scopes(breakers):
            old = _breaker(before, scope)
            changed = changed or old != breaker
            if breaker.state is BreakerState.OPEN and old.state is not BreakerState.OPEN:
                self._page(scope, breaker)
        live = {b.incident for _, b in _scopes(breakers) if b.state is not BreakerState.CLOSED}
        self._incidents = {key: incident for key, incident in self._incidents.items() if key in live}
        self._paged &= live
        if changed:
            self.changed.pulse()

    def _page(self, scope: str, breaker: Breaker) -> None:
        """A breaker opened: a new incident, paged when its first repair joins it, resumed by a human later."""
        now = self.fleet.now
        key = breaker.incident or ""
        incident = Incident(key, scope, now, now + self.fleet.timings.human_ack, breaker.message)
        self.fleet.ledger.breaker_trips.append((now, breaker.message, key))
        self.fleet.ledger.fleet_breaker_trips += scope == FLEET
        self._incidents.setdefault(key, incident)
        self.fleet.kernel.spawn(self._resume(incident), self.fleet.timings.resume_after)

    def _resume(self, incident: Incident) -> Process:
        """The human resumes the incident through its canary (or any of its blocked repairs)."""
        breaker = _breaker(self.breakers, incident.scope)
        if breaker.state is not BreakerState.OPEN or breaker.incident != incident.id:
            return  # resumed already with another incident, or reopened since: that one has its own page
        now = _at(self.fleet.now)
        through = self._pick_canary(incident)
        if through is None:
            self._settle(_change(self.breakers, incident.scope, lambda b: b.resume(now=now)))
        else:
            self._settle(self.breakers.map(through.domain, lambda b: b.resume(now=now)))
            self._admit(through)
        for window in sorted({self.policy.window, self.policy.domain_window}):  # untested by then, a breaker closes
            self.fleet.kernel.spawn(self._recheck(), window.total_seconds() + 1.0)
        yield 0.0

    def _recheck(self) -> Process:
        """The operator's next reconcile after a resumed breaker's window: one that no canary tested closes."""
        self._observe()
        yield 0.0

    def _pick_canary(self, incident: Incident) -> Repair | None:
        """The oldest blocked repair of the incident's scope, one that acts if any; for the fleet's incident,
        one outside every stormed leaf first (a human avoids the storm's nodes, and resuming through one of
        them would resume its leaf's incident too)."""
        scope = [r for r in self._blocked.values() if not incident.scope or r.domain == incident.scope]
        if not scope:
            return None

        def stormed(repair: Repair) -> bool:
            leaf = _breaker(self.breakers, repair.domain)
            return incident.scope == FLEET and leaf.state is not BreakerState.CLOSED

        return min(scope, key=lambda r: (stormed(r), not r.acts, r.opened, r.name))

    def _relay_budget(self) -> None:
        """A freed budget slot may let a blocked repair take a canary slot: wake the blocked ones with it."""
        if self._relaying:
            return
        self._relaying = True

        def relay() -> Process:
            while self._blocked:
                yield self.fleet.budget.next()
                self.changed.pulse()
            self._relaying = False

        self.fleet.kernel.spawn(relay())


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


def _scopes(breakers: Breakers) -> list[tuple[str, Breaker]]:
    return [(FLEET, breakers.fleet), *sorted(breakers.domains.items())]


def _breaker(breakers: Breakers, scope: str) -> Breaker:
    return breakers.fleet if scope == FLEET else breakers.domains.get(scope, Breaker())


def _change(breakers: Breakers, scope: str, change: Callable[[Breaker], Breaker]) -> Breakers:
    """Apply ``change`` to one scope's breaker only (a human resuming one incident by name)."""
    if scope == FLEET:
        return Breakers(change(breakers.fleet), breakers.domains)
    return Breakers(breakers.fleet, {**breakers.domains, scope: change(_breaker(breakers, scope))})


def _at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)
