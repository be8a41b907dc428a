"""The failure trace: Llama 3's rates, scaled to the fleet, with leaf switches that take a domain down at once."""

from __future__ import annotations

import statistics

import pytest

from repairbot.model import Action
from repairbot_fleetsim.failures import LLAMA3_MIX, Failure, Trace, TrueFix, generate_trace


def trace(seed: int = 1, nodes: int = 2048, days: float = 54.0) -> Trace:
    return generate_trace(nodes=nodes, days=days, seed=seed, domain_size=16, poll_interval=300.0)


def test_table_5_adds_up_to_419_interruptions() -> None:
    assert sum(category.count for category in LLAMA3_MIX) == 419
    assert len(LLAMA3_MIX) == 18
    for category in LLAMA3_MIX:
        assert sum(share for _, share in category.fixes) == pytest.approx(1.0), category.name


def test_the_llama3_fleet_sees_the_llama3_rate_on_average() -> None:
    events = [sum(trace(seed).per_category.values()) for seed in range(1, 9)]
    assert statistics.mean(events) == pytest.approx(419, abs=30)


def test_rates_scale_with_fleet_size_and_horizon() -> None:
    events = [sum(trace(seed, nodes=1024, days=27).per_category.values()) for seed in range(1, 9)]
    assert statistics.mean(events) == pytest.approx(419 / 4, abs=15)


def test_faulty_gpus_are_the_largest_category() -> None:
    counts: dict[str, int] = {}
    for seed in range(1, 6):
        for name, count in trace(seed).per_category.items():
            counts[name] = counts.get(name, 0) + count
    assert max(counts, key=lambda name: counts[name]) == "Faulty GPU"


def test_a_seed_draws_the_same_trace_every_time() -> None:
    assert trace(7).digest == trace(7).digest
    assert trace(7).failures == trace(7).failures
    assert trace(7).digest != trace(8).digest


def test_failures_arrive_in_time_order_within_the_horizon() -> None:
    drawn = trace(3)
    times = [failure.at for failure in drawn.failures]
    assert times == sorted(times)
    assert times[0] >= 0 and times[-1] < drawn.horizon
    assert len({failure.id for failure in drawn.failures}) == len(drawn.failures)


def test_a_leaf_switch_takes_every_node_of_its_domain_within_seconds() -> None:
    drawn = trace(1)
    assert drawn.storms > 0
    storms: dict[str, list[Failure]] = {}
    for failure in drawn.failures:
        if failure.storm:
            storms.setdefault(failure.storm, []).append(failure)
    assert len(storms) == drawn.storms
    for members in storms.values():
        domains = {failure.domain for failure in members}
        assert len(domains) == 1
        domain = domains.pop()
        assert sorted(failure.node for failure in members) == list(range(domain * 16, domain * 16 + 16))
        assert max(f.at for f in members) - min(f.at for f in members) <= 5.0
        assert {failure.fix for failure in members} == {TrueFix.FABRIC}
        assert len({failure.fabric_key for failure in members}) == 1  # one switch, one network repair


@pytest.mark.parametrize(
    ("fix", "action", "cured"),
    [
        (TrueFix.GPU_RESET, Action.GPU_RESET, True),
        (TrueFix.GPU_RESET, Action.REBOOT, True),
        (TrueFix.REBOOT, Action.GPU_RESET, False),
        (TrueFix.REBOOT, Action.REBOOT, True),
        (TrueFix.POWER_CYCLE, Action.REBOOT, False),
        (TrueFix.POWER_CYCLE, Action.POWER_CYCLE, True),
        (TrueFix.REPLACE, Action.POWER_CYCLE, False),
        (TrueFix.FABRIC, Action.POWER_CYCLE, False),
        (TrueFix.NONE, Action.REBOOT, True),
    ],
)
def test_what_an_action_cures(fix: TrueFix, action: Action, cured: bool) -> None:
    assert fix.fixed_by(action) is cured


def test_actions_on_a_healthy_node_or_a_dead_link_are_never_needed() -> None:
    assert not TrueFix.NONE.node_needed_action
    assert not TrueFix.FABRIC.node_needed_action
    assert TrueFix.REPLACE.node_needed_action and TrueFix.REBOOT.node_needed_action
