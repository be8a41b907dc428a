"""The default run: 2,048 nodes, 54 days, one trace, three strategies; the sanity checks the report rests on."""

from __future__ import annotations

import pytest

from repairbot_fleetsim.config import SimConfig
from repairbot_fleetsim.simulate import SimulationResult, in_place_hours, simulate


@pytest.fixture(scope="module")
def full_run() -> SimulationResult:
    return simulate(SimConfig())


def test_every_strategy_faces_the_same_failures(full_run: SimulationResult) -> None:
    assert set(full_run.traces_seen.values()) == {full_run.trace.digest}
    seen = {result.name: result.failures_seen for result in full_run.results}
    assert min(seen.values()) >= len(full_run.trace.failures)


def test_repairbot_never_acts_destructively_in_a_switch_storm(full_run: SimulationResult) -> None:
    assert full_run.trace.storms > 0
    assert full_run.by_name("repairbot").storm_actions == 0
    assert full_run.by_name("repairbot").unneeded_actions == 0
    assert full_run.by_name("manual").storm_actions >= 16 * full_run.trace.storms * 0.9


def test_each_switch_storm_trips_its_leafs_breaker_and_never_the_fleets(full_run: SimulationResult) -> None:
    """A leaf switch's 16 nodes open their leaf's breaker; though more than maxFaults (10), they are that leaf's
    incident alone. The trace has no storm spread over many leaves, so the fleet's breaker never opens and no
    repair outside a storm is held."""
    bot = full_run.by_name("repairbot")
    storms = full_run.trace.storms
    assert bot.fleet_breaker_trips == 0
    assert storms <= bot.breaker_trips <= storms + 4  # and now and then a canary that needed hardware reopens one
    assert bot.bystanders_held == 0
    assert full_run.by_name("polling").breaker_trips == 0


def test_a_five_minute_poller_acknowledges_in_about_two_and_a_half_minutes(full_run: SimulationResult) -> None:
    assert full_run.by_name("polling").mtta_mean_s == pytest.approx(150, abs=20)
    assert full_run.by_name("manual").mtta_mean_s == pytest.approx(101)
    bot = full_run.by_name("repairbot")
    assert bot.mtta_p50_s < 5 and bot.mtta_mean_s < 30


def test_manual_on_call_keeps_nodes_out_longer_and_reboots_more(full_run: SimulationResult) -> None:
    bot, manual = full_run.by_name("repairbot"), full_run.by_name("manual")
    assert manual.node_hours_out >= bot.node_hours_out
    assert in_place_hours(manual) >= 1.5 * in_place_hours(bot)
    assert manual.destructive_actions > bot.destructive_actions
    assert manual.repair_p50_h > bot.repair_p50_h
    assert bot.gpu_hours_lost == pytest.approx(8 * bot.node_hours_out)


def test_hardware_replacements_are_about_the_same_whoever_repairs(full_run: SimulationResult) -> None:
    """Every replace-class fault ends in an RMA; only relapse chains still open at the horizon differ."""
    quarantines = {result.name: result.quarantines for result in full_run.results}
    assert max(quarantines.values()) - min(quarantines.values()) <= 3, quarantines
    assert quarantines["repairbot"] > 0


def test_node_hours_accumulate_to_the_total(full_run: SimulationResult) -> None:
    for result in full_run.results:
        assert result.series_hours == sorted(result.series_hours)
        assert result.series_hours[-1] == pytest.approx(result.node_hours_out, rel=1e-6)
        assert len(result.series_hours) == 54 * 24 + 1


def test_the_full_run_is_quick(full_run: SimulationResult) -> None:
    # measured and printed in the report; asserted only loosely here, the machine may be busy
    assert full_run.runtime_seconds < 60


def test_a_seed_gives_the_same_results_every_time() -> None:
    config = SimConfig(nodes=512, days=20, seed=11)
    first, second = simulate(config).to_dict(), simulate(config).to_dict()
    first.pop("runtimeSeconds")
    second.pop("runtimeSeconds")
    assert first == second
    other = simulate(SimConfig(nodes=512, days=20, seed=12)).to_dict()
    assert other["trace"]["digest"] != first["trace"]["digest"]
