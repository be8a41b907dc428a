"""A fake Slack Web API over real HTTP, answering the real slack-sdk ``WebClient``.

No Slack is reachable where RepairBot is built, so tests and the sandbox post
here. It speaks what RepairBot uses — ``auth.test``, ``chat.postMessage``
(threads included), ``chat.update``, ``usergroups.users.list`` — with bearer auth and scopes, and is at least as
strict as Slack where RepairBot could go wrong:

- the workspace has channels the bot is or is not a member of, archived or
  private ones: ``channel_not_found`` (unknown, or private without the bot),
  ``not_in_channel``, ``is_archived`` (``is_inactive`` for ``chat.update``, as
  Slack's reference says); ``chat.update`` wants the channel *ID* the post returned;
- a ``thread_ts`` must name an existing message of that channel
  (``thread_not_found``); ``chat.update`` of no such message is
  ``message_not_found``, of a message someone else posted ``cant_update_message``,
  and past the workspace's edit window ``edit_window_closed``
  (``edit_window``: None, "any time", is Slack's default workspace setting);
- messages are held to Block Kit's limits (:mod:`repairbot_sim.slack_blocks`):
  ``invalid_blocks`` naming each rule's JSON pointer, ``msg_too_long``,
  ``msg_blocks_too_long``;
- ``usergroups.users.list`` (a GET with ``usergroup`` in the query, as
  slack-sdk sends it) answers ``{"ok": true, "users": [...]}`` from
  ``group_members``, ``no_such_subteam`` for an id the workspace has no group
  for, ``invalid_arguments`` without ``usergroup``; every method checks the
  token's ``scopes`` and answers ``missing_scope`` with ``needed`` and
  ``provided``, as Slack does;
- mentions are recorded as Slack parses them (``<@U…>``, ``<!subteam^S…>``,
  ``<!here>``, ``<!channel>``; plain ``@name`` is text): ``mentions`` on the
  message and on its ``/_recorded`` entry, and ``unresolved_mentions`` for
  ids the workspace has no user or group for (they notify nobody).

Every request is recorded (``GET /_recorded``: ``method``, ``path``, ``body``,
``status``, Slack's ``error`` for a refusal, ``mentions`` for accepted messages) and it misbehaves on demand —
``rate_limit(n, retry_after)`` answers 429 with ``Retry-After`` to the next
``n`` calls, ``fail_for(s)`` answers 500 for a while, ``refuse(method, error,
containing=…)`` answers one kind of message with Slack's refusal (for rules the
fake does not model: a blocks error applies only to messages that carry
blocks), ``archive``/``leave`` change a channel — also over HTTP
(``POST /_control``) for the demo.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from repairbot_sim.serving import serve
from repairbot_sim.slack_blocks import buttons, mentions, message_problem, parse_blocks
from repairbot_sim.slack_interactions import block_actions_payload, deliver, form_body

API_PREFIX = "/api/"
BOT_USER = "U0REPAIRBOT"
BLOCKS_ERRORS = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"})
DEFAULT_USER_GROUPS = {"S0GPUONCALL": "gpu-oncall", "S0SANDBOXSRE": "sandbox-sres"}
"""The sandbox workspace's user groups (id → handle): the sandbox policy pages ``<!subteam^S0GPUONCALL>``."""
DEFAULT_USERS = {BOT_USER: "repairbot", "U0SRE00001": "sre-alice", "U0SANDBOX1": "sandbox-sre"}
"""The sandbox workspace's people: the sandbox policy lets ``U0SANDBOX1`` press the repair buttons, not alice."""
DEFAULT_GROUP_MEMBERS = {"S0GPUONCALL": ["U0SRE00001"], "S0SANDBOXSRE": ["U0SANDBOX1"]}
"""Who is in each group (``usergroups.users.list``): the sandbox policy allows ``S0SANDBOXSRE``'s members."""
DEFAULT_SCOPES = frozenset({"chat:write", "usergroups:read"})
"""The bot token's scopes; a method needing one it lacks is ``missing_scope`` (with ``needed``/``provided``)."""
METHOD_SCOPES = {"chat.postMessage": "chat:write", "chat.update": "chat:write",
                 "usergroups.users.list": "usergroups:read"}  # fmt: skip


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
    """A message as the fake workspace holds it; ``thread_ts`` None for a top-level message.

    ``mentions`` are the ones Slack parsed out of its current form and can
    notify (a user or group the workspace has, ``<!here>``, ``<!channel>``).
    """

    channel: str
    ts: str
    text: str | None
    blocks: list[Any] | None
    thread_ts: str | None = None
    edits: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    user: str = BOT_USER
    posted_at: float = 0.0
    mentions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Channel:
    """A channel of the fake workspace: whether the bot is a member, and whether it is archived or private."""

    id: str
    name: str
    member: bool = True
    archived: bool = False
    private: bool = False


class SlackSim:
    """One fake workspace. ``channels`` maps name → ID (the bot a member of each); unknown names are refused.

    ``edit_window`` (seconds, None for "any time") is the workspace's message
    edit setting; ``clock`` (monotonic seconds) lets a test pass it without
    sleeping. ``user_groups`` and ``users`` (id → name) say which mentions
    notify someone, ``group_members`` (group id → user ids) who is in each
    group, ``scopes`` what the bot token was granted.
    """

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",
        channels: dict[str, str] | None = None,
        edit_window: float | None = None,
        user_groups: dict[str, str] | None = None,
        users: dict[str, str] | None = None,
        group_members: dict[str, list[str]] | None = None,
        scopes: frozenset[str] = DEFAULT_SCOPES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        named = channels or {"gpu-repairs": "C0GPUREPAIR"}
        self.workspace = {cid: Channel(cid, name.lstrip("#")) for name, cid in named.items()}
        self.edit_window = edit_window
        self.user_groups = dict(DEFAULT_USER_GROUPS if user_groups is None else user_groups)
        self.users = dict(DEFAULT_USERS if users is None else users)
        source = DEFAULT_GROUP_MEMBERS if group_members is None else group_members
        self.group_members = {group: list(source.get(group, [])) for group in self.user_groups}
        """Members of each of ``user_groups`` (a group missing here has none)."""
        self.scopes = set(scopes)
        self.clock = clock
        self.recorded: list[dict[str, Any]] = []
        self.messages: list[SlackMessageRecord] = []
        self._rate_limited = 0
        self._retry_after = 1
        self._fail_until = 0.0
        self.refusals: list[Refusal] = []
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        self.signing_secret: str | None = None
        """The app's signing secret: clicks are signed with it (None: unsigned, as a forger would send)."""
        self.request_url: str | None = None
        """The app's interactivity Request URL, where clicks are POSTed (the webhook's ``/slack/actions``)."""
        self.responses: list[dict[str, Any]] = []
        """What the app answered on a click's ``response_url``: ``{"path", "body"}`` each, in order."""
        self._response_urls = itertools.count(1)

    @property
    def channels(self) -> dict[str, str]:
        """Channel name → ID."""
        return {c.name: c.id for c in self.workspace.values()}

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

    def add_channel(self, name: str, channel_id: str, *, member: bool = True, private: bool = False) -> Channel:
        channel = Channel(channel_id, name.lstrip("#"), member=member, private=private)
        self.workspace[channel_id] = channel
        return channel

    def archive(self, channel: str) -> None:
        """Archive a channel (name or ID): posts are ``is_archived``, edits ``is_inactive`` from now on."""
        self._known(channel).archived = True

    def leave(self, channel: str) -> None:
        """Take the bot out of a channel: posts are ``not_in_channel`` (``channel_not_found`` if it is private)."""
        self._known(channel).member = False

    def post_as(self, user: str, channel: str, text: str) -> str:
        """A message someone else posted (the bot may not edit it); returns its ts."""
        return self._store(self._known(channel).id, text, None, None, user=user).ts

    def thread(self, channel: str, ts: str) -> list[SlackMessageRecord]:
        """The replies whose ``thread_ts`` is ``ts``, in order."""
        return [m for m in self.messages if m.channel == channel and m.thread_ts == ts]

    def find(self, channel: str, ts: str) -> SlackMessageRecord | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def buttons(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The buttons a message shows now (its ``actions`` blocks), each with its ``block_id``."""
        message = self.find(channel, ts)
        return buttons(message.blocks) if message else []

    async def click(
        self, channel: str, ts: str, action_id: str, *, user: str, signed: bool = True,
        timestamp: float | None = None, retry: int = 0,
    ) -> tuple[int, str]:  # fmt: skip
        """``user`` clicks the button ``action_id`` of message ``ts``: Slack's signed POST to the Request URL.

        Returns the app's HTTP status and body. ``signed`` False sends no
        signature; ``timestamp`` sends another time (a replay); ``retry`` sets
        ``X-Slack-Retry-Num`` as Slack's redelivery does.
        """
        message = self.find(channel, ts)
        if message is None:
            raise KeyError(f"no message {ts} in {channel}")
        button = next((b for b in buttons(message.blocks) if b.get("action_id") == action_id), None)
        if button is None:
            raise KeyError(f"message {ts} shows no button {action_id!r}")
        assert self.request_url is not None and self.url is not None, "no Request URL: is the app's webhook up?"
        payload = block_actions_payload(
            user=user, user_name=self.users.get(user, user.lower()), channel=channel, message_ts=ts,
            message={"type": "message", "ts": ts, "text": message.text or "", "blocks": message.blocks or []},
            button=button, response_url=f"{self.url}/actions/{next(self._response_urls)}",
        )  # fmt: skip
        secret = self.signing_secret if signed else None
        return await deliver(self.request_url, form_body(payload), secret=secret, timestamp=timestamp, retry=retry)

    def paged(self) -> list[str]:
        """Every mention that notified someone, over all accepted posts and edits, in order."""
        return [m for r in self.recorded for m in r.get("mentions") or ()]

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/_recorded", self._recorded)
        app.router.add_post("/_control", self._control)
        app.router.add_post("/actions/{token}", self._response_url)
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

    async def _response_url(self, request: web.Request) -> web.Response:
        """A click's ``response_url``: Slack answers ``ok`` and shows the message (recorded here)."""
        self.responses.append({"path": request.path, "body": json.loads(await request.read() or b"{}")})
        return web.Response(text="ok")

    async def _control(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "click" in data:  # the demo clicks a button over HTTP: {"channel", "ts", "actionId", "user"}
            click = data["click"]
            try:
                status, body = await self.click(str(click["channel"]), str(click["ts"]), str(click["actionId"]),
                                                user=str(click["user"]))  # fmt: skip
            except KeyError as error:
                return web.json_response({"ok": False, "error": str(error)}, status=404)
            return web.json_response({"ok": True, "status": status, "body": body})
        if "rateLimit" in data:
            self.rate_limit(int(data["rateLimit"]), int(data.get("retryAfter", 1)))
        if "failFor" in data:
            self.fail_for(float(data["failFor"]))
        if "refuse" in data:
            rule = data["refuse"]
            self.refuse(str(rule["method"]), str(rule["error"]), containing=str(rule.get("containing", "")))
        try:
            if "archive" in data:
                self.archive(str(data["archive"]))
            if "leave" in data:
                self.leave(str(data["leave"]))
        except KeyError as error:
            return web.json_response({"ok": False, "error": str(error)}, status=404)
        if "editWindow" in data:
            self.edit_window = None if data["editWindow"] is None else float(data["editWindow"])
        return web.json_response({"ok": True})

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _read_body(request)
        record: dict[str, Any] = {"method": request.method, "path": request.path, "body": body}
        self.recorded.append(record)
        response, accepted = self._answer(method, request, body)
        record["status"] = response.status
        answer = json.loads(response.text or "{}")
        if not answer.get("ok"):
            record["error"] = answer.get("error")  # Slack answers most refusals with HTTP 200
        if accepted is not None:
            record["mentions"] = accepted.mentions
            record["unresolved_mentions"] = self._unresolved(body)
        return response

    def _answer(
        self, method: str, request: web.Request, body: dict[str, Any]
    ) -> tuple[web.Response, SlackMessageRecord | None]:
        if self._rate_limited > 0:
            self._rate_limited -= 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(self._retry_after)}
            ), None
        if time.monotonic() < self._fail_until:
            return web.json_response({"ok": False, "error": "fatal_error"}, status=500), None
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error("not_authed" if "Authorization" not in request.headers else "invalid_auth"), None
        if method == "auth.test":
            return self._auth_test(), None
        handlers: dict[str, Callable[[dict[str, Any]], web.Response | SlackMessageRecord]] = {
            "chat.postMessage": self._post, "chat.update": self._update, "usergroups.users.list": self._members,
        }  # fmt: skip
        handler = handlers.get(method)
        if handler is None:
            return _error("unknown_method"), None
        needed = METHOD_SCOPES.get(method)
        if needed is not None and needed not in self.scopes:
            return web.json_response({"ok": False, "error": "missing_scope", "needed": needed,
                                      "provided": ",".join(sorted(self.scopes))}), None  # fmt: skip
        refusal = next((r for r in self.refusals if r.applies(method, body)), None)
        if refusal is not None:
            return _error(refusal.error), None
        outcome = handler({**request.query, **body})  # a GET method's arguments are in the query
        if isinstance(outcome, web.Response):
            return outcome, None
        return _message_response(method, outcome), outcome

    def _auth_test(self) -> web.Response:
        return web.json_response(
            {"ok": True, "url": "https://sim.slack.test/", "team": "sim", "user": "repairbot", "team_id": "T0SIM",
             "user_id": BOT_USER, "bot_id": "B0REPAIRBOT"}
        )

    def _known(self, channel: str) -> Channel:
        found = self._channel(channel)
        if found is None:
            raise KeyError(f"no channel {channel!r}")
        return found

    def _channel(self, name: str | None) -> Channel | None:
        if not name:
            return None
        if name in self.workspace:
            return self.workspace[name]
        return next((c for c in self.workspace.values() if c.name == name.lstrip("#")), None)

    def _post(self, body: dict[str, Any]) -> web.Response | SlackMessageRecord:
        channel = self._channel(body.get("channel"))
        if channel is None or (channel.private and not channel.member):
            return _error("channel_not_found")  # a private channel is invisible to a bot outside it
        if channel.archived:
            return _error("is_archived")
        if not channel.member:
            return _error("not_in_channel")
        if not body.get("text") and not body.get("blocks"):
            return _error("no_text")
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and self.find(channel.id, str(thread_ts)) is None:
            return _error("thread_not_found")
        problem = message_problem(body)
        if problem is not None:
            return _error(problem.error, problem.messages)
        return self._store(channel.id, body.get("text"), parse_blocks(body.get("blocks")), thread_ts, body=body)

    def _members(self, body: dict[str, Any]) -> web.Response:
        """``usergroups.users.list``: the user ids in ``usergroup``, as Slack lists them."""
        group = body.get("usergroup")
        if not group:
            return _error("invalid_arguments")
        if group not in self.user_groups:
            return _error("no_such_subteam")
        return web.json_response({"ok": True, "users": list(self.group_members.get(str(group), []))})

    def _update(self, body: dict[str, Any]) -> web.Response | SlackMessageRecord:
        channel = self.workspace.get(str(body.get("channel")))  # chat.update wants the ID, never a #name
        if channel is None or (channel.private and not channel.member):
            return _error("channel_not_found")
        if channel.archived:
            return _error("is_inactive")
        message = self.find(channel.id, str(body.get("ts")))
        if message is None:
            return _error("message_not_found")
        if message.user != BOT_USER:
            return _error("cant_update_message")
        if self.edit_window is not None and self.clock() - message.posted_at > self.edit_window:
            return _error("edit_window_closed")
        if not body.get("text") and not body.get("blocks"):
            return _error("no_text")
        problem = message_problem(body)
        if problem is not None:
            return _error(problem.error, problem.messages)
        message.history.append({"text": message.text, "blocks": message.blocks})
        message.text = body.get("text")
        message.blocks = parse_blocks(body.get("blocks"))  # chat.update without blocks drops them, as Slack does
        message.mentions = self._notifying(body)
        message.edits += 1
        return message

    def _store(
        self, channel: str, text: str | None, blocks: list[Any] | None, thread_ts: Any,
        *, user: str = BOT_USER, body: dict[str, Any] | None = None,
    ) -> SlackMessageRecord:  # fmt: skip
        serial = next(self._ts)
        ts = f"{1_700_000_000 + serial}.{serial:06d}"
        heard = self._notifying(body or {"text": text})
        message = SlackMessageRecord(channel, ts, text, blocks, thread_ts=thread_ts, user=user,
                                     posted_at=self.clock(), mentions=heard)  # fmt: skip
        self.messages.append(message)
        return message

    def _notifying(self, body: dict[str, Any]) -> list[str]:
        """The parsed mentions that reach someone: ``<!here>``/``<!channel>``, and ids the workspace has."""
        return [m for m in mentions(body) if self._resolves(m)]

    def _unresolved(self, body: dict[str, Any]) -> list[str]:
        return [m for m in mentions(body) if not self._resolves(m)]

    def _resolves(self, mention: str) -> bool:
        if mention in ("<!here>", "<!channel>", "<!everyone>"):
            return True
        if mention.startswith("<!subteam^"):
            return mention.removeprefix("<!subteam^").removesuffix(">") in self.user_groups
        return mention.removeprefix("<@").removesuffix(">") in self.users


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
    try:
        return parse_blocks(body.get("blocks"))
    except ValueError:
        return None


def _message_response(method: str, message: SlackMessageRecord) -> web.Response:
    out: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text or "", "user": message.user}
    if message.thread_ts:
        out["thread_ts"] = message.thread_ts
    answer: dict[str, Any] = {"ok": True, "channel": message.channel, "ts": message.ts, "message": out}
    if method == "chat.update":
        answer["text"] = message.text
    return web.json_response(answer)


def _error(code: str, why: tuple[str, ...] = ()) -> web.Response:
    """Slack answers most errors with HTTP 200 and ``ok: false``; blocks errors list each rule, as Slack does."""
    body: dict[str, Any] = {"ok": False, "error": code}
    if why:
        body["errors"] = list(why)
        body["response_metadata"] = {"messages": [f"[ERROR] {w}" for w in why]}
    return web.json_response(body)
