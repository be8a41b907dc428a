"""The simulated storm breakers are the operator's: one fleet-wide, one per leaf switch, one incident each."""

from __future__ import annotations

from collections.abc import Callable

from repairbot.machine.breaker import BreakerState
from repairbot.model import Action
from repairbot.policy import parse_policy
from repairbot_fleetsim.config import HOUR, MINUTE, SimConfig
from repairbot_fleetsim.engine import Fleet, Kernel, Process
from repairbot_fleetsim.failures import Failure, TrueFix
from repairbot_fleetsim.ledger import Ledger
from repairbot_fleetsim.storm_gate import Repair, StormGate
from repairbot_fleetsim.strategies import REPAIRBOT

MakeFailure = Callable[..., Failure]
RunTrace = Callable[..., Ledger]
Storm = Callable[..., list[Failure]]
RESUME = 30 * MINUTE
DOMAIN_SIZE = 16  # as conftest's traces: nodes 0-15 are leaf-000, 16-31 leaf-001, ...


def leaf_burst(make_failure: MakeFailure, at: float, domain: int, count: int, *, links: bool = True) -> list[Failure]:
    """``count`` nodes of one leaf fail within seconds: dead links (notify) or GPUs off the bus (reboot)."""
    nodes = range(domain * DOMAIN_SIZE, domain * DOMAIN_SIZE + count)
    if links:
        return [make_failure(f"l{domain}-{n}", at + 0.3 * i, n, category="Network switch/cable", fix=TrueFix.FABRIC,
                             storm=f"storm-{domain}") for i, n in enumerate(nodes)]  # fmt: skip
    return [make_failure(f"g{domain}-{n}", at + 0.3 * i, n) for i, n in enumerate(nodes)]


def test_a_storm_on_one_leaf_does_not_hold_a_repair_on_another_leaf(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    """Four links of leaf 0 die (a leaf storm, below the fleet's threshold); a GPU on leaf 2 fails meanwhile."""
    bystander = make_failure("gpu", HOUR + 10 * MINUTE, 2 * DOMAIN_SIZE + 8)
    bot = run_trace(REPAIRBOT, [*leaf_burst(make_failure, HOUR, 0, 4), bystander])
    [reboot] = bot.actions
    assert reboot.failure == "gpu"
    assert reboot.at < bystander.at + 5 * MINUTE  # settle and drain only: leaf 0's breaker does not govern leaf 2
    assert bot.breaker_held_bystanders == []
    [(_, message, incident)] = bot.breaker_trips
    assert "failure domain leaf-000" in message and incident.endswith("-leaf-000")


def test_a_whole_leaf_going_down_is_that_leafs_incident_alone_and_other_leaves_keep_being_repaired(
    run_trace: RunTrace, switch_storm: Storm, make_failure: MakeFailure
) -> None:
    """Sixteen nodes are more than the fleet's ``maxFaults`` (10), but all of them are leaf 0's storm: the
    fleet counts only nodes outside stormed leaves, so its breaker stays closed and leaf 2's GPU is rebooted."""
    bystander = make_failure("gpu", HOUR + 10 * MINUTE, 2 * DOMAIN_SIZE + 8)
    bot = run_trace(REPAIRBOT, [*switch_storm(HOUR), bystander])
    [(leaf_at, leaf_message, leaf_incident)] = bot.breaker_trips
    assert leaf_incident.endswith("-leaf-000") and "failure domain leaf-000" in leaf_message
    assert leaf_at < HOUR + 10
    assert bot.fleet_breaker_trips == 0
    [reboot] = bot.actions
    assert reboot.failure == "gpu"
    assert reboot.at < bystander.at + 5 * MINUTE  # settle and drain only
    assert bot.breaker_held_bystanders == []
    assert bot.pages == 2  # the first node's own page before the leaf's breaker opened, then the leaf's incident


def test_faults_spread_over_more_leaves_than_max_faults_are_a_fleet_storm_that_holds_every_leaf(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    """Eleven links die within seconds, one on each of leaves 0-10 (no leaf storms): more than ``maxFaults``
    (10) nodes outside any stormed leaf open the fleet's breaker, and a GPU on leaf 40 waits for the resume."""
    links = [make_failure(f"link{leaf}", HOUR + 0.3 * leaf, leaf * DOMAIN_SIZE, category="Network switch/cable",
                          fix=TrueFix.FABRIC, storm="fabric") for leaf in range(11)]  # fmt: skip
    bystander = make_failure("gpu", HOUR + 10 * MINUTE, 40 * DOMAIN_SIZE + 3)
    bot = run_trace(REPAIRBOT, [*links, bystander])
    [(fleet_at, fleet_message, fleet_incident)] = bot.breaker_trips
    assert "leaf" not in fleet_incident and "more than 10" in fleet_message
    assert bot.fleet_breaker_trips == 1
    [reboot] = bot.actions
    assert reboot.failure == "gpu"  # the fleet incident's canary, once a human resumed
    assert fleet_at + RESUME <= reboot.at < fleet_at + RESUME + 10 * MINUTE
    assert len(bot.breaker_held_bystanders) == 1
    assert bot.pages == 11  # the first ten links page on their own; the eleventh and the GPU share the incident


def test_a_resumed_leaf_breaker_that_no_repair_could_test_closes_after_its_window(
    make_failure: MakeFailure,
) -> None:
    """Two GPUs of leaf 0 storm while a node elsewhere holds the whole budget (one node): after the resume
    neither may go at once, so neither takes the canary slot. The operator's next reconcile after
    ``domainWindow`` closes the untested breaker; it does not stay half-open until the budget frees."""
    one_node = parse_policy({"budget": {"maxUnavailable": 1}})
    config = SimConfig(nodes=64, days=1, domain_size=DOMAIN_SIZE, policy=one_node)
    kernel = Kernel()
    fleet = Fleet(config, kernel, Ledger("repairbot"))
    gate = StormGate(fleet)
    fleet.cordon(make_failure("elsewhere", 0.0, 3 * DOMAIN_SIZE))
    stormed = [Repair(make_failure(name, 0.0, node), opened=0.0) for name, node in (("a", 0), ("b", 1))]
    released: list[str] = []

    def blocked(repair: Repair) -> Process:
        yield from gate.wait(repair)
        released.append(repair.failure.id)

    for repair in stormed:
        gate.opened(repair)
    for repair in stormed:
        kernel.spawn(blocked(repair))
    kernel.run(RESUME + MINUTE)
    leaf = gate.breakers.domains["leaf-000"]
    assert leaf.state is BreakerState.HALF_OPEN and leaf.canaries == ()
    assert released == []
    kernel.run(RESUME + MINUTE + 5 * MINUTE)
    assert gate.breakers.domains["leaf-000"].state is BreakerState.CLOSED
    assert sorted(released) == ["a", "b"]  # the breaker no longer holds them; the budget still queues them


def test_two_leaves_storming_at_once_are_two_incidents_each_with_its_own_canary(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    """Leaf 0 loses four GPUs (reboots), leaf 1 four links (notify), a minute apart: two pages, two resumes."""
    gpus = leaf_burst(make_failure, HOUR, 0, 4, links=False)
    links = leaf_burst(make_failure, HOUR + MINUTE, 1, 4)
    bot = run_trace(REPAIRBOT, [*gpus, *links])
    incidents = [incident for _, _, incident in bot.breaker_trips]
    assert [i.rsplit("-", 1)[-1] for i in incidents] == ["000", "001"]
    assert len(set(incidents)) == 2
    assert bot.pages == 3  # one per incident, and leaf 1's first link, whose notify rung paged before the trip
    leaf0_trip = bot.breaker_trips[0][0]
    reboots = [a for a in bot.actions if a.action is Action.REBOOT]
    assert {a.failure for a in reboots} == {f.id for f in gpus}
    canary, *rest = sorted(reboots, key=lambda a: a.at)
    # the canary is a node of leaf 0, once its incident is resumed; the rest only after it passed validation
    assert leaf0_trip + RESUME <= canary.at < leaf0_trip + RESUME + 5 * MINUTE
    assert all(a.at >= canary.at + 8 * MINUTE + 3 * MINUTE for a in rest)
    assert [r.outcome for r in bot.resolutions].count("network") == 4


def test_a_canary_is_only_a_blocked_repair_that_fits_the_budget(make_failure: MakeFailure) -> None:
    """Two GPUs of leaf 0 storm; the budget (one node) is held by the younger one, which RepairBot cordoned.
    After the resume the older one, the human's pick, cannot go at once: the canary is the cordoned one."""
    one_node = parse_policy({"budget": {"maxUnavailable": 1}})
    config = SimConfig(nodes=64, days=1, domain_size=DOMAIN_SIZE, policy=one_node)
    kernel = Kernel()
    fleet = Fleet(config, kernel, Ledger("repairbot"))
    gate = StormGate(fleet)
    older, younger = (Repair(make_failure(name, 0.0, node), opened=0.0) for name, node in (("a", 0), ("b", 1)))
    released: list[str] = []

    def blocked(repair: Repair) -> Process:
        yield from gate.wait(repair)
        released.append(repair.failure.id)

    for repair in (older, younger):
        gate.opened(repair)
    fleet.cordon(younger.failure)
    for repair in (older, younger):
        kernel.spawn(blocked(repair))
    kernel.run(RESUME + MINUTE)
    assert released == ["b"]
    assert gate.breakers.domains["leaf-000"].canaries == (younger.name,)


def test_a_failed_canary_with_nobody_left_waiting_reopens_its_leaf_without_paging_again(
    run_trace: RunTrace, make_failure: MakeFailure
) -> None:
    """Four links of leaf 0 die, then a GPU on leaf 0 that only a power cycle cures. After the resume the GPU
    is the canary; its reboot fails and it is quarantined, reopening leaf 0's breaker as a new incident that
    keeps the leaf in its name. The operator posts a storm message from the incident's first member; the links
    already hold for the network team, so nobody joins the new incident and nobody is paged for it."""
    reboot_then_quarantine = parse_policy({"ladders": {"xid-79": ["reboot", "quarantine"]}})
    gpu = make_failure("gpu", HOUR + MINUTE, 8, fix=TrueFix.POWER_CYCLE)
    bot = run_trace(REPAIRBOT, [*leaf_burst(make_failure, HOUR, 0, 4), gpu], policy=reboot_then_quarantine)
    (first_at, _, first), (reopened_at, message, second) = bot.breaker_trips
    assert first.endswith("-leaf-000") and second.endswith("-leaf-000") and first != second
    assert "canary gpu-node-0008-gpu failed" in message and reopened_at > first_at + RESUME
    assert [a.failure for a in bot.actions] == ["gpu"]
    assert bot.quarantines == 1
    assert bot.pages == 2  # the first link's own page, then the leaf's first incident
