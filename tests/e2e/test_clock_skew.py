"""Clocks never decide safety: late alerts and skewed agents still trip the breaker and wait out the settle time.

DESIGN.md, "Safety": the breaker, settle and lemon windows count from the
operator's receive time (``status.receivedAt``); the sources' timestamps
(an alert's ``startsAt``, an agent's ``firstSeen``) are evidence only.
Each repair below is opened only after the previous one is on record, so
the windows are judged from what is written, not from a lucky listing.
"""

from __future__ import annotations

import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_support import (
    TEST_POLICY,
    SandboxFactory,
    eventually,
    finished_repair,
    inject_now,
    merge_policy,
    phase_of,
    repairs_of,
    simulated,
    start_operator,
)
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.model import format_time, parse_time
from repairbot_sim.host import ActionTimes
from repairbot_sim.kube.faults import FaultRule

STORM = {"breaker": {"maxPerDomain": 3, "domainWindow": "10m", "window": "10m", "settleTime": "8s"}}
LEAF_0 = ["gpu-node-000", "gpu-node-001", "gpu-node-002", "gpu-node-003"]


def recorded(kube: client.ApiClient, node: str) -> dict[str, Any] | None:
    """The node's repair once the operator has written it (it carries a phase)."""
    return next((r for r in repairs_of(kube, node) if phase_of(r)), None)


def breaker_blocked(repair: dict[str, Any]) -> bool:
    conditions = (repair.get("status") or {}).get("conditions") or []
    return phase_of(repair) == "Blocked" and any(
        c["type"] == "Blocked" and c["status"] == "True" and str(c.get("reason", "")).startswith("Breaker")
        for c in conditions
    )


def alertmanager_xid(node: str, starts_at: datetime) -> dict[str, Any]:
    return {
        "version": "4", "status": "firing", "receiver": "repairbot", "groupKey": f"{{}}:{node}", "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "startsAt": format_time(starts_at), "fingerprint": f"fp-{node}",
                    "labels": {"alertname": "DCGMXidErrors", "Hostname": node, "err_code": "79", "gpu": "0"}}],
    }  # fmt: skip


def test_a_storm_whose_alerts_are_redelivered_11_minutes_late_still_trips_the_breaker(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(policy=STORM)
    kube = api_client(sandbox.state["kubeconfig"])
    boots = {n: simulated(sandbox, n).node.boot_count for n in LEAF_0}
    late = datetime.now(UTC) - timedelta(minutes=11)  # Alertmanager was down; it redelivers what fired then
    headers = {"Authorization": f"Bearer {sandbox.state['webhookToken']}"}
    with httpx.Client(base_url=sandbox.state["webhook"], headers=headers, timeout=10) as webhook:
        for name in LEAF_0:
            webhook.post("/webhook/alertmanager", json=alertmanager_xid(name, late)).raise_for_status()
            eventually(lambda name=name: recorded(kube, name), timeout=20, what=f"{name}'s repair on record")

    blocked = eventually(
        lambda: [r for n in LEAF_0 for r in repairs_of(kube, n) if breaker_blocked(r)] if all(
            any(breaker_blocked(r) for r in repairs_of(kube, n)) for n in LEAF_0) else None,
        timeout=40, interval=0.3, what="every leaf-0 repair Blocked by the storm breaker",
    )  # fmt: skip
    assert {r["spec"]["nodeName"] for r in blocked} == set(LEAF_0)
    for repair in blocked:
        status = repair["status"]
        # the source's time stays as evidence; the windows counted from the receive time
        assert parse_time(status["detectedAt"]) < parse_time(status["receivedAt"]) - timedelta(minutes=10)
        assert repair["spec"]["findings"][0]["evidence"]["startsAt"] == format_time(late)
    assert {n: simulated(sandbox, n).node.boot_count for n in LEAF_0} == boots  # nothing rebooted


def test_agents_60_seconds_ahead_still_trip_the_breaker(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(policy=STORM, agent_clock_offset=60.0)
    kube = api_client(sandbox.state["kubeconfig"])
    boots = {n: simulated(sandbox, n).node.boot_count for n in LEAF_0[:3]}
    for name in LEAF_0[:3]:
        inject_now(sandbox, [(name, "xid:79", 0)])
        eventually(lambda name=name: recorded(kube, name), timeout=20, what=f"{name}'s repair on record")

    eventually(
        lambda: all(any(breaker_blocked(r) for r in repairs_of(kube, n)) for n in LEAF_0[:3]),
        timeout=40, interval=0.3, what="three leaf-0 repairs Blocked by the storm breaker",
    )  # fmt: skip
    for name in LEAF_0[:3]:
        [repair] = repairs_of(kube, name)
        status = repair["status"]
        assert parse_time(status["detectedAt"]) > parse_time(status["receivedAt"]) + timedelta(seconds=30)
    assert {n: simulated(sandbox, n).node.boot_count for n in LEAF_0[:3]} == boots


@pytest.mark.parametrize("offset", [60.0, -60.0], ids=["agents-60s-ahead", "agents-60s-behind"])
def test_skewed_agents_still_wait_out_the_settle_time(make_sandbox: SandboxFactory, offset: float) -> None:
    sandbox = make_sandbox(policy={"breaker": {"settleTime": "10s"}}, agent_clock_offset=offset)
    kube = api_client(sandbox.state["kubeconfig"])
    inject_now(sandbox, [("gpu-node-001", "xid:79", 0)])

    def drain_started() -> dict[str, Any] | None:
        for repair in repairs_of(kube, "gpu-node-001"):
            history = (repair.get("status") or {}).get("history") or []
            if any(e["step"] == "start-drain" for e in history):
                return repair
        return None

    repair = eventually(drain_started, timeout=40, interval=0.2, what="the first drain")
    history = repair["status"]["history"]
    cordoned = parse_time(next(e["at"] for e in history if e["step"] == "cordon"))
    drained = parse_time(next(e["at"] for e in history if e["step"] == "start-drain"))
    waited = (drained - cordoned).total_seconds()
    assert 10.0 <= waited < 25.0, (waited, history)


# The wall clock only, as between two machines (monotonic clocks are per machine and never compared).
# libfaketime 0.9.10 also fakes CLOCK_MONOTONIC by default, which makes Python's timed lock waits hang.
SKEWED_12S = ("env", "FAKETIME_DONT_FAKE_MONOTONIC=1", "faketime", "-f", "+12s")


def test_replicas_12_seconds_apart_keep_one_leader_and_a_deposed_leaders_write_fails(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    """Two operator processes, the standby's clock 12 s ahead (libfaketime).

    1. While the leader renews, the skewed standby never takes the Lease
       (judging ``renewTime`` against its own clock, it would: 12 s + up to 5 s
       since the last renewal is past the 15 s lease).
    2. The leader freezes (SIGSTOP) with a status write in flight, held back
       by the API server. The standby takes over once the Lease stops changing
       and repairs the node; when the held write reaches the server it is
       refused (its resourceVersion is stale) instead of overwriting the new
       leader's record — no second reboot, the new leader's receive time.
    """
    if shutil.which("faketime") is None:
        pytest.skip("faketime is not installed (Debian: apt-get install -y faketime; `make system-deps`)")
    sandbox = make_sandbox(operator=False, action_times=ActionTimes(gpu_reset=0.3, driver_reload=0.3, reboot=1.0))
    kube = api_client(sandbox.state["kubeconfig"])
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(merge_policy(TEST_POLICY, {"breaker": {"settleTime": "1s"}})))
    coordination = client.CoordinationV1Api(kube)

    def lease() -> Any:
        try:
            return coordination.read_namespaced_lease("repairbot-operator", "repairbot").spec
        except client.ApiException:
            return None

    leader = start_operator(sandbox, policy_path, tmp_path / "leader.log", identity="operator-a", leader_election=True)
    skewed: Any = None
    try:
        eventually(lambda: (lease() or None) and lease().holder_identity == "operator-a", timeout=30,
                   what="operator-a holding the Lease")  # fmt: skip
        skewed = start_operator(sandbox, policy_path, tmp_path / "skewed.log", identity="operator-b",
                                leader_election=True, wrapper=SKEWED_12S)  # fmt: skip
        deadline = time.monotonic() + 22  # more than a lease duration plus a renewal, every 0.5 s
        while time.monotonic() < deadline:
            spec = lease()
            assert spec.holder_identity == "operator-a", (spec, (tmp_path / "skewed.log").read_text()[-2000:])
            assert skewed.poll() is None
            time.sleep(0.5)
        assert (lease().lease_transitions or 0) == 0

        # The leader's first status write for the new repair is held back 30 s by the API server …
        faults = sandbox.sandbox.api.faults
        held = faults.add(FaultRule(action="delay", method="PATCH", path=r"gpurepairs/gpu-node-001-[0-9]+/status$",
                                    seconds=30))  # fmt: skip
        boots = simulated(sandbox, "gpu-node-001").node.boot_count
        inject_now(sandbox, [("gpu-node-001", "xid:79", 0)])
        eventually(lambda: held not in faults.rules(), timeout=30, interval=0.02, what="the leader's write in flight")
        frozen_at = datetime.now(UTC)
        leader.send_signal(signal.SIGSTOP)  # … and the leader freezes (a long GC pause, a partition)

        eventually(lambda: lease().holder_identity == "operator-b", timeout=40, interval=0.5,
                   what="the skewed standby taking over the Lease of the frozen leader")  # fmt: skip
        repair = finished_repair(kube, "gpu-node-001", timeout=60)
        time.sleep(max(0.0, 31 - (datetime.now(UTC) - frozen_at).total_seconds()))  # the held write is answered
        [repair] = repairs_of(kube, "gpu-node-001")
    finally:
        leader.kill()
        leader.wait(10)
        if skewed is not None:
            skewed.terminate()
            skewed.wait(20)

    status = repair["status"]
    assert phase_of(repair) == "Succeeded", status
    assert simulated(sandbox, "gpu-node-001").node.boot_count == boots + 1  # one reboot, not two
    # the new leader's receive time (its clock is 12 s ahead), not the frozen leader's stale one
    assert parse_time(status["receivedAt"]) > frozen_at + timedelta(seconds=12), status
    assert len([e for e in status["history"] if e["step"] == "cordon" and e["outcome"] == "started"]) == 1
    assert len([e for e in status["history"] if e["step"] == "request"]) == 1
