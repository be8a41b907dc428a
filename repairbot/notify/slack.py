"""One Slack thread per repair: a parent message kept current, a reply per step, one message per storm.

Built on slack-sdk's ``WebClient`` with its retry handlers: 429s are retried
after Slack's own ``Retry-After`` (``RateLimitErrorRetryHandler``), not blind
backoff, because ``chat.postMessage`` allows about one message per second per
channel and a storm of repairs hits that. Connection errors and 5xx are
retried a bounded number of times. Anything still failing is raised as a
:class:`NotifyError` carrying Slack's error code; the caller's outbox keeps
the message and tries again later — nothing is swallowed here.

The thread's coordinates (channel *ID*, parent ``ts``) are returned to the
caller to store in the GPURepair status: ``chat.update`` needs the ID, not the
``#name``, and replies always thread on the parent's ``ts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from repairbot.catalog.xid import XidCatalog
from repairbot.model import HistoryEntry
from repairbot.notify.errors import NotifyError, retry_after_seconds, slack_retryable
from repairbot.notify.messages import StormView
from repairbot.notify.slack_messages import SlackMessage, plain_form, slack_parent, slack_reply, slack_storm
from repairbot.notify.view import RepairView
from repairbot.policy.oncall import on_call_mention

PLAIN_TEXT_LIMIT = 3000
"""The reduced form of a refused message: its fallback text alone, no blocks, cut to this length."""


class SlackThread(NamedTuple):
    """Where a repair's thread lives: the channel ID (not ``#name``) and the parent message's ``ts``."""

    channel: str
    ts: str


class SlackNotifier:
    """Posts a repair's thread to ``channel``; ``on_call`` is paged on failures and quarantines.

    ``on_call`` goes through :func:`~repairbot.policy.oncall.on_call_mention`: a bare id becomes the mention
    syntax, and a plain ``@handle`` (which Slack would deliver as text, paging nobody) is a ValueError.
    """

    def __init__(
        self,
        token: str,
        channel: str,
        *,
        base_url: str | None = None,
        on_call: str | None = None,
        catalog: XidCatalog | None = None,
        rate_limit_retries: int = 3,
        server_error_retries: int = 2,
        timeout: float = 15,
    ) -> None:
        kwargs: dict[str, Any] = {"base_url": base_url} if base_url else {}
        self.channel = channel
        self.on_call = on_call_mention(on_call) if on_call else None  # never plain text that pages nobody
        self._catalog = catalog
        self.client = WebClient(
            token=token,
            timeout=int(timeout),
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=2),
                RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
                ServerErrorRetryHandler(max_retry_count=server_error_retries),
            ],
            **kwargs,
        )

    def open_thread(self, view: RepairView, *, plain: bool = False) -> SlackThread:
        """Post the parent message; store the returned thread in the GPURepair status before anything else.

        ``plain``: the reduced form (text only), for when Slack refused the blocks.
        """
        message = _form(slack_parent(view, catalog=self._catalog, on_call=self.on_call), plain)
        data = self._call("chat.postMessage", channel=self.channel, text=message.text, blocks=message.blocks_list())
        return SlackThread(channel=str(data["channel"]), ts=str(data["ts"]))

    def update_parent(self, channel: str, ts: str, view: RepairView, *, plain: bool = False) -> None:
        """Rewrite the parent with the repair's current state. Blocks are always sent: text alone would drop them."""
        message = _form(slack_parent(view, catalog=self._catalog, on_call=self.on_call), plain)
        self._call("chat.update", channel=channel, ts=ts, text=message.text, blocks=message.blocks_list())

    def reply(
        self, channel: str, ts: str, text: str | None = None, *, blocks: Sequence[dict[str, Any]] | None = None
    ) -> str:
        """A reply in the thread whose *parent* is ``ts`` (never a reply's ts). Returns the reply's own ts."""
        if not text and not blocks:
            raise ValueError("a Slack reply needs text or blocks")
        data = self._call(
            "chat.postMessage",
            channel=channel,
            thread_ts=ts,
            text=text,
            blocks=list(blocks) if blocks else None,
            reply_broadcast=False,
        )
        return str(data["ts"])

    def reply_step(self, thread: SlackThread, view: RepairView, entry: HistoryEntry, *, plain: bool = False) -> str:
        """The thread reply for one history step, in the words of :func:`slack_reply`."""
        message = _form(slack_reply(view, entry, on_call=self.on_call), plain)
        return self.reply(thread.channel, thread.ts, message.text, blocks=message.blocks_list())

    def post_storm(self, storm: StormView, *, plain: bool = False) -> SlackThread:
        """One message for a whole storm (not one per node); its members' steps thread on it."""
        message = _form(slack_storm(storm, on_call=self.on_call), plain)
        data = self._call("chat.postMessage", channel=self.channel, text=message.text, blocks=message.blocks_list())
        return SlackThread(channel=str(data["channel"]), ts=str(data["ts"]))

    def update_storm(self, channel: str, ts: str, storm: StormView, *, plain: bool = False) -> None:
        """Rewrite the storm's message as members join and end: the count, the phases, the (bounded) node list."""
        message = _form(slack_storm(storm, on_call=self.on_call), plain)
        self._call("chat.update", channel=channel, ts=ts, text=message.text, blocks=message.blocks_list())

    def check_auth(self) -> str:
        """``auth.test``: the bot's user id, so a bad token shows at startup rather than at the first fault."""
        return str(self._call("auth.test").get("user_id", ""))

    def _call(self, method: str, **arguments: Any) -> dict[str, Any]:
        """Call a Web API method; only non-None arguments go on the wire (as the SDK sends them anyway)."""
        body = {k: v for k, v in arguments.items() if v is not None}
        try:
            response = self.client.api_call(method, json=body)
        except SlackApiError as error:
            status = int(error.response.status_code)
            code = str(error.response.get("error") or f"http-{status}")
            if status == 429:
                code = "ratelimited"
            headers = {str(k).lower(): v for k, v in (error.response.headers or {}).items()}
            retry_after = retry_after_seconds(_header(headers.get("retry-after")))
            raise NotifyError(
                "slack", method, code, f"channel {body.get('channel')}",
                retryable=slack_retryable(code, status), retry_after=retry_after,
            ) from error  # fmt: skip
        except (SlackClientError, OSError) as error:
            raise NotifyError("slack", method, "connection-error", str(error)) from error
        return dict(response.data) if isinstance(response.data, dict) else {}


def _form(message: SlackMessage, plain: bool) -> SlackMessage:
    return plain_form(message, PLAIN_TEXT_LIMIT) if plain else message


def _header(value: Any) -> str | None:
    """A header as slack-sdk hands it over: a string, or a list of strings."""
    if isinstance(value, list | tuple):
        return str(value[0]) if value else None
    return str(value) if value is not None else None
