"""Each strategy on hand-made traces: what an SRE would see happen to the nodes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from repairbot.model import Action
from repairbot.policy import parse_policy
from repairbot_fleetsim.config import DAY, HOUR, Timings
from repairbot_fleetsim.failures import Failure, TrueFix
from repairbot_fleetsim.ledger import Ledger
from repairbot_fleetsim.strategies import MANUAL, POLLING, REPAIRBOT

MakeFailure = Callable[..., Failure]
RunTrace = Callable[..., Ledger]
Storm = Callable[..., list[Failure]]
NETWORK_FIX = 4 * HOUR


def test_repairbot_takes_no_destructive_action_in_a_switch_storm(run_trace: RunTrace, switch_storm: Storm) -> None:
    ledger = run_trace(REPAIRBOT, switch_storm(HOUR))
    assert ledger.actions == []
    # the leaf's breaker opens on its second node; the fleet's stays closed: a whole leaf (16 nodes, more than
    # maxFaults 10) is that leaf's incident alone, the fleet counts only nodes outside stormed leaves
    [(_, leaf, _)] = ledger.breaker_trips
    assert "failure domain leaf-000" in leaf
    assert ledger.fleet_breaker_trips == 0
    assert [r.outcome for r in ledger.resolutions] == ["network"] * 16
    # every node is back shortly after the network team fixed the switch, none before
    for resolution in ledger.resolutions:
        assert NETWORK_FIX < resolution.returned_at - resolution.failed_at < NETWORK_FIX + 15 * 60


def test_a_switch_storm_is_one_incident_for_repairbot_and_sixteen_pages_otherwise(
    run_trace: RunTrace, switch_storm: Storm
) -> None:
    bot = run_trace(REPAIRBOT, switch_storm(HOUR))
    polling = run_trace(POLLING, switch_storm(HOUR))
    manual = run_trace(MANUAL, switch_storm(HOUR))
    # the first node pages on its own before the second one trips the leaf's breaker; the other 15 share the
    # leaf's incident
    assert bot.pages == 2
    assert polling.pages == 16 and manual.pages == 16
    assert polling.actions == [] and not polling.breaker_trips


def test_manual_on_call_reboots_every_node_of_a_storm_for_nothing(run_trace: RunTrace, switch_storm: Storm) -> None:
    ledger = run_trace(MANUAL, switch_storm(HOUR))
    assert [a.action for a in ledger.actions] == [Action.REBOOT] * 16
    assert all(a.in_storm and not a.needed and not a.cured for a in ledger.actions)
    assert [r.outcome for r in ledger.resolutions] == ["network"] * 16


def test_a_switch_storm_does_not_hold_a_repair_on_another_leaf(
    run_trace: RunTrace, switch_storm: Storm, make_failure: MakeFailure
) -> None:
    bystander = make_failure("gpu", HOUR + 600, 40)  # xid-79 on another leaf, ten minutes into the storm
    bot = run_trace(REPAIRBOT, [*switch_storm(HOUR), bystander])
    [reboot] = bot.actions
    assert reboot.action is Action.REBOOT and reboot.failure == "gpu"
    assert reboot.at < HOUR + 600 + 5 * 60  # settle and drain only: leaf 0's storm is leaf 0's incident
    assert bot.breaker_held_bystanders == []
    polling = run_trace(POLLING, [*switch_storm(HOUR), bystander])
    assert polling.actions[0].at < HOUR + 600 + 10 * 60


def test_an_open_fleet_breaker_holds_other_leaves_until_a_human_resumes(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    """Eleven links on eleven leaves within seconds (a fabric-wide fault, no leaf storms) open the fleet's
    breaker; a GPU on yet another leaf is cordoned only until the human's resume, then it is the canary."""
    links = [make_failure(f"link{leaf}", HOUR + 0.3 * leaf, leaf * 16, category="Network switch/cable",
                          fix=TrueFix.FABRIC, storm="fabric") for leaf in range(11)]  # fmt: skip
    bystander = make_failure("gpu", HOUR + 600, 40 * 16)
    bot = run_trace(REPAIRBOT, [*links, bystander])
    [(tripped_at, message, _)] = bot.breaker_trips
    assert "more than 10" in message
    [reboot] = bot.actions
    assert reboot.action is Action.REBOOT and reboot.failure == "gpu"
    assert reboot.at >= tripped_at + 30 * 60
    assert reboot.at < tripped_at + 40 * 60
    polling = run_trace(POLLING, [*links, bystander])
    assert polling.actions[0].at < HOUR + 600 + 10 * 60


def test_after_a_resume_a_storm_of_notify_repairs_holds_nobody_else_on_its_leaf_back(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    """Four links of leaf 0 die; only storm (notify) repairs are blocked at the resume, so none may be the
    canary. A GPU of leaf 0 failing just after the resume is the canary and goes at once; one failing after
    ``domainWindow`` finds the untested breaker closed by itself. Neither waits hours for the network team."""
    links = [make_failure(f"l{n}", HOUR + 0.3 * n, n, category="Network switch/cable", fix=TrueFix.FABRIC,
                          storm="storm-0") for n in range(4)]  # fmt: skip
    for late_at in (HOUR + 32 * 60, HOUR + 45 * 60):
        late = make_failure("gpu", late_at, 8)
        bot = run_trace(REPAIRBOT, [*links, late])
        [reboot] = bot.actions
        assert late_at < reboot.at < late_at + 10 * 60
        assert bot.breaker_held_bystanders == [] or max(bot.breaker_held_bystanders) < 10 * 60
        assert len(bot.breaker_trips) == 1
        assert [r.outcome for r in bot.resolutions].count("network") == 4  # the links still wait for the fix


def test_repairbot_climbs_the_ladder_of_its_policy(run_trace: RunTrace, make_failure: MakeFailure) -> None:
    fault = make_failure("gpu", HOUR, 3, fix=TrueFix.POWER_CYCLE)
    default = run_trace(REPAIRBOT, [fault])
    assert [a.action for a in default.actions] == [Action.REBOOT, Action.POWER_CYCLE]
    assert [r.outcome for r in default.resolutions] == ["repaired"]
    custom = parse_policy({"ladders": {"xid-79": ["power-cycle", "quarantine"]}})
    straight = run_trace(REPAIRBOT, [fault], policy=custom)
    assert [a.action for a in straight.actions] == [Action.POWER_CYCLE]


def test_hbm_errors_start_with_a_gpu_reset(run_trace: RunTrace, make_failure: MakeFailure) -> None:
    fault = make_failure("hbm", HOUR, 3, category="GPU HBM3 memory", fix=TrueFix.GPU_RESET)
    ledger = run_trace(REPAIRBOT, [fault])
    assert [a.action for a in ledger.actions] == [Action.GPU_RESET]
    out = ledger.resolutions[0].returned_at - HOUR
    # detection + settle + drain + 1 min reset + 3 min validation: minutes, not the manual half hour
    assert 6 * 60 < out < 8 * 60
    manual = run_trace(MANUAL, [fault])
    assert [a.action for a in manual.actions] == [Action.REBOOT]
    assert manual.resolutions[0].returned_at - HOUR > 30 * 60


def test_a_software_crash_leaves_the_node_alone_unless_a_human_reboots_it(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    crash = make_failure("xid13", HOUR, 3, category="Software bug", fix=TrueFix.NONE)
    bot = run_trace(REPAIRBOT, [crash])
    assert bot.actions == [] and bot.intervals == [] and bot.pages == 0
    manual = run_trace(MANUAL, [crash])
    assert [(a.action, a.needed) for a in manual.actions] == [(Action.REBOOT, False)]
    [(_, start, end, outcome)] = manual.intervals
    assert outcome == "no-fault" and end - start == pytest.approx(30 * 60)


def test_the_budget_queues_a_repair_until_a_slot_frees(run_trace: RunTrace, make_failure: MakeFailure) -> None:
    one_at_a_time = parse_policy({"budget": {"maxUnavailable": 1}})
    faults = [make_failure("a", HOUR, 1), make_failure("b", HOUR, 20)]
    ledger = run_trace(REPAIRBOT, faults, policy=one_at_a_time)
    first, second = sorted(ledger.mtta)
    assert first < 5
    assert second > 10 * 60  # cordoned only once the first node was back
    returned = sorted(r.returned_at for r in ledger.resolutions)
    assert returned[0] <= HOUR + second


def test_the_lemon_rule_quarantines_a_node_on_its_fourth_repair_in_a_week(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    faults = [make_failure(f"f{n}", HOUR + n * 1.5 * DAY, 5) for n in range(4)]
    ledger = run_trace(REPAIRBOT, faults, days=10)
    assert ledger.lemons == 1
    assert [r.outcome for r in ledger.resolutions] == ["repaired"] * 3 + ["quarantined"]
    assert len(ledger.actions) == 3  # the lemon skipped the ladder


def test_a_relapsing_node_is_quarantined_by_repairbot_and_rebooted_forever_by_hand(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    flaky = Timings(validation_miss=1.0, relapse_mean=DAY)  # validation never catches this fault
    fault = make_failure("hbm", HOUR, 7, category="GPU HBM3 memory", fix=TrueFix.REPLACE)
    bot = run_trace(REPAIRBOT, [fault], days=20, timings=flaky)
    manual = run_trace(MANUAL, [fault], days=20, timings=flaky)
    assert bot.lemons == 1
    assert bot.resolutions[-1].outcome == "quarantined"
    assert not any(r.outcome == "quarantined" for r in manual.resolutions)
    assert manual.relapses > bot.relapses


def test_the_reboot_cap_delays_a_third_reboot_within_a_day(run_trace: RunTrace, make_failure: MakeFailure) -> None:
    faults = [make_failure("a", HOUR, 3, fix=TrueFix.POWER_CYCLE), make_failure("b", 3 * HOUR, 3)]
    ledger = run_trace(REPAIRBOT, faults)
    assert ledger.reboot_cap_waits == 1
    reboots = [a.at for a in ledger.actions if a.failure == "b"]
    assert reboots and reboots[0] >= ledger.actions[0].at + DAY


def test_a_fault_on_a_node_already_out_is_merged_and_comes_back_if_uncured(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    network = make_failure("link", HOUR, 9, category="Network switch/cable", fix=TrueFix.FABRIC)
    gpu = make_failure("gpu", HOUR + 600, 9)  # the GPU falls off the bus while the node waits for the network
    ledger = run_trace(REPAIRBOT, [network, gpu])
    assert ledger.merged == 1
    assert [(r.failure, r.outcome) for r in ledger.resolutions] == [("link", "network"), ("gpu", "repaired")]
