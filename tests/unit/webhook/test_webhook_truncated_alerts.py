"""Alerts the sender cut (``truncatedAlerts``: over the receiver's max_alerts) are said, logged and counted."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from repairbot.model import Finding, Source
from repairbot.webhook.auth import WebhookAuth
from repairbot.webhook.handling import AlertHandler
from repairbot.webhook.mapping import AlertRules
from repairbot.webhook.metrics import WebhookMetrics
from repairbot.webhook.server import build_app

NODE = {"metadata": {"name": "gpu-1"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
BODY = {"alerts": [{"status": "firing", "labels": {"alertname": "GpuXid", "node": "gpu-1", "xid": "79"}}]}


class FakeCluster:
    """One node; every delivered finding opens repair ``<node>-1``."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, Finding, Source]] = []

    def list_nodes(self) -> list[dict[str, Any]]:
        return [NODE]

    def deliver(self, node: str, findings: list[Finding], source: Source) -> str:
        self.delivered.extend((node, finding, source) for finding in findings)
        return f"{node}-1"

    def note_resolved(self, node: str, fingerprint: str, at: datetime) -> str | None:
        return None


@pytest.mark.parametrize(("endpoint", "source"), [("/webhook/alertmanager", "alertmanager"),
                                                  ("/webhook/grafana", "grafana")])  # fmt: skip
async def test_a_notification_its_sender_truncated_says_how_many_alerts_were_cut_and_counts_them(
    endpoint: str, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    cluster, metrics = FakeCluster(), WebhookMetrics()
    app = build_app(AlertHandler(cluster, AlertRules.default()), WebhookAuth(insecure_no_auth=True), metrics=metrics)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        with caplog.at_level(logging.WARNING, logger="repairbot.webhook.handling"):
            response = await client.post(endpoint, json={**BODY, "truncatedAlerts": 7, "groupKey": "{}:{x=\"y\"}"})
        assert response.status == 202
        body = await response.json()
        assert body["truncatedAlerts"] == 7 and len(body["repairs"]) == 1  # what did arrive is still handled
        assert "truncated=7" in caplog.text and f"source={source}" in caplog.text
        sample = metrics.registry.get_sample_value("repairbot_webhook_truncated_alerts_total", {"source": source})
        assert sample == 7
        again = await client.post(endpoint, json={**BODY, "truncatedAlerts": 0})
        assert "truncatedAlerts" not in await again.json()  # a whole notification's answer is unchanged
        assert metrics.registry.get_sample_value("repairbot_webhook_truncated_alerts_total", {"source": source}) == 7
    finally:
        await client.close()
