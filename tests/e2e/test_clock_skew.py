"""Clocks never decide safety: late alerts and skewed agents still trip the breaker and wait out the settle time.

DESIGN.md, "Safety": the breaker, settle and lemon windows count from the
operator's receive time (``status.receivedAt``); the sources' timestamps
(an alert's ``startsAt``, an agent's ``firstSeen``) are evidence only.
Each repair below is opened only after the previous one is on record, so
the windows are judged from what is written, not from a lucky listing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_support import SandboxFactory, eventually, inject_now, phase_of, repairs_of, simulated
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.model import format_time, parse_time

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
