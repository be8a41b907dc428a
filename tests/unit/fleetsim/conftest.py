"""Hand-written failure traces for the fleet simulation: one storm, one bystander, one lemon at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from repairbot.policy import Policy
from repairbot_fleetsim.config import SimConfig, default_policy
from repairbot_fleetsim.failures import CATEGORIES, Failure, Trace, TrueFix
from repairbot_fleetsim.ledger import Ledger
from repairbot_fleetsim.simulate import run_strategy
from repairbot_fleetsim.strategies import Strategy

DOMAIN_SIZE = 16

MakeFailure = Callable[..., Failure]
RunTrace = Callable[..., Ledger]


def _make_failure(
    failure_id: str,
    at: float,
    node: int,
    *,
    category: str = "Faulty GPU",
    fix: TrueFix = TrueFix.REBOOT,
    storm: str | None = None,
    agent_delay: float = 0.5,
    poll_delay: float = 150.0,
) -> Failure:
    return Failure(
        id=failure_id,
        at=at,
        node=node,
        domain=node // DOMAIN_SIZE,
        category=category,
        finding=CATEGORIES[category].finding,
        fix=fix,
        agent_delay=agent_delay,
        alert_delay=90.0,
        poll_delay=poll_delay,
        storm=storm,
    )


@pytest.fixture
def make_failure() -> MakeFailure:
    return _make_failure


@pytest.fixture
def switch_storm() -> Callable[..., list[Failure]]:
    """Every node behind leaf switch ``domain`` loses its link within a few seconds of ``at``."""

    def storm(at: float, domain: int = 0) -> list[Failure]:
        nodes = range(domain * DOMAIN_SIZE, (domain + 1) * DOMAIN_SIZE)
        return [
            _make_failure(f"s{node}", at + 0.3 * offset, node, category="Network switch/cable", fix=TrueFix.FABRIC,
                          storm=f"storm-{domain}", poll_delay=17.0 * offset)
            for offset, node in enumerate(nodes)
        ]  # fmt: skip

    return storm


@pytest.fixture
def run_trace() -> RunTrace:
    """Run one strategy over hand-made failures on a small fleet; the ledger says what happened."""

    def run(
        strategy: Strategy, failures: Iterable[Failure], *, nodes: int = 2048, days: float = 5.0,
        policy: Policy | None = None, **config: Any,
    ) -> Ledger:  # fmt: skip
        sim = SimConfig(nodes=nodes, days=days, domain_size=DOMAIN_SIZE, policy=policy or default_policy(), **config)
        ordered = tuple(sorted(failures, key=lambda f: (f.at, f.id)))
        storms = len({f.storm for f in ordered if f.storm})
        trace = Trace(ordered, storms, sim.seed, sim.horizon, nodes, DOMAIN_SIZE)
        ledger, _ = run_strategy(strategy, trace, sim)
        return ledger

    return run
