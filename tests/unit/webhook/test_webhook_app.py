"""The app with a stand-in cluster: start-up refusals, 503 on an API failure, repeats served from memory."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubernetes.client.rest import ApiException

from repairbot.model import Finding, Source
from repairbot.webhook.auth import AuthConfigError, WebhookAuth
from repairbot.webhook.handling import AlertHandler
from repairbot.webhook.main import WebhookOptions, run_webhook
from repairbot.webhook.mapping import AlertRules
from repairbot.webhook.server import build_app

NODE = {"metadata": {"name": "gpu-1"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
BODY = {"alerts": [{"status": "firing", "labels": {"alertname": "GpuXid", "node": "gpu-1", "xid": "79"}}]}


class FakeCluster:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.delivered: list[tuple[str, Finding, Source]] = []
        self.resolved: list[tuple[str, str]] = []

    def list_nodes(self) -> list[dict[str, Any]]:
        return [NODE]

    def deliver(self, node: str, findings: list[Finding], source: Source) -> str:
        if self.fail:
            raise ApiException(status=500, reason="etcd is sad")
        self.delivered.extend((node, finding, source) for finding in findings)
        return f"{node}-1"

    def note_resolved(self, node: str, fingerprint: str, at: datetime) -> str | None:
        if self.fail:
            raise ApiException(status=500, reason="etcd is sad")
        self.resolved.append((node, fingerprint))
        return f"{node}-1"


async def client_for(cluster: FakeCluster) -> TestClient[Any, Any]:
    app = build_app(AlertHandler(cluster, AlertRules.default()), WebhookAuth(insecure_no_auth=True))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_api_failure_is_503_and_the_retry_delivers() -> None:
    cluster = FakeCluster(fail=True)
    client = await client_for(cluster)
    try:
        response = await client.post("/webhook/alertmanager", json=BODY)
        assert response.status == 503
        assert "etcd is sad" in (await response.json())["error"]
        cluster.fail = False
        response = await client.post("/webhook/alertmanager", json=BODY)
        assert response.status == 202
        again = await client.post("/webhook/alertmanager", json=BODY)
        assert (await again.json()) == (await response.json())
        assert len(cluster.delivered) == 1  # the repeat came from memory
    finally:
        await client.close()


async def test_resolved_alert_is_noted_on_its_node_and_answered_as_ignored() -> None:
    cluster = FakeCluster()
    client = await client_for(cluster)
    resolved = {"alerts": [{**BODY["alerts"][0], "status": "resolved", "fingerprint": "fp-1"}]}
    try:
        response = await client.post("/webhook/alertmanager", json=resolved)
        assert response.status == 202
        assert await response.json() == {"repairs": [], "ignored": [{"fingerprint": "fp-1", "reason": "resolved"}]}
        assert cluster.resolved == [("gpu-1", "fp-1")] and cluster.delivered == []
        cluster.fail = True  # a resolution that cannot be written is logged, not a 5xx the sender would repeat
        response = await client.post("/webhook/alertmanager", json=resolved)
        assert response.status == 202
    finally:
        await client.close()


async def test_unknown_path_is_json_404() -> None:
    client = await client_for(FakeCluster())
    try:
        response = await client.get("/nope")
        assert response.status == 404
        assert "error" in await response.json()
    finally:
        await client.close()


def test_build_app_refuses_without_auth() -> None:
    with pytest.raises(AuthConfigError):
        build_app(AlertHandler(FakeCluster(), AlertRules.default()), WebhookAuth())


def test_run_webhook_refuses_bad_config(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TOKEN", "USERNAME", "PASSWORD", "HMAC_SECRET"):
        monkeypatch.delenv(f"REPAIRBOT_WEBHOOK_{name}", raising=False)
    caplog.set_level(logging.ERROR)
    assert run_webhook(WebhookOptions()) == 2
    assert "--insecure-no-auth" in caplog.text
    mapping = tmp_path / "map.yaml"
    mapping.write_text("rules: {A: {action: reboot}}\n")
    assert run_webhook(WebhookOptions(insecure_no_auth=True, alert_mapping=mapping)) == 2
    assert "alert rule 'A'" in caplog.text


class MeetingCluster(FakeCluster):
    """Each delivery waits until ``width`` deliveries are in flight at once: a sequential handler never gets there."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(width, timeout=5)

    def list_nodes(self) -> list[dict[str, Any]]:
        return [{"metadata": {"name": f"gpu-{n}"}} for n in range(8)]

    def deliver(self, node: str, findings: list[Finding], source: Source) -> str:
        self.barrier.wait()
        return super().deliver(node, findings, source)


async def test_the_nodes_of_one_payload_are_delivered_at_once_one_report_each() -> None:
    cluster = MeetingCluster(width=4)
    alerts = [{"status": "firing", "labels": {"alertname": "GpuXid", "node": f"gpu-{n % 4}", "xid": "79",
                                              "gpu": str(n // 4)}, "startsAt": "2026-05-01T10:00:00Z",
               "fingerprint": f"fp-{n}"} for n in range(8)]  # fmt: skip
    body = {"version": "4", "status": "firing", "receiver": "r", "groupKey": "g", "alerts": alerts}
    client = await client_for(cluster)
    try:
        response = await client.post("/webhook/alertmanager", json=body)
        assert response.status == 202, await response.text()
        answer = await response.json()
    finally:
        await client.close()
    assert len(answer["repairs"]) == 8
    by_node: dict[str, list[int]] = {}
    for node, finding, _ in cluster.delivered:
        by_node.setdefault(node, []).append(finding.gpu.index or 0)
    assert {node: sorted(gpus) for node, gpus in by_node.items()} == {f"gpu-{n}": [0, 1] for n in range(4)}
