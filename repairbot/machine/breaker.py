"""The storm breaker's arithmetic: when do faults stop being N bad GPUs and become one outage?

Twenty nodes losing GPUs in five minutes is a leaf switch, a PDU or a bad
driver rollout, not twenty broken boards: rebooting them all makes the outage
worse and hides its cause. The breaker counts new faults over a sliding window,
fleet-wide and per failure domain, and *opens* when either count is too high.
While open, repairs may cordon but take no destructive step. Only a human closes
it: ``resume`` makes it *half-open*, a few canary repairs run, and their outcome
closes the breaker or opens it again.

Breakers are scoped (:class:`Breakers`): one fleet-wide, opened by more than
``maxFaults`` nodes in ``window``, and one per failure domain (a leaf switch, a
rack), opened by ``maxPerDomain`` nodes of that domain in ``domainWindow``. A
storm on one leaf blocks and groups only that leaf's repairs; only the
fleet-wide threshold blocks the fleet.

Everything here is pure: the state machine computes the next :class:`Breakers`
from the last one and the facts, and the shell stores it (one small object for
the whole operator) and passes it back in; a restart loses nothing.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from repairbot.policy import BreakerPolicy, format_duration


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class Fault:
    """One new repair: which node, when it was detected, and its failure domain (None if unlabelled)."""

    node: str
    at: datetime
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class Trip:
    """Why the breaker opened, in words an SRE reads in Slack."""

    message: str
    nodes: tuple[str, ...]
    domain: str | None = None


def fleet_trip(faults: Iterable[Fault], policy: BreakerPolicy, *, now: datetime) -> Trip | None:
    """A fleet-wide storm: more than ``max_faults`` nodes faulted within ``window``.

    Nodes are counted once each: a node that faults twice is one bad node, not a storm.
    """
    recent = [f for f in faults if now - policy.window < f.at <= now]
    fleet_nodes = sorted({f.node for f in recent})
    if len(fleet_nodes) <= policy.max_faults:
        return None
    return Trip(
        f"{len(fleet_nodes)} nodes faulted within {format_duration(policy.window)} (more than {policy.max_faults})",
        tuple(fleet_nodes),
    )


def domain_trip(faults: Iterable[Fault], policy: BreakerPolicy, *, now: datetime, domain: str) -> Trip | None:
    """A storm in one failure domain: at least ``max_per_domain`` of its nodes faulted within ``domain_window``."""
    nodes = sorted({f.node for f in faults if f.domain == domain and now - policy.domain_window < f.at <= now})
    if len(nodes) < policy.max_per_domain:
        return None
    return Trip(
        f"{len(nodes)} nodes in failure domain {domain} faulted within "
        f"{format_duration(policy.domain_window)} (limit {policy.max_per_domain})",
        tuple(nodes),
        domain,
    )


def find_trip(faults: Iterable[Fault], policy: BreakerPolicy, *, now: datetime) -> Trip | None:
    """A storm among ``faults`` of any scope: the fleet-wide one first, then the largest domain's.

    The operator keeps one breaker per scope (:class:`Breakers`); this single
    answer is the window arithmetic alone, for a breaker that does not care
    about scopes and for the tests of the windows.
    """
    faults = tuple(faults)
    fleet = fleet_trip(faults, policy, now=now)
    if fleet is not None:
        return fleet
    domains = {f.domain for f in faults if f.domain}
    trips = [trip for d in sorted(domains) if (trip := domain_trip(faults, policy, now=now, domain=d)) is not None]
    trips.sort(key=lambda trip: -len(trip.nodes))
    return trips[0] if trips else None


TripFinder = Callable[[Iterable[Fault], BreakerPolicy, datetime], "Trip | None"]


def incident_id(opened_at: datetime, domain: str | None = None) -> str:
    """Deterministic from the opening time (and the domain), so two operator replicas name one storm alike.

    A domain's incident carries the domain's name, made safe for a Jira label
    and a Kubernetes label value, so two leaves tripping in the same second are
    two incidents.
    """
    stamp = f"storm-{opened_at.astimezone(UTC):%Y%m%d%H%M%S}"
    if not domain:
        return stamp
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", domain).strip("-.")[:40].rstrip("-.")
    return f"{stamp}-{safe}" if safe else stamp


@dataclass(frozen=True, slots=True)
class Breaker:
    """The breaker's persisted state.

    ``counting_since`` hides the faults of a storm a human already resumed from,
    so resuming does not trip the breaker again on the same faults. ``domain``
    is the failure domain of the storm that opened it (None: fleet-wide), so a
    reopening keeps the domain in its incident's name.
    """

    state: BreakerState = BreakerState.CLOSED
    incident: str | None = None
    message: str = ""
    opened_at: datetime | None = None
    counting_since: datetime | None = None
    canaries: tuple[str, ...] = ()
    canaries_passed: int = 0
    domain: str | None = None

    def observe(
        self, faults: Iterable[Fault], policy: BreakerPolicy, *, now: datetime, finder: TripFinder | None = None
    ) -> Breaker:
        """The breaker after seeing ``faults``: closed or half-open trips to open; open stays open.

        ``finder`` says which storms this breaker counts (its scope); by default any (:func:`find_trip`).
        """
        if self.state is BreakerState.OPEN:
            return self
        counted = [f for f in faults if self.counting_since is None or f.at > self.counting_since]
        trip = (finder or _any_trip)(counted, policy, now)
        if trip is None:
            return self
        return Breaker(BreakerState.OPEN, incident_id(now, trip.domain), trip.message, now, self.counting_since,
                       domain=trip.domain)  # fmt: skip

    def resume(self, *, now: datetime) -> Breaker:
        """A human says the storm is understood: let canaries test the water.

        Works from every state. Open → half-open with fresh canary slots.
        Half-open → still half-open, faults counted from now, and the slots of
        canaries that are gone already freed by :meth:`keep_canaries`; a human
        who resumes again never finds the breaker stuck. Closed → unchanged.
        """
        if self.state is BreakerState.OPEN:
            return replace(self, state=BreakerState.HALF_OPEN, counting_since=now, canaries=(), canaries_passed=0)
        if self.state is BreakerState.HALF_OPEN:
            return replace(self, counting_since=now)
        return self

    def keep_canaries(self, alive: Iterable[str]) -> Breaker:
        """Free the canary slots of repairs that no longer run (finished, cancelled or deleted)."""
        living = set(alive)
        kept = tuple(c for c in self.canaries if c in living)
        return self if kept == self.canaries else replace(self, canaries=kept)

    def untested_past(self, window: timedelta, *, now: datetime) -> Breaker:
        """A half-open breaker that no repair tested within ``window`` of the resume closes.

        After a storm of findings that only page a human (dead links), no
        repair may ever act, so none becomes the canary. Without this the
        breaker would hold its scope half-open for days, and the first
        unrelated repair to come along — tested as the storm's canary — would
        reopen it and page again with no storm happening.
        """
        if self.state is not BreakerState.HALF_OPEN or self.canaries or self.canaries_passed:
            return self
        if self.counting_since is None or now - self.counting_since < window:
            return self
        return Breaker(BreakerState.CLOSED, counting_since=self.counting_since, domain=self.domain)

    def canary_cancelled(self, repair: str) -> Breaker:
        """A canary that ended without proving anything (cancelled, handed over) frees its slot: no pass, no trip."""
        if repair not in self.canaries:
            return self
        return replace(self, canaries=tuple(c for c in self.canaries if c != repair))

    def admit(self, repair: str, policy: BreakerPolicy) -> Breaker:
        """Take a canary slot for ``repair`` if half-open and one is free (idempotent)."""
        if self.state is not BreakerState.HALF_OPEN or repair in self.canaries:
            return self
        if len(self.canaries) + self.canaries_passed >= policy.half_open_canaries:
            return self
        return replace(self, canaries=(*self.canaries, repair))

    def allows(self, repair: str) -> bool:
        """May ``repair`` take destructive steps? Closed: all may; half-open: only canaries."""
        if self.state is BreakerState.CLOSED:
            return True
        return self.state is BreakerState.HALF_OPEN and repair in self.canaries

    def canary_finished(self, repair: str, *, succeeded: bool, policy: BreakerPolicy, now: datetime) -> Breaker:
        """A failed canary reopens the breaker; once every canary slot succeeded it closes."""
        if self.state is not BreakerState.HALF_OPEN or repair not in self.canaries:
            return self
        if not succeeded:
            message = f"canary {repair} failed after resume"
            return Breaker(BreakerState.OPEN, incident_id(now, self.domain), message, now, self.counting_since,
                           domain=self.domain)  # fmt: skip
        passed = self.canaries_passed + 1
        if passed >= policy.half_open_canaries:
            return Breaker(BreakerState.CLOSED, counting_since=self.counting_since, domain=self.domain)
        return replace(self, canaries=tuple(c for c in self.canaries if c != repair), canaries_passed=passed)


def _any_trip(faults: Iterable[Fault], policy: BreakerPolicy, now: datetime) -> Trip | None:
    return find_trip(faults, policy, now=now)


def _fleet_finder(faults: Iterable[Fault], policy: BreakerPolicy, now: datetime) -> Trip | None:
    return fleet_trip(faults, policy, now=now)


def _domain_finder(domain: str) -> TripFinder:
    def finder(faults: Iterable[Fault], policy: BreakerPolicy, now: datetime) -> Trip | None:
        return domain_trip(faults, policy, now=now, domain=domain)

    return finder


def failure_domain(labels: Mapping[str, str], label: str) -> str | None:
    """A node's failure domain: the value of the policy's domain label, None when unlabelled."""
    return labels.get(label) or None


FLEET = ""
"""The scope key of the fleet-wide breaker in :attr:`Breakers.scopes` (domains are never empty strings)."""


@dataclass(frozen=True, slots=True)
class Breakers:
    """Every breaker of the operator: the fleet-wide one and one per failure domain that has tripped.

    A repair is governed by the fleet's breaker and its own domain's. Closed
    domain breakers with nothing to remember are dropped, so the map never
    grows beyond the domains that stormed recently.
    """

    fleet: Breaker = field(default_factory=Breaker)
    domains: Mapping[str, Breaker] = field(default_factory=dict)

    def scope(self, domain: str | None) -> tuple[tuple[str, Breaker], ...]:
        """The breakers that govern a repair in ``domain``, fleet first."""
        scopes: list[tuple[str, Breaker]] = [(FLEET, self.fleet)]
        if domain:
            scopes.append((domain, self.domains.get(domain, Breaker())))
        return tuple(scopes)

    def blocking(self, repair: str, domain: str | None) -> Breaker | None:
        """The breaker that does not let ``repair`` take a destructive step, or None.

        An open one before a half-open one, and the domain's before the fleet's:
        the message a blocked repair shows and the incident it joins
        (:meth:`incident_of`) name the same storm.
        """
        refusing = [(key, b) for key, b in self.scope(domain) if not b.allows(repair)]
        refusing.sort(key=_most_binding)
        return refusing[0][1] if refusing else None

    def incident_of(self, domain: str | None) -> str | None:
        """The incident a blocked repair of ``domain`` belongs to: the storm that holds it.

        An open storm before a half-open one, and within those its own
        domain's before the fleet's, so one leaf's repairs stay in one thread
        and one ticket even when a fleet-wide storm opens beside it.
        """
        held = [(key, b) for key, b in self.scope(domain) if b.state is not BreakerState.CLOSED]
        held.sort(key=_most_binding)
        return held[0][1].incident if held else None

    @property
    def any_open(self) -> bool:
        return any(b.state is not BreakerState.CLOSED for b in (self.fleet, *self.domains.values()))

    def observe(self, faults: Iterable[Fault], policy: BreakerPolicy, *, now: datetime) -> Breakers:
        """Every scope after seeing ``faults``: the fleet by the fleet threshold, each domain by its own.

        Faults are grouped by domain once, so a burst of a thousand repairs costs
        one pass over them per reconcile, not one per domain.
        """
        faults = tuple(faults)
        by_domain: dict[str, list[Fault]] = defaultdict(list)
        for fault in faults:
            if fault.domain:
                by_domain[fault.domain].append(fault)
        domains = {
            d: (self.domains.get(d) or Breaker()).observe(by_domain.get(d, ()), policy, now=now,
                                                          finder=_domain_finder(d))
            .untested_past(policy.domain_window, now=now)
            for d in sorted(set(by_domain) | set(self.domains))
        }  # fmt: skip
        elsewhere = fleet_counted(faults, domains)
        fleet = self.fleet.observe(elsewhere, policy, now=now, finder=_fleet_finder)
        fleet = fleet.untested_past(policy.window, now=now)
        return Breakers(fleet, domains).pruned(policy, now=now)

    def map(self, domain: str | None, change: Callable[[Breaker], Breaker]) -> Breakers:
        """Apply ``change`` to every breaker that governs ``domain``."""
        fleet = change(self.fleet)
        if not domain:
            return replace(self, fleet=fleet)
        domains = dict(self.domains)
        domains[domain] = change(domains.get(domain, Breaker()))
        return Breakers(fleet, domains)

    def map_all(self, change: Callable[[Breaker], Breaker]) -> Breakers:
        return Breakers(change(self.fleet), {d: change(b) for d, b in self.domains.items()})

    def pruned(self, policy: BreakerPolicy, *, now: datetime) -> Breakers:
        """Drop closed domain breakers whose resumed storm has left every window (the fleet's too)."""
        kept = {
            d: b
            for d, b in self.domains.items()
            if b != Breaker() and not (
                b.state is BreakerState.CLOSED
                and (b.counting_since is None or now - b.counting_since > max(policy.window, policy.domain_window))
            )
        }  # fmt: skip
        return self if kept == dict(self.domains) else Breakers(self.fleet, kept)


def _most_binding(scoped: tuple[str, Breaker]) -> tuple[bool, datetime, bool]:
    """Sort key: open before half-open, then the storm that opened first, then a domain's before the fleet's.

    The storm that was there first is the one a blocked repair joins: a leaf
    that died before a fleet-wide storm keeps its repairs in its own thread and
    ticket, while in a fleet-wide storm (a bad driver rollout) repairs of leaves
    that trip only after the fleet did join the fleet's one incident.
    """
    key, breaker = scoped
    opened = breaker.opened_at or datetime.max.replace(tzinfo=UTC)
    return (breaker.state is not BreakerState.OPEN, opened, key == FLEET)


def fleet_counted(faults: Iterable[Fault], domains: Mapping[str, Breaker]) -> list[Fault]:
    """The faults the fleet-wide breaker counts.

    Not the faults of a domain storm a human already resumed from, and not
    those of the largest domain now storming: one leaf going down, however
    many nodes it holds, is that leaf's incident alone, while faults spread
    over many domains (a bad rollout trips every leaf's breaker too) still
    open the fleet's.
    """
    counted = [f for f in faults if not _resumed_away(f, domains)]
    stormy: dict[str, set[str]] = defaultdict(set)
    for fault in counted:
        breaker = domains.get(fault.domain) if fault.domain else None
        if breaker is not None and breaker.state is not BreakerState.CLOSED:
            stormy[str(fault.domain)].add(fault.node)
    if not stormy:
        return counted
    largest = max(stormy, key=lambda d: (len(stormy[d]), d))
    return [f for f in counted if f.domain != largest]


def _resumed_away(fault: Fault, domains: Mapping[str, Breaker]) -> bool:
    """Did a human resume ``fault``'s domain storm after it (its breaker closed since, counting from then)?"""
    breaker = domains.get(fault.domain) if fault.domain else None
    if breaker is None or breaker.state is not BreakerState.CLOSED:
        return False
    return breaker.counting_since is not None and fault.at <= breaker.counting_since
