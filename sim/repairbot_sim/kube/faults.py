"""Fault injection: make the emulated API server misbehave on purpose.

RepairBot must survive an API server that throttles (429 + Retry-After),
errors (500/503), is slow, or cuts watch streams — so tests add rules:

* ``fail``: the next ``count`` requests matching method + path regex get
  ``status`` with a proper ``kind: Status`` body;
* ``delay``: the next ``count`` matching requests wait ``seconds`` first;
* ``drop_watch``: matching watch streams are cut after ``after_events``
  events or ``after_seconds`` seconds (``count`` streams, default all).

Rules are used in-process (``server.faults.add(FaultRule(...))``) or over
HTTP: ``POST /_sim/faults`` with the rule as JSON, ``DELETE /_sim/faults``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FaultInjector", "FaultRule"]

_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class FaultRule:
    """One misbehaviour; ``count`` < 0 means "until removed"."""

    action: str = "fail"  # fail | delay | drop_watch
    method: str = "*"
    path: str = ".*"
    count: int = 1
    status: int = 500
    message: str = "injected fault"
    retry_after: int = 1
    seconds: float = 0.0
    after_events: int | None = None
    after_seconds: float | None = None
    id: int = field(default=0)

    def __post_init__(self) -> None:
        if self.action not in ("fail", "delay", "drop_watch"):
            raise ValueError(f"unknown fault action {self.action!r}")
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and bool(self._pattern.search(path))

    def status_body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": _REASONS.get(self.status, "InternalError"),
            "details": {"retryAfterSeconds": self.retry_after} if self.status == 429 else {},
            "code": self.status,
        }

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class FaultInjector:
    """Thread-safe rule list: tests add rules from their own thread."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._next_id = 1
        self.fired: list[tuple[str, str, str]] = []
        """(action, method, path) of every fault that fired, for assertions."""

    def add(self, rule: FaultRule | None = None, **fields: Any) -> FaultRule:
        """Add ``rule`` (or build one from keyword fields); returns it with its id."""
        built = rule or FaultRule(**fields)
        with self._lock:
            built.id = self._next_id
            self._next_id += 1
            self._rules.append(built)
        return built

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, action: str, method: str, path: str) -> FaultRule | None:
        """The first matching rule of ``action``, consuming one of its uses."""
        with self._lock:
            for rule in self._rules:
                if rule.action == action and rule.matches(method, path):
                    if rule.count > 0:
                        rule.count -= 1
                        if rule.count == 0:
                            self._rules.remove(rule)
                    self.fired.append((action, method, path))
                    return rule
        return None
