"""A fake Slack Web API over real HTTP, answering the real slack-sdk ``WebClient``.

No Slack is reachable where RepairBot is built, so tests and the sandbox post
here. It speaks what RepairBot uses — ``auth.test``, ``chat.postMessage``
(threads included), ``chat.update`` — with bearer auth, and is as strict as
Slack where RepairBot could go wrong: ``chat.update`` wants the channel *ID*
the post returned, a ``thread_ts`` must name an existing message of that
channel, unknown channels answer ``channel_not_found``.

Messages are checked against Slack's published limits before they are
stored: at most 50 blocks, known block types, a header's plain text at most 150
characters, a section's text at most 3,000 and its fields at most 10 of 2,000,
a context at most 10 elements, non-empty text objects (``invalid_blocks``), and
a message text at most 40,000 characters (``msg_too_long``).

Every request is recorded (``GET /_recorded``: ``method``, ``path``, ``body``,
``status``) and it misbehaves on demand — ``rate_limit(n, retry_after)``
answers 429 with ``Retry-After`` to the next ``n`` calls, ``fail_for(s)``
answers 500 for a while, ``refuse(method, error, containing=…)`` answers one
kind of message with Slack's refusal (as Slack does for rules the fake does not
model: a blocks error applies only to messages that carry blocks) — also over
HTTP (``POST /_control``) for the demo.
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
MAX_BLOCKS = 50
MAX_TEXT = 40_000
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
HEADER_TEXT_LIMIT = 150
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
BLOCK_TYPES = frozenset({"section", "header", "context", "divider", "actions", "image", "rich_text", "markdown"})
BLOCKS_ERRORS = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Answer ``method`` calls whose text or blocks contain ``containing`` with ``error`` (Slack's own code)."""

    method: str
    error: str
    containing: str = ""

    def applies(self, method: str, body: dict[str, Any]) -> bool:
        if method != self.method:
            return False
        blocks = _blocks(body)
        if self.error in BLOCKS_ERRORS and not blocks:
            return False  # a message without blocks cannot have invalid blocks
        return self.containing in f"{body.get('text') or ''} {json.dumps(blocks or [])}"


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
        self.refusals: list[Refusal] = []
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

    def refuse(self, method: str, error: str, *, containing: str = "") -> None:
        """From now on, answer ``method`` calls for messages containing ``containing`` with ``error``."""
        self.refusals.append(Refusal(method, error, containing))

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
        if "refuse" in data:
            rule = data["refuse"]
            self.refuse(str(rule["method"]), str(rule["error"]), containing=str(rule.get("containing", "")))
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
        refusal = next((r for r in self.refusals if r.applies(method, body)), None)
        if refusal is not None:
            return _error(refusal.error)
        if method in ("chat.postMessage", "chat.update"):
            problem = message_problem(body)
            if problem is not None:
                return _error(*problem)
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


def _error(code: str, why: str = "") -> web.Response:
    """Slack answers most errors with HTTP 200 and ``ok: false`` (blocks errors say which rule, as Slack does)."""
    body: dict[str, Any] = {"ok": False, "error": code}
    if why:
        body["errors"] = [why]
        body["response_metadata"] = {"messages": [f"[ERROR] {why}"]}
    return web.json_response(body)


def message_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    """Slack's published message limits: ``(error, why)`` for the first one ``body`` breaks, else None."""
    text = body.get("text")
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return "msg_too_long", f"text is {len(text)} characters; the limit is {MAX_TEXT}"
    raw = body.get("blocks")
    if raw is None:
        return None
    try:
        blocks = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return "invalid_blocks_format", "blocks is not valid JSON"
    if not isinstance(blocks, list):
        return "invalid_blocks_format", "blocks must be an array"
    if len(blocks) > MAX_BLOCKS:
        return "invalid_blocks", f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"
    for index, block in enumerate(blocks):
        why = _block_problem(block)
        if why:
            return "invalid_blocks", f"{why} [json-pointer:/blocks/{index}]"
    return None


def _block_problem(block: Any) -> str | None:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        return "unsupported type"
    kind = block["type"]
    if kind == "header":
        return _text_problem(block.get("text"), HEADER_TEXT_LIMIT, plain_only=True, required=True)
    if kind == "section":
        fields = block.get("fields")
        if block.get("text") is None and not fields:
            return "must provide either text or fields"
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
                return f"fields: no more than {MAX_FIELDS} items allowed"
            for field_text in fields:
                why = _text_problem(field_text, FIELD_TEXT_LIMIT, required=True)
                if why:
                    return f"fields: {why}"
        if block.get("text") is not None:
            return _text_problem(block.get("text"), SECTION_TEXT_LIMIT, required=True)
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
            return f"elements: between 1 and {MAX_CONTEXT_ELEMENTS} items required"
        for element in elements:
            if isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
                why = _text_problem(element, SECTION_TEXT_LIMIT, required=True)
                if why:
                    return f"elements: {why}"
    return None


def _text_problem(obj: Any, limit: int, *, plain_only: bool = False, required: bool = False) -> str | None:
    """A text object: ``plain_text`` (or ``mrkdwn`` where allowed) with 1..``limit`` characters."""
    if obj is None:
        return "text is required" if required else None
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        return f"text must be of type {' or '.join(allowed)}"
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return "text must be at least 1 character"
    if len(text) > limit:
        return f"must be less than {limit + 1} characters"
    return None
