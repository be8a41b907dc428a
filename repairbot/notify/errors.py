"""The one error a notifier raises, so the outbox can decide: retry later, or tell a human the config is wrong."""

from __future__ import annotations


class NotifyError(Exception):
    """A notification was not delivered.

    ``code`` is the service's own word (Slack's ``error`` such as ``ratelimited``
    or ``channel_not_found``, Jira's HTTP status) so an SRE can search for it.
    ``retryable`` is False for errors a retry cannot fix (bad token, unknown
    channel, missing transition): the outbox should surface those, not spin.
    """

    def __init__(self, target: str, operation: str, code: str, detail: str = "", *, retryable: bool = True) -> None:
        self.target = target
        self.operation = operation
        self.code = code
        self.detail = detail
        self.retryable = retryable
        text = f"{target} {operation} failed: {code}"
        super().__init__(f"{text} ({detail})" if detail else text)
