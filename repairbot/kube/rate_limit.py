"""A client-side rate limit for one ApiClient: a token bucket, as client-go's ``QPS`` and ``Burst``.

A burst of a thousand repairs must not become a thousand requests at once: a
real API server sheds that load with 429s (API Priority and Fairness), and the
retries would make it worse. Every request of the operator's client takes a
token first; ``burst`` tokens may be spent at once, then ``qps`` a second.
Defaults are client-go's controller defaults for a busy controller (50/100).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from kubernetes import client

DEFAULT_QPS = 50.0
DEFAULT_BURST = 100


class TokenBucket:
    """``burst`` tokens, refilled at ``qps`` a second; :meth:`take` waits for one (thread-safe, fair enough)."""

    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        if qps <= 0 or burst < 1:
            raise ValueError(f"rate limit needs qps > 0 and burst >= 1 (got qps={qps}, burst={burst})")
        self.qps, self.burst = float(qps), int(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self, count: int = 1) -> float:
        """Spend ``count`` tokens, waiting until there are; returns the seconds waited."""
        with self._lock:  # reserve now, sleep outside the lock: waiters queue in order of arrival
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            self._tokens -= float(count)
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
        if wait > 0:
            self._sleep(wait)
        return wait

    def give_back(self, count: int) -> None:
        """Return tokens taken and not spent (a prepaid step that sent fewer requests than it paid for)."""
        with self._lock:
            self._tokens = min(float(self.burst), self._tokens + float(count))


class _Credit(threading.local):
    """Tokens one thread has prepaid on one bucket (:func:`prepaid`)."""

    bucket: TokenBucket | None = None
    tokens: int = 0


_credit = _Credit()


class _LimitedRest:
    """The ApiClient's REST client with a token taken before each request; everything else passes through."""

    def __init__(self, rest: Any, bucket: TokenBucket) -> None:
        self._rest = rest
        self._bucket = bucket

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if _credit.bucket is self._bucket and _credit.tokens > 0:
            _credit.tokens -= 1  # paid for before the step read what it decides on
        else:
            self._bucket.take()
        return self._rest.request(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rest, name)


def rate_limited(api: client.ApiClient, qps: float = DEFAULT_QPS, burst: int = DEFAULT_BURST) -> client.ApiClient:
    """``api`` with every request it sends taken from one :class:`TokenBucket` (shared by its threads)."""
    api.rest_client = cast(Any, _LimitedRest(api.rest_client, TokenBucket(qps, burst)))
    return api


@contextmanager
def prepaid(api: client.ApiClient, count: int) -> Iterator[None]:
    """Wait for ``count`` tokens now; this thread's next ``count`` requests through ``api`` then go at once.

    A step that reads the watch cache, decides and writes should wait for the rate limit *before* it
    reads, not between its read and its write: a decision held seconds behind a busy limiter is decided on
    a repair that other writers (intake's next findings) have meanwhile changed, and its fenced write comes
    back 409. Paid first, the read is fresh and the writes follow it within round trips. Tokens not spent
    are given back. Without a limit on ``api`` this does nothing.
    """
    rest = api.rest_client
    if not isinstance(rest, _LimitedRest) or count <= 0 or _credit.bucket is not None:
        yield  # unlimited, nothing to pay, or already inside a prepaid step (its credit serves)
        return
    bucket = rest._bucket
    bucket.take(count)
    _credit.bucket, _credit.tokens = bucket, count
    try:
        yield
    finally:
        left, _credit.bucket, _credit.tokens = _credit.tokens, None, 0
        if left:
            bucket.give_back(left)
