"""The one error a notifier raises, and how the services' own error words sort into "wait" and "give up".

The outbox (the operator's dispatcher) must tell two kinds of failure apart:
a *transient* one (Slack rate-limits, Jira is restarting, the network blinked)
keeps the message and backs off, a *permanent* one (Slack calls the blocks
invalid, Jira answers 400, the workflow has no such transition) would fail
the same way forever, so it is recorded and the lane moves on. The sorting is
done here, once, in the services' own vocabulary, so the words an SRE sees in
the history and the metric are the ones they can search the services' docs for.
"""

from __future__ import annotations

import re

SLACK_TRANSIENT = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
     "team_added_to_org", "connection-error"}
)
"""Slack ``error`` codes that a later retry can fix (Slack's "common errors": its own transient failures)."""

SLACK_REDUCIBLE = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long"})
"""Refusals of a message's *form*: the same words as plain, shorter text are worth one more try."""

_CODE_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
MAX_CODE_LENGTH = 40
"""Error codes label a metric: bounded and plain, whatever a service answers."""


def slack_retryable(code: str, http_status: int | None = None) -> bool:
    """Is a Slack failure worth retrying? 429 and 5xx are, as are Slack's transient codes; the rest are not.

    Slack answers most refusals with HTTP 200 and ``ok: false``; an unknown code
    is a refusal of this message (``invalid_*``, ``not_in_channel``, …), so it is
    recorded and skipped rather than retried forever.
    """
    if http_status is not None and (http_status == 429 or http_status >= 500):
        return True
    return code in SLACK_TRANSIENT


def jira_retryable(http_status: int | None) -> bool:
    """Is a Jira failure worth retrying? No answer, 409 (edit conflict), 429 and 5xx are; other 4xx are not."""
    return http_status is None or http_status in (409, 429) or http_status >= 500


def metric_code(code: str) -> str:
    """``code`` fit for a metric label: lower case, ``[a-z0-9_.-]``, at most 40 characters."""
    return _CODE_UNSAFE.sub("_", code.lower())[:MAX_CODE_LENGTH] or "unknown"


class NotifyError(Exception):
    """A notification was not delivered.

    ``code`` is the service's own word (Slack's ``error`` such as ``ratelimited``
    or ``channel_not_found``, Jira's HTTP status) so an SRE can search for it.
    ``retryable`` is False for errors a retry cannot fix (bad token, unknown
    channel, missing transition): the outbox records those and moves on.
    ``retry_after`` is the service's own ``Retry-After`` (seconds), when it sent one.
    """

    def __init__(
        self,
        target: str,
        operation: str,
        code: str,
        detail: str = "",
        *,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        self.target = target
        self.operation = operation
        self.code = code
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
        text = f"{target} {operation} failed: {code}"
        super().__init__(f"{text} ({detail})" if detail else text)

    @property
    def reducible(self) -> bool:
        """Did the service refuse the message's form (blocks, length), so a plain-text form may pass?"""
        return self.target == "slack" and self.code in SLACK_REDUCIBLE


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the services send delta-seconds); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
