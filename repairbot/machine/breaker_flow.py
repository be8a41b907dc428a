"""How one decision moves the storm breakers. Pure: the machine calls it, the shell stores the result.

Before the repair's step is chosen (:func:`before`): the slots of canaries
that no longer run are freed, the fleet's recent faults are counted (a storm
opens its scope's breaker from the first reconcile that sees it), a human's
resume half-opens the breakers that govern this repair, and a blocked repair
that would act on its node may take a free canary slot.

After the step is chosen (:func:`after`): a canary that reached an end frees
its slot — success counts towards closing, quarantine or failure reopens,
a cancel or hand-over proves nothing either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from repairbot.machine.breaker import Breaker, Breakers, BreakerState, failure_domain
from repairbot.machine.decision import Decision
from repairbot.machine.repair_view import Facts, RepairView
from repairbot.model import Phase
from repairbot.policy import Policy


def domain_of(node_labels: Mapping[str, str], policy: Policy) -> str | None:
    """The node's failure domain by the policy's label, or None when it has none."""
    return failure_domain(node_labels, policy.breaker.failure_domain_label)


def before(repair: RepairView, facts: Facts, policy: Policy, now: datetime, *, acts_on_node: bool) -> Breakers:
    """The breakers this decision is made with."""
    breakers = facts.breakers
    if facts.active_repairs is not None:
        alive = facts.active_repairs
        breakers = breakers.map_all(lambda b: b.keep_canaries(alive))
    breakers = breakers.observe(facts.recent_faults, policy.breaker, now=now)
    if repair.phase is not Phase.BLOCKED:
        return breakers
    domain = domain_of(facts.node_labels, policy)
    if facts.resume_requested:
        breakers = breakers.map(domain, lambda b: b.resume(now=now))
    governing = [b for _, b in breakers.scope(domain)]
    if acts_on_node and not any(b.state is BreakerState.OPEN for b in governing):
        breakers = breakers.map(domain, lambda b: b.admit(repair.name, policy.breaker))
    return breakers


def after(repair: RepairView, decision: Decision, breakers: Breakers, facts: Facts, policy: Policy,
          now: datetime) -> Breakers:  # fmt: skip
    """The breakers once ``decision`` is carried out: a canary's end closes, reopens or just frees its slot."""
    ended = ended_phase(decision)
    if ended is None:
        return breakers
    domain = domain_of(facts.node_labels, policy)

    def finish(breaker: Breaker) -> Breaker:
        if ended is Phase.SUCCEEDED:
            return breaker.canary_finished(repair.name, succeeded=True, policy=policy.breaker, now=now)
        if ended in (Phase.QUARANTINED, Phase.FAILED):
            return breaker.canary_finished(repair.name, succeeded=False, policy=policy.breaker, now=now)
        return breaker.canary_cancelled(repair.name)

    return breakers.map(domain, finish)


def ended_phase(decision: Decision) -> Phase | None:
    """The terminal phase ``decision`` brings its repair to, if it ends it."""
    text = (decision.after or {}).get("phase") or (decision.patch or {}).get("phase")
    if not text:
        return None
    phase = Phase(str(text))
    return phase if phase.is_terminal else None
