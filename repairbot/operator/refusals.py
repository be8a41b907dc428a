"""What a delivery lane does with one repair: send, and when a service refuses a message for good, say so.

:func:`send_once` tries a message, and once more in its plain-text form when
Slack refused the form (blocks, length); transient errors go up to the lane,
which backs off. :class:`RepairLane` moves the repair's cursor and records a
refusal: held first in the cursor (``deliveries.<target>.unrecorded``, which
only the dispatcher writes), then appended to the history fenced on the
version just read, and let go once the history surely keeps it
(:func:`~repairbot.operator.delivery.settle_refusals`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from kubernetes.client.rest import ApiException

from repairbot.logs import step_fields
from repairbot.notify import NotifyError
from repairbot.operator.delivery import MAX_UNRECORDED, delivery_cursor, refusal_entry, settle_refusals
from repairbot.operator.metrics import OperatorMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class StatusPatch(Protocol):
    """Merge-patch a repair's status (fenced on ``resource_version`` when given); returns the written object."""

    def __call__(
        self, name: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> dict[str, Any]: ...


def with_plain(call: Callable[..., T]) -> Callable[[bool], T]:
    return lambda plain: call(plain=plain)


def plainless(call: Callable[[], T]) -> Callable[[bool], T]:
    """Jira has no reduced form worth trying: its refusals are of the content, not of the layout."""
    return lambda _plain: call()


@dataclass
class Sent:
    """What one send came to: its result, or the refusal it met (and whether a plain-text form got through)."""

    result: Any = None
    refusal: NotifyError | None = None
    reduced: bool = False


class RepairLane:
    """One repair's delivery to one target: moves the cursor and records refusals, always on the newest version."""

    def __init__(self, patch: StatusPatch, target: str, obj: dict[str, Any], metrics: OperatorMetrics | None) -> None:
        self._patch, self.target, self.obj, self._metrics = patch, target, obj, metrics
        self.name = str(obj["metadata"]["name"])

    def patch(self, status: Mapping[str, Any]) -> None:
        self.obj = self._patch(self.name, status)

    def move(self, **cursor: Any) -> None:
        self.patch({"deliveries": {self.target: cursor}})

    def refused(self, refusal: NotifyError, *, what: str, reduced: bool, **cursor: Any) -> None:
        """Hold the refusal line in the cursor (ours alone, never overwritten), move it past the message, then
        write the line into the history."""
        entry = refusal_entry(refusal, what=what, reduced=reduced, now=datetime.now(UTC))
        held = list(delivery_cursor(self.obj.get("status") or {}, self.target).get("unrecorded") or [])
        self.move(**cursor, unrecorded=[*held, entry][-MAX_UNRECORDED:])
        log.warning("notification refused repair=%s target=%s code=%s what=%r reduced=%s",
                    self.name, self.target, refusal.code, what, reduced,
                    extra=step_fields(repair=self.name, target=self.target, code=refusal.code,
                                      reduced=reduced))  # fmt: skip
        if self._metrics is not None:
            self._metrics.count_notification_refused(self.target, refusal.code)
        self.record_refusals()

    def record_refusals(self) -> None:
        """Append held refusal lines the history lacks, fenced on the version just read; let go of the safe ones."""
        status = self.obj.get("status") or {}
        held = list(delivery_cursor(status, self.target).get("unrecorded") or [])
        if not held:
            return
        history = list(status.get("history") or [])
        missing, keep = settle_refusals(history, held, status.get("phase"))
        if not missing and len(keep) == len(held):
            return
        patch: dict[str, Any] = {"deliveries": {self.target: {"unrecorded": keep}}}
        version = None
        if missing:
            patch["history"] = [*history, *missing]
            version = str((self.obj.get("metadata") or {}).get("resourceVersion") or "") or None
        try:
            self.obj = self._patch(self.name, patch, resource_version=version)
        except ApiException as error:
            if error.status != 409:
                raise
            # The reconciler wrote meanwhile: the lines stay held and go in on a later pass; delivery goes on.
            log.info("refusal lines wait for the next pass repair=%s target=%s (conflict)", self.name, self.target)


def send_once(send: Callable[[bool], T]) -> Sent:
    """Send once; a permanent refusal of the message's form is tried once more as plain text.

    Transient errors propagate (the lane backs off); permanent ones come back as the refusal to record.
    """
    try:
        return Sent(send(False))
    except NotifyError as error:
        if error.retryable:
            raise
        if not error.reducible:
            return Sent(refusal=error)
        try:
            return Sent(send(True), error, reduced=True)
        except NotifyError as again:
            if again.retryable:
                raise
            return Sent(refusal=error)
