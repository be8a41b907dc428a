"""Two releases in one namespace: each operator elects on its own Lease and keeps its own storm breaker.

The chart names both after the release (``--lease-name``, ``--breaker-configmap``); against the emulated
API server, the leader of one release is no rival to the other's, and one release's open breaker does not
stop the other's repairs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from test_leader_election import Clock, namespace

from repairbot.machine.breaker import Breaker, Breakers, BreakerState
from repairbot.operator.breaker_store import BreakerStore
from repairbot.operator.leader import LeaderElector

RELEASES = {"repairbot": ("repairbot-operator", "repairbot-breaker"),
            "canary": ("canary-repairbot-operator", "canary-repairbot-breaker")}  # fmt: skip


def test_each_release_elects_its_own_leader(apiserver: Any, api: client.ApiClient) -> None:
    namespace(apiserver)
    clock = Clock()
    electors = {
        release: [LeaderElector(api, "repairbot", f"{release}-{n}", lease_name=lease, clock=clock,
                                monotonic=clock.monotonic) for n in (0, 1)]
        for release, (lease, _) in RELEASES.items()
    }  # fmt: skip
    for first, second in electors.values():
        assert first.try_acquire_or_renew(), "another release's leader is no rival"
        assert not second.try_acquire_or_renew(), "but within a release, one leader"
    coordination = client.CoordinationV1Api(api)
    for release, (lease, _) in RELEASES.items():
        assert coordination.read_namespaced_lease(lease, "repairbot").spec.holder_identity == f"{release}-0"


def test_one_releases_open_breaker_leaves_the_others_closed(apiserver: Any, api: client.ApiClient) -> None:
    namespace(apiserver)
    stores = {release: BreakerStore(api, "repairbot", breaker) for release, (_, breaker) in RELEASES.items()}
    opened = Breaker(state=BreakerState.OPEN, incident="storm-1", message="4 nodes in 10m",
                     opened_at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC))  # fmt: skip
    stores["canary"].put(Breakers(fleet=opened))

    core = client.CoreV1Api(api)
    assert core.read_namespaced_config_map("canary-repairbot-breaker", "repairbot").data["state"] == "open"
    assert BreakerStore(api, "repairbot", "canary-repairbot-breaker").get().fleet.state is BreakerState.OPEN
    assert BreakerStore(api, "repairbot", "repairbot-breaker").get().fleet.state is BreakerState.CLOSED
    assert stores["repairbot"].get().fleet.state is BreakerState.CLOSED
