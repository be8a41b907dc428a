"""The sandbox's control endpoint: inject faults into simulated GPU nodes over HTTP.

``repairbot inject`` and the tests talk to this, so an injected fault enters
through the same door for every caller and then flows through the same
detector code as a real one. Besides hardware faults a node takes
``agent-restart``: its agent is replaced by a fresh one, as a DaemonSet
rollout replaces the pod.

A hardware fault is applied at once, on the event loop, so faults posted back
to back land milliseconds apart (a storm is a storm). An agent restart runs on
a worker thread instead: it waits for the old agent's threads, which talk to
the API server this loop may serve.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from repairbot.model import format_time

AGENT_RESTART = "agent-restart"


class UnknownFault(ValueError):
    """The fault name is not one the simulated node knows."""


@dataclass(frozen=True, slots=True)
class NodeHandle:
    """What the control endpoint needs of one simulated node."""

    inject: Callable[[str, int], None]
    describe: Callable[[], dict[str, Any]]


def control_app(nodes: Mapping[str, NodeHandle]) -> web.Application:
    """Routes: ``GET /healthz``, ``GET /nodes``, ``POST /nodes/{node}/faults`` ``{"fault": "xid:79", "gpu": 2}``."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def list_nodes(_: web.Request) -> web.Response:
        return web.json_response({name: handle.describe() for name, handle in sorted(nodes.items())})

    async def inject(request: web.Request) -> web.Response:
        name = request.match_info["node"]
        handle = nodes.get(name)
        if handle is None:
            return _error(404, f"no simulated node {name!r}; known: {', '.join(sorted(nodes)[:5])}…")
        try:
            body = json.loads(await request.read() or b"{}")
        except json.JSONDecodeError as error:
            return _error(400, f"body is not JSON: {error}")
        if not isinstance(body, dict) or not isinstance(body.get("fault"), str):
            return _error(400, 'body must be an object with a string "fault", e.g. {"fault": "xid:79", "gpu": 0}')
        gpu = body.get("gpu", 0)
        if not isinstance(gpu, int) or isinstance(gpu, bool) or gpu < 0:
            return _error(400, f'"gpu" must be a non-negative integer, got {gpu!r}')
        try:
            if body["fault"] == AGENT_RESTART:
                await asyncio.get_running_loop().run_in_executor(None, handle.inject, body["fault"], gpu)
            else:
                handle.inject(body["fault"], gpu)
        except (UnknownFault, ValueError, IndexError) as error:
            return _error(422, str(error))
        at = format_time(datetime.now(UTC))
        return web.json_response({"node": name, "fault": body["fault"], "gpu": gpu, "injectedAt": at}, status=202)

    app = web.Application()
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/nodes", list_nodes),
            web.post("/nodes/{node}/faults", inject),
        ]
    )
    return app


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)
