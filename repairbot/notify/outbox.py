"""The notifications a repair still owes, in order, stored in the GPURepair's ``status.outbox``.

A repair never waits for Slack or Jira: it appends what it owes here and goes
on; a sender drains the outbox when the services answer. The guarantee is
*in order per target, each once*: only the oldest unsent item of a target is
ever due (a reply must not overtake the parent that opened the thread; a
resolve must not overtake its comments), an item is sent until it succeeds
(never skipped), and an item added twice under the same id is stored once.
Slack being down holds back only Slack; Jira goes on.

Pure: no clock, no I/O. The caller passes ``now`` and persists ``to_dicts()``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from repairbot.model import format_time, parse_time

Backoff = Callable[[int], timedelta]
"""Attempts so far → how long to wait before the next one."""


class Target(enum.StrEnum):
    SLACK = "slack"
    JIRA = "jira"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    """The last attempt failed; due again at ``not_before``. Never given up on: order depends on it."""


@dataclass(slots=True)
class Notification:
    """One owed message. ``external`` holds what the service gave back (Slack ``ts``, Jira comment id)."""

    id: str
    target: Target
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    not_before: datetime | None = None
    last_error: str | None = None
    external: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "target": self.target.value,
            "kind": self.kind,
            "payload": dict(self.payload),
            "state": self.state.value,
            "attempts": self.attempts,
        }
        if self.not_before is not None:
            out["notBefore"] = format_time(self.not_before)
        if self.last_error:
            out["lastError"] = self.last_error
        if self.external:
            out["external"] = dict(self.external)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        return cls(
            id=str(data["id"]),
            target=Target(data["target"]),
            kind=str(data["kind"]),
            payload=dict(data.get("payload") or {}),
            state=DeliveryState(data.get("state", DeliveryState.PENDING.value)),
            attempts=int(data.get("attempts", 0)),
            not_before=parse_time(data["notBefore"]) if data.get("notBefore") else None,
            last_error=data.get("lastError"),
            external={str(k): str(v) for k, v in (data.get("external") or {}).items()},
        )


def exponential_backoff(
    *, base: timedelta = timedelta(seconds=5), cap: timedelta = timedelta(minutes=10), jitter: float = 0.2,
    rng: random.Random | None = None,
) -> Backoff:
    """``base * 2**(attempts-1)`` capped at ``cap``, stretched by up to ``jitter`` (a fraction) at random.

    The cap keeps a long outage from pushing the next try hours out (the
    backlog should drain within minutes of Slack coming back); the jitter
    keeps 100 repairs from retrying in lockstep. Pass ``rng`` for determinism.
    """
    chooser = rng or random.Random()

    def backoff(attempts: int) -> timedelta:
        exponent = max(attempts - 1, 0)
        seconds = min(base.total_seconds() * (2 ** min(exponent, 32)), cap.total_seconds())
        return timedelta(seconds=seconds * (1 + jitter * chooser.random()))

    return backoff


class Outbox:
    """An ordered list of :class:`Notification`; append-only apart from state changes."""

    def __init__(self, items: Iterable[Notification] = ()) -> None:
        self._items: list[Notification] = []
        for item in items:
            self._append(item)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Notification]:
        return iter(self._items)

    def get(self, notification_id: str) -> Notification:
        for item in self._items:
            if item.id == notification_id:
                return item
        raise KeyError(f"outbox has no notification {notification_id!r}")

    def add(self, target: Target, kind: str, payload: Mapping[str, Any], *, id: str) -> Notification:
        """Owe one more notification. Idempotent on ``id``: a restarted operator re-adding a step adds nothing.

        Ids should be deterministic (``slack:reply:<history index>``) for that reason.
        """
        for item in self._items:
            if item.id == id:
                return item
        item = Notification(id=id, target=Target(target), kind=kind, payload=dict(payload))
        self._items.append(item)
        return item

    def next_due(self, now: datetime) -> list[Notification]:
        """What to send now: per target, the oldest unsent item, if its backoff has passed. At most one per target."""
        due: list[Notification] = []
        for target in Target:
            head = self.head(target)
            if head is not None and (head.not_before is None or head.not_before <= now):
                due.append(head)
        return due

    def head(self, target: Target) -> Notification | None:
        """The oldest unsent item of ``target``: nothing later for that target may go before it."""
        return next((i for i in self._items if i.target is target and i.state is not DeliveryState.SENT), None)

    def pending(self) -> list[Notification]:
        return [i for i in self._items if i.state is not DeliveryState.SENT]

    def mark_sent(self, notification_id: str, external: Mapping[str, str] | None = None) -> Notification:
        """Record a delivery and what the service called it; refuses to send out of order."""
        item = self._head_item(notification_id)
        item.state = DeliveryState.SENT
        item.attempts += 1
        item.not_before = None
        item.last_error = None
        item.external.update({k: str(v) for k, v in (external or {}).items()})
        return item

    def mark_failed(self, notification_id: str, *, now: datetime, error: str, backoff: Backoff) -> Notification:
        """Record a failed attempt; the item is due again at ``now + backoff(attempts)``."""
        item = self._head_item(notification_id)
        item.state = DeliveryState.FAILED
        item.attempts += 1
        item.last_error = error[:500]
        item.not_before = now + backoff(item.attempts)
        return item

    def external_id(self, target: Target, key: str) -> str | None:
        """The first value of ``external[key]`` among sent items of ``target`` (e.g. the thread's parent ``ts``)."""
        for item in self._items:
            if item.target is target and item.state is DeliveryState.SENT and key in item.external:
                return item.external[key]
        return None

    def to_dicts(self) -> list[dict[str, Any]]:
        return [item.to_dict() for item in self._items]

    @classmethod
    def from_dicts(cls, data: Iterable[Mapping[str, Any]] | None) -> Outbox:
        return cls(Notification.from_dict(d) for d in data or [])

    def _append(self, item: Notification) -> None:
        if any(existing.id == item.id for existing in self._items):
            raise ValueError(f"outbox holds {item.id!r} twice")
        self._items.append(item)

    def _head_item(self, notification_id: str) -> Notification:
        item = self.get(notification_id)
        if item.state is DeliveryState.SENT:
            raise ValueError(f"notification {notification_id!r} was already sent")
        if self.head(item.target) is not item:
            raise ValueError(f"notification {notification_id!r} is not next for {item.target.value}; order is kept")
        return item
