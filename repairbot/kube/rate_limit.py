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
from collections.abc import Callable
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

    def take(self) -> float:
        """Spend one token, waiting until there is one; returns the seconds waited."""
        with self._lock:  # reserve now, sleep outside the lock: waiters queue in order of arrival
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
        if wait > 0:
            self._sleep(wait)
        return wait


class _LimitedRest:
    """The ApiClient's REST client with a token taken before each request; everything else passes through."""

    def __init__(self, rest: Any, bucket: TokenBucket) -> None:
        self._rest = rest
        self._bucket = bucket

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._bucket.take()
        return self._rest.request(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rest, name)


def rate_limited(api: client.ApiClient, qps: float = DEFAULT_QPS, burst: int = DEFAULT_BURST) -> client.ApiClient:
    """``api`` with every request it sends taken from one :class:`TokenBucket` (shared by its threads)."""
    api.rest_client = cast(Any, _LimitedRest(api.rest_client, TokenBucket(qps, burst)))
    return api
