"""The storm breaker's arithmetic: when do faults stop being N bad GPUs and become one outage?

Twenty nodes losing GPUs in five minutes is a leaf switch, a PDU or a bad
driver rollout, not twenty broken boards: rebooting them all makes the outage
worse and hides its cause. The breaker counts new faults over a sliding window,
fleet-wide and per failure domain, and *opens* when either count is too high.
While open, repairs may cordon but take no destructive step. Only a human closes
it: ``resume`` makes it *half-open*, a few canary repairs run, and their outcome
closes the breaker or opens it again.

Everything here is pure: the handler persists the :class:`Breaker` (one small
object for the whole operator) and passes it back in; a restart loses nothing.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

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


def find_trip(faults: Iterable[Fault], policy: BreakerPolicy, *, now: datetime) -> Trip | None:
    """A storm among ``faults``, if any: more than ``max_faults`` nodes within ``window``, or at
    least ``max_per_domain`` nodes of one failure domain within ``domain_window``.

    Nodes are counted once each: a node that faults twice is one bad node, not a storm.
    """
    recent = [f for f in faults if now - policy.window < f.at <= now]
    fleet_nodes = sorted({f.node for f in recent})
    if len(fleet_nodes) > policy.max_faults:
        return Trip(
            f"{len(fleet_nodes)} nodes faulted within {format_duration(policy.window)} "
            f"(more than {policy.max_faults})",
            tuple(fleet_nodes),
        )
    by_domain: dict[str, set[str]] = defaultdict(set)
    for fault in faults:
        if fault.domain and now - policy.domain_window < fault.at <= now:
            by_domain[fault.domain].add(fault.node)
    for domain, nodes in sorted(by_domain.items(), key=lambda item: (-len(item[1]), item[0])):
        if len(nodes) >= policy.max_per_domain:
            return Trip(
                f"{len(nodes)} nodes in failure domain {domain} faulted within "
                f"{format_duration(policy.domain_window)} (limit {policy.max_per_domain})",
                tuple(sorted(nodes)),
                domain,
            )
    return None


def incident_id(opened_at: datetime) -> str:
    """Deterministic from the opening time, so two operator replicas name one storm alike."""
    return f"storm-{opened_at.astimezone(UTC):%Y%m%d%H%M%S}"


@dataclass(frozen=True, slots=True)
class Breaker:
    """The breaker's persisted state.

    ``counting_since`` hides the faults of a storm a human already resumed from,
    so resuming does not trip the breaker again on the same faults.
    """

    state: BreakerState = BreakerState.CLOSED
    incident: str | None = None
    message: str = ""
    opened_at: datetime | None = None
    counting_since: datetime | None = None
    canaries: tuple[str, ...] = ()
    canaries_passed: int = 0

    def observe(self, faults: Iterable[Fault], policy: BreakerPolicy, *, now: datetime) -> Breaker:
        """The breaker after seeing ``faults``: closed or half-open trips to open; open stays open."""
        if self.state is BreakerState.OPEN:
            return self
        counted = [f for f in faults if self.counting_since is None or f.at > self.counting_since]
        trip = find_trip(counted, policy, now=now)
        if trip is None:
            return self
        return Breaker(BreakerState.OPEN, incident_id(now), trip.message, now, self.counting_since)

    def resume(self, *, now: datetime) -> Breaker:
        """A human says the storm is understood: let canaries test the water."""
        if self.state is not BreakerState.OPEN:
            return self
        return replace(self, state=BreakerState.HALF_OPEN, counting_since=now, canaries=(), canaries_passed=0)

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
            return Breaker(BreakerState.OPEN, incident_id(now), message, now, self.counting_since)
        passed = self.canaries_passed + 1
        if passed >= policy.half_open_canaries:
            return Breaker(BreakerState.CLOSED, counting_since=self.counting_since)
        return replace(self, canaries=tuple(c for c in self.canaries if c != repair), canaries_passed=passed)
