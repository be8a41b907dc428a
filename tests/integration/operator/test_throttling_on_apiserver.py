"""An API server under load: a 429's Retry-After is waited for, and the client's own rate limit spreads a burst."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from repairbot.kube.client import retried
from repairbot.kube.rate_limit import rate_limited
from repairbot_sim.kube.faults import FaultRule


def test_a_throttled_write_waits_the_retry_after_the_server_asked_for_then_succeeds(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    """A write (urllib3 retries only idempotent reads by itself): our retry waits what the server asked."""
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    apiserver.server.faults.add(FaultRule(action="fail", method="PATCH", path=r"/nodes/gpu-1$", status=429,
                                          retry_after=2, message="too many requests"))  # fmt: skip
    patch = {"metadata": {"labels": {"repairbot.io/state": "repairing"}}}

    started = time.monotonic()
    node = retried(lambda: client.CoreV1Api(api).patch_node("gpu-1", patch))
    waited = time.monotonic() - started

    assert node.metadata.labels["repairbot.io/state"] == "repairing"
    assert 1.9 <= waited < 4.0  # the server's 2 s, not our own 50 ms backoff


def test_the_operators_rate_limit_spreads_a_burst_of_requests_over_time(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    core = client.CoreV1Api(rate_limited(api, qps=20, burst=5))

    started = time.monotonic()
    for _ in range(25):
        core.read_node("gpu-1")
    took = time.monotonic() - started

    assert took >= (25 - 5) / 20 * 0.9  # five at once, then twenty a second
