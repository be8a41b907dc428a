"""The webhook on a real socket in the test's loop, over the emulated API server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from kubernetes import client

from repairbot.model import GROUP, PLURAL, VERSION
from repairbot.webhook.auth import WebhookAuth
from repairbot.webhook.main import WebhookOptions, start_webhook

TOKEN = "test-token"


@dataclass
class RunningWebhook:
    url: str
    api: client.ApiClient
    session: aiohttp.ClientSession

    async def post(
        self, path: str, body: Any = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None,
        method: str = "POST",
    ) -> tuple[int, Any]:  # fmt: skip
        import json

        data = raw if raw is not None else json.dumps(body).encode()
        sent = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})}
        async with self.session.request(method, self.url + path, data=data, headers=sent) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    def repairs(self) -> list[dict[str, Any]]:
        listing = client.CustomObjectsApi(self.api).list_cluster_custom_object(GROUP, VERSION, PLURAL)
        return list(listing["items"])  # type: ignore[index]

    def node_labels(self, name: str) -> dict[str, str]:
        return client.CoreV1Api(self.api).read_node(name).metadata.labels or {}


@pytest.fixture
def webhook_auth() -> WebhookAuth:
    return WebhookAuth(bearer_token=TOKEN)


@pytest.fixture
async def webhook(
    apiserver: Any, kube_api: client.ApiClient, kube_objects: Any, webhook_auth: WebhookAuth
) -> AsyncIterator[RunningWebhook]:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1", ip="10.0.0.1"))
    apiserver.server.create_object(kube_objects.gpu_node("gpu-2", ip="10.0.0.2"))
    options = WebhookOptions(host="127.0.0.1", port=0, body_limit=64 * 1024)
    runner, url = await start_webhook(kube_api, options, auth=webhook_auth)
    session = aiohttp.ClientSession()
    try:
        yield RunningWebhook(url, kube_api, session)
    finally:
        await session.close()
        await runner.cleanup()
