"""A fake Grafana that keeps annotations as Grafana's HTTP API documents them, and refuses what Grafana refuses.

Grafana's annotation API (``/api/annotations``), as its docs and
``pkg/api/annotations.go`` define it:

- every request carries ``Authorization: Bearer <token>`` (a service-account
  token); none or a wrong one is ``401 {"message": "Unauthorized"}``; a token
  without ``annotations:write`` posting is ``403``;
- ``POST /api/annotations`` takes JSON ``{time, timeEnd, tags, text,
  dashboardUID, panelId}`` (times in epoch milliseconds, 0 or absent: now);
  ``text`` is required (``400 {"message": "Failed to save annotation"}``);
  ``tags`` is a list of strings; the answer is ``{"message": "Annotation
  added", "id": N}``;
- ``GET /api/annotations`` filters by ``from``/``to`` (overlapping the
  annotation's time range), ``tags`` (all of them, or any with
  ``matchAny=true``), ``dashboardUID``, ``type`` and ``limit`` (default 100),
  newest first.

What the fake adds for tests: every annotation kept (:attr:`annotations`),
``fail_next`` (answers 503 a number of times) and ``down``.
"""

from __future__ import annotations

import itertools
import json
import time as _time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from repairbot_sim.serving import Listening, authorization, gate

DEFAULT_LIMIT = 100


@dataclass
class SimAnnotation:
    id: int
    time: int
    time_end: int
    tags: list[str]
    text: str
    dashboard_uid: str | None = None
    panel_id: int | None = None
    created: float = field(default_factory=_time.time)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id, "alertId": 0, "dashboardUID": self.dashboard_uid, "panelId": self.panel_id or 0,
            "time": self.time, "timeEnd": self.time_end, "tags": list(self.tags), "text": self.text,
            "login": "repairbot", "type": "annotation",
        }  # fmt: skip


class GrafanaSim(Listening):
    """One fake Grafana organisation; ``token`` may write annotations, ``read_only_token`` may only read them."""

    def __init__(self, *, token: str = "glsa_repairbot", read_only_token: str | None = None) -> None:
        self.token, self.read_only_token = token, read_only_token
        self.annotations: list[SimAnnotation] = []
        self.down = False
        self._failures = 0
        self._ids = itertools.count(1)
        self.url: str | None = None

    def fail_next(self, count: int) -> None:
        """Answer the next ``count`` requests with 503 (Grafana restarting behind its proxy)."""
        self._failures = count

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[gate(self._refusal)])
        app.router.add_post("/api/annotations", self._post)
        app.router.add_get("/api/annotations", self._find)
        app.router.add_get("/api/health", self._health)
        self.url = await self._listen(app, host, port)
        return self.url

    def _refusal(self, request: web.Request) -> web.Response | None:
        """Grafana's front door: down or failing first, then the token (health is public); None lets it in."""
        if request.path == "/api/health":
            return None
        if self.down or self._failures > 0:
            self._failures = max(0, self._failures - 1)
            return web.Response(status=503, text="Service Unavailable")
        scheme, token = authorization(request)
        if scheme != "bearer" or token not in {self.token, self.read_only_token} - {None}:
            return web.json_response({"message": "Unauthorized"}, status=401)
        if request.method == "POST" and token != self.token:
            return web.json_response({"message": "You'll need additional permissions to perform this action. "
                                      "Permissions needed: annotations:create"}, status=403)  # fmt: skip
        return None

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"database": "ok", "version": "11.0.0-sim"})

    async def _post(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"message": "bad request data"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"message": "bad request data"}, status=400)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return web.json_response({"message": "Failed to save annotation"}, status=400)
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return web.json_response({"message": "bad request data"}, status=400)
        at, end = body.get("time") or 0, body.get("timeEnd") or 0
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (at, end)):
            return web.json_response({"message": "bad request data"}, status=400)
        now = int(_time.time() * 1000)
        at = at or now
        annotation = SimAnnotation(next(self._ids), at, end or at, list(tags), text, body.get("dashboardUID"),
                                   body.get("panelId"))  # fmt: skip
        self.annotations.append(annotation)
        return web.json_response({"message": "Annotation added", "id": annotation.id})

    async def _find(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            start = int(query.get("from", "0"))
            until = int(query.get("to", str(2**62)))
            limit = int(query.get("limit", str(DEFAULT_LIMIT)))
        except ValueError:
            return web.json_response({"message": "bad request data"}, status=400)
        tags = query.getall("tags", [])
        any_tag = query.get("matchAny", "false").lower() == "true"
        uid = query.get("dashboardUID")
        found = [
            a for a in self.annotations
            if a.time <= until and a.time_end >= start
            and (not tags or (any(t in a.tags for t in tags) if any_tag else all(t in a.tags for t in tags)))
            and (uid is None or a.dashboard_uid == uid)
        ]  # fmt: skip
        found.sort(key=lambda a: (a.time, a.id), reverse=True)
        return web.json_response([a.to_api() for a in found[:limit]])
