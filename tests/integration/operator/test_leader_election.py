"""Two operator replicas, one active: the Lease protocol against the emulated API server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from repairbot.operator.leader import LEASE_NAME, LeaderElector


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def elector(api: client.ApiClient, identity: str, clock: Clock) -> LeaderElector:
    return LeaderElector(api, "repairbot", identity, lease_duration=timedelta(seconds=15), clock=clock)


def holder(api: client.ApiClient) -> Any:
    return client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, "repairbot").spec.holder_identity


def test_one_leader_the_other_waits_then_takes_over_an_expired_lease(apiserver: Any, api: client.ApiClient) -> None:
    if apiserver.server.get_object("v1", "Namespace", "repairbot") is None:
        apiserver.server.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "repairbot"}})
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
