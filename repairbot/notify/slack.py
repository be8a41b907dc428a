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

from repairbot.model import HistoryEntry
from repairbot.notify.errors import NotifyError
from repairbot.notify.messages import SlackMessage, slack_parent, slack_reply, slack_storm
from repairbot.notify.view import RepairView
from repairbot.xid import XidCatalog

NOT_RETRYABLE = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "channel_not_found", "not_in_channel",
     "is_archived", "missing_scope", "invalid_blocks", "msg_too_long", "no_text", "message_not_found",
     "cant_update_message", "thread_not_found"}
)
"""Slack errors a retry cannot fix: the outbox should surface them to a human instead of spinning."""


class SlackThread(NamedTuple):
    """Where a repair's thread lives: the channel ID (not ``#name``) and the parent message's ``ts``."""

    channel: str
    ts: str


class SlackNotifier:
    """Posts a repair's thread to ``channel``; ``on_call`` is pinged on failures and quarantines."""

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
        self.on_call = on_call
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

    def open_thread(self, view: RepairView) -> SlackThread:
        """Post the parent message; store the returned thread in the GPURepair status before anything else."""
        message = slack_parent(view, catalog=self._catalog, on_call=self.on_call)
        data = self._call("chat.postMessage", channel=self.channel, text=message.text, blocks=message.blocks_list())
        return SlackThread(channel=str(data["channel"]), ts=str(data["ts"]))

    def update_parent(self, channel: str, ts: str, view: RepairView) -> None:
        """Rewrite the parent with the repair's current state. Blocks are always sent: text alone would drop them."""
        message = slack_parent(view, catalog=self._catalog, on_call=self.on_call)
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

    def reply_step(self, thread: SlackThread, view: RepairView, entry: HistoryEntry) -> str:
        """The thread reply for one history step, in the words of :func:`slack_reply`."""
        message = slack_reply(view, entry, on_call=self.on_call)
        return self.reply(thread.channel, thread.ts, message.text, blocks=message.blocks_list())

    def post_storm(
        self, nodes: Sequence[str], *, reason: str, detail: str = "", jira_key: str | None = None
    ) -> SlackThread:
        """One message for a whole storm (not one per node); later storm news can thread on it."""
        message: SlackMessage = slack_storm(nodes, reason=reason, detail=detail, on_call=self.on_call,
                                            jira_key=jira_key)
        data = self._call("chat.postMessage", channel=self.channel, text=message.text, blocks=message.blocks_list())
        return SlackThread(channel=str(data["channel"]), ts=str(data["ts"]))

    def check_auth(self) -> str:
        """``auth.test``: the bot's user id, so a bad token shows at startup rather than at the first fault."""
        return str(self._call("auth.test").get("user_id", ""))

    def _call(self, method: str, **arguments: Any) -> dict[str, Any]:
        """Call a Web API method; only non-None arguments go on the wire (as the SDK sends them anyway)."""
        body = {k: v for k, v in arguments.items() if v is not None}
        try:
            response = self.client.api_call(method, json=body)
        except SlackApiError as error:
            code = str(error.response.get("error") or f"http-{error.response.status_code}")
            if error.response.status_code == 429:
                code = "ratelimited"
            retryable = code not in NOT_RETRYABLE
            raise NotifyError("slack", method, code, f"channel {body.get('channel')}", retryable=retryable) from error
        except (SlackClientError, OSError) as error:
            raise NotifyError("slack", method, "connection-error", str(error)) from error
        return dict(response.data) if isinstance(response.data, dict) else {}
