"""How long a delivery lane waits after a transient failure: exponential, capped, and the service's word first.

One lane per target (Slack, Jira): a rate limit or an outage is the service's,
not one message's, so the whole lane waits rather than hammering it with every
repair's message in turn. Pure: the caller passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LaneBackoff:
    """``base``·2ⁿ seconds after the n-th failure in a row, at most ``cap``; a ``Retry-After`` wins when longer."""

    base: float = 1.0
    cap: float = 60.0
    failures: int = 0
    not_before: float = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.not_before

    def failed(self, now: float, retry_after: float | None = None) -> float:
        """Note one more failure; returns the delay until the next try."""
        self.failures += 1
        delay = min(self.cap, self.base * 2 ** (self.failures - 1))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap * 10))
        self.not_before = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.not_before = 0, 0.0
