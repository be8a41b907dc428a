"""Two operator replicas, one active: the Lease protocol against the emulated API server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from repairbot.operator.leader import LEASE_NAME, LeaderElector
from repairbot.operator.metrics import OperatorMetrics


class Clock:
    """One replica's clocks: a wall clock ``offset`` off true time, and a monotonic one that only elapses."""

    def __init__(self, offset: timedelta = timedelta(0), shared: Clock | None = None) -> None:
        self.shared = shared
        self.offset = offset
        self._now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    @property
    def now(self) -> datetime:
        return self.shared.now if self.shared is not None else self._now

    @now.setter
    def now(self, value: datetime) -> None:
        assert self.shared is None, "advance the shared clock"
        self._now = value

    def __call__(self) -> datetime:
        return self.now + self.offset

    def monotonic(self) -> float:
        return (self.now - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds()


def elector(api: client.ApiClient, identity: str, clock: Clock) -> LeaderElector:
    return LeaderElector(api, "repairbot", identity, lease_duration=timedelta(seconds=15), clock=clock,
                         monotonic=clock.monotonic)  # fmt: skip


def namespace(apiserver: Any) -> None:
    if apiserver.server.get_object("v1", "Namespace", "repairbot") is None:
        apiserver.server.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "repairbot"}})


def holder(api: client.ApiClient) -> Any:
    return client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, "repairbot").spec.holder_identity


def test_one_leader_the_other_waits_then_takes_over_an_expired_lease(apiserver: Any, api: client.ApiClient) -> None:
    namespace(apiserver)
    clock = Clock()
    first, second = elector(api, "operator-a", clock), elector(api, "operator-b", clock)

    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()  # the lease is held and fresh
    clock.now += timedelta(seconds=10)
    assert first.try_acquire_or_renew()  # renewing keeps it
    clock.now += timedelta(seconds=10)
    assert not second.try_acquire_or_renew()  # renewed 10 s ago: still not expired
    assert holder(api) == "operator-a"

    clock.now += timedelta(seconds=16)  # operator-a stopped renewing (killed, partitioned)
    assert second.try_acquire_or_renew()
    assert holder(api) == "operator-b"
    assert not first.try_acquire_or_renew()  # the old leader finds it lost the lease
    lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, "repairbot")
    assert lease.spec.lease_transitions == 1


def test_a_standby_12_seconds_ahead_does_not_take_a_live_leaders_lease(apiserver: Any, api: client.ApiClient) -> None:
    """Expiry is judged on the observer's clock since the record last changed, never against ``renewTime``."""
    namespace(apiserver)
    leader_clock = Clock()
    leader = elector(api, "operator-a", leader_clock)
    standby = elector(api, "operator-b", Clock(timedelta(seconds=12), shared=leader_clock))
    assert leader.try_acquire_or_renew()
    for _ in range(6):  # 30 s of a healthy leader renewing every 5 s
        leader_clock.now += timedelta(seconds=1)
        assert leader.try_acquire_or_renew()
        leader_clock.now += timedelta(seconds=4)
        assert not standby.try_acquire_or_renew()  # renewTime looks 16 s old to its wall clock: still live
    assert holder(api) == "operator-a"


def test_a_standby_an_hour_behind_still_takes_over_a_dead_leaders_lease(apiserver: Any, api: client.ApiClient) -> None:
    namespace(apiserver)
    leader_clock = Clock()
    leader = elector(api, "operator-a", leader_clock)
    standby = elector(api, "operator-b", Clock(-timedelta(hours=1), shared=leader_clock))
    assert leader.try_acquire_or_renew()
    assert not standby.try_acquire_or_renew()  # first sight of the record
    leader_clock.now += timedelta(seconds=10)  # the leader dies: the record stops changing
    assert not standby.try_acquire_or_renew()
    leader_clock.now += timedelta(seconds=6)  # 16 s unchanged by the standby's own clock
    assert standby.try_acquire_or_renew()
    assert holder(api) == "operator-b"


def test_a_fresh_candidate_waits_a_full_lease_duration_from_its_first_sight(
    apiserver: Any, api: client.ApiClient
) -> None:
    """A ``renewTime`` long past says nothing: the candidate cannot tell a skewed holder from a dead one."""
    namespace(apiserver)
    clock = Clock()
    assert elector(api, "operator-a", Clock(-timedelta(minutes=5), shared=clock)).try_acquire_or_renew()
    late = elector(api, "operator-b", clock)
    assert not late.try_acquire_or_renew()  # renewTime is five minutes old by its wall clock
    clock.now += timedelta(seconds=14)
    assert not late.try_acquire_or_renew()
    clock.now += timedelta(seconds=2)
    assert late.try_acquire_or_renew()


def test_the_leader_gauge_says_1_while_this_replica_leads_and_0_once_it_lost_the_lease(
    apiserver: Any, api: client.ApiClient
) -> None:
    """What ``repairbot_operator_leader`` shows: the dashboard tells the active replica from the standby."""
    namespace(apiserver)
    metrics, told = OperatorMetrics(), []

    def tell(leading: bool) -> None:
        told.append(leading)
        metrics.set_leader(leading)

    leader = LeaderElector(api, "repairbot", "operator-a", lease_duration=timedelta(seconds=1),
                           renew_every=timedelta(seconds=0.1), on_leading=tell)  # fmt: skip
    assert metrics.registry.get_sample_value("repairbot_operator_leader") == 0
    leader.run_in_background()
    try:
        deadline = time.monotonic() + 10
        while not leader.is_leader and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metrics.registry.get_sample_value("repairbot_operator_leader") == 1
        coordination = client.CoordinationV1Api(api)
        lease = coordination.read_namespaced_lease(LEASE_NAME, "repairbot")
        lease.spec.holder_identity = "operator-b"  # another replica took it while this one was paused
        coordination.replace_namespaced_lease(LEASE_NAME, "repairbot", lease)
        assert leader.lost.wait(10)
        assert told[:2] == [True, False]
    finally:
        leader.stop()
