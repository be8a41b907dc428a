"""A fake Slack Web API over real HTTP, answering the real slack-sdk ``WebClient``.

No Slack is reachable where RepairBot is built, so tests and the sandbox post
here. It speaks what RepairBot uses — ``auth.test``, ``chat.postMessage``
(threads included), ``chat.update`` — with bearer auth, and is as strict as
Slack where RepairBot could go wrong: ``chat.update`` wants the channel *ID*
the post returned, a ``thread_ts`` must name an existing message of that
channel, unknown channels answer ``channel_not_found``.

Every request is recorded (``GET /_recorded``: ``method``, ``path``, ``body``,
``status``) and it misbehaves on demand — ``rate_limit(n, retry_after)``
answers 429 with ``Retry-After`` to the next ``n`` calls, ``fail_for(s)``
answers 500 for a while — also over HTTP (``POST /_control``) for the demo.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from repairbot.sim.serving import serve

API_PREFIX = "/api/"


@dataclass(slots=True)
class SlackMessageRecord:
    """A message as the fake workspace holds it; ``thread_ts`` None for a top-level message."""

    channel: str
    ts: str
    text: str | None
    blocks: list[Any] | None
    thread_ts: str | None = None
    edits: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class SlackSim:
    """One fake workspace. ``channels`` maps ``#name``/name → ID; unknown names are refused."""

    def __init__(self, *, token: str = "xoxb-test-token", channels: dict[str, str] | None = None) -> None:
        self.token = token
        self.channels = dict(channels or {"gpu-repairs": "C0GPUREPAIR"})
        self.recorded: list[dict[str, Any]] = []
        self.messages: list[SlackMessageRecord] = []
        self._rate_limited = 0
        self._retry_after = 1
        self._fail_until = 0.0
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    # ------------------------------------------------------------ control

    def rate_limit(self, calls: int, retry_after: int = 1) -> None:
        """Answer the next ``calls`` API calls with 429 and ``Retry-After: retry_after``."""
        self._rate_limited, self._retry_after = calls, retry_after

    def fail_for(self, seconds: float) -> None:
        """Answer 500 to every API call for ``seconds``."""
        self._fail_until = time.monotonic() + seconds

    def thread(self, channel: str, ts: str) -> list[SlackMessageRecord]:
        """The replies whose ``thread_ts`` is ``ts``, in order."""
        return [m for m in self.messages if m.channel == channel and m.thread_ts == ts]

    def find(self, channel: str, ts: str) -> SlackMessageRecord | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/_recorded", self._recorded)
        app.router.add_post("/_control", self._control)
        app.router.add_route("*", API_PREFIX + "{method}", self._api)
        served = await serve(app, host, port)
        self._runner, self.url = served.runner, served.url
        return self.url

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``WebClient``."""
        assert self.url is not None, "SlackSim not started"
        return self.url + API_PREFIX

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ handlers

    async def _recorded(self, request: web.Request) -> web.Response:
        return web.json_response(self.recorded)

    async def _control(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "rateLimit" in data:
            self.rate_limit(int(data["rateLimit"]), int(data.get("retryAfter", 1)))
        if "failFor" in data:
            self.fail_for(float(data["failFor"]))
        return web.json_response({"ok": True})

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _read_body(request)
        record: dict[str, Any] = {"method": request.method, "path": request.path, "body": body}
        self.recorded.append(record)
        response = self._answer(method, request, body)
        record["status"] = response.status
        return response

    def _answer(self, method: str, request: web.Request, body: dict[str, Any]) -> web.Response:
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(self._retry_after)}
            )
        if time.monotonic() < self._fail_until:
            return web.json_response({"ok": False, "error": "fatal_error"}, status=500)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error("not_authed" if "Authorization" not in request.headers else "invalid_auth")
        handlers = {"auth.test": self._auth_test, "chat.postMessage": self._post, "chat.update": self._update}
        handler = handlers.get(method)
        if handler is None:
            return _error("unknown_method")
        return handler(body)

    def _auth_test(self, body: dict[str, Any]) -> web.Response:
        return web.json_response(
            {"ok": True, "url": "https://sim.slack.test/", "team": "sim", "user": "repairbot", "team_id": "T0SIM",
             "user_id": "U0REPAIRBOT", "bot_id": "B0REPAIRBOT"}
        )

    def _channel_id(self, name: str | None) -> str | None:
        if not name:
            return None
        if name in self.channels.values():
            return name
        return self.channels.get(name.lstrip("#"))

    def _post(self, body: dict[str, Any]) -> web.Response:
        channel = self._channel_id(body.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        if not body.get("text") and not body.get("blocks"):
            return _error("no_text")
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and self.find(channel, str(thread_ts)) is None:
            return _error("thread_not_found")
        serial = next(self._ts)
        ts = f"{1_700_000_000 + serial}.{serial:06d}"
        message = SlackMessageRecord(channel, ts, body.get("text"), _blocks(body), thread_ts=thread_ts)
        self.messages.append(message)
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": _as_json(message)})

    def _update(self, body: dict[str, Any]) -> web.Response:
        channel = body.get("channel")
        if channel not in self.channels.values():
            return _error("channel_not_found")
        message = self.find(str(channel), str(body.get("ts")))
        if message is None:
            return _error("message_not_found")
        message.history.append({"text": message.text, "blocks": message.blocks})
        message.text = body.get("text")
        message.blocks = _blocks(body)  # chat.update without blocks drops them, as Slack does
        message.edits += 1
        return web.json_response({"ok": True, "channel": channel, "ts": message.ts, "text": message.text})


async def _read_body(request: web.Request) -> dict[str, Any]:
    """JSON bodies as the SDK sends them; form bodies too (``files``-less calls may use them)."""
    raw = await request.read()
    if not raw:
        return {}
    if request.content_type == "application/json":
        loaded = json.loads(raw)
        return loaded if isinstance(loaded, dict) else {"_": loaded}
    form = await request.post()
    return {k: str(v) for k, v in form.items()}


def _blocks(body: dict[str, Any]) -> list[Any] | None:
    blocks = body.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return blocks if isinstance(blocks, list) else None


def _as_json(message: SlackMessageRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text or ""}
    if message.thread_ts:
        out["thread_ts"] = message.thread_ts
    return out


def _error(code: str) -> web.Response:
    """Slack answers most errors with HTTP 200 and ``ok: false``."""
    return web.json_response({"ok": False, "error": code})
