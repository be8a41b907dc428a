"""Every step of every repair as a Grafana annotation, once, in order, on a lane of its own.

The GPURepair's history is the outbox, as for Slack and Jira
(:mod:`repairbot.operator.dispatcher`): this lane keeps its cursor in
``status.deliveries.grafana`` (``{"sent": n}``) and moves it only after Grafana
accepted the annotation, so an outage delays annotations and loses none; the
history's folding moves the cursor with the history like the others'.
Exactly once across restarts: the one annotation a crash could have posted
without its cursor write is the first one a pass sends, so that one is looked
up first (same tags, time and text) and not posted twice.

A transient failure (no connection, 429, 5xx, after the client's retries)
stops the pass and backs the lane off, as does a refusal of the token (401,
403: every step would meet it). A refusal of one step (400) would fail
forever, so that step is skipped, the cursor moves on, and the refusal is
counted (``repairbot_notifications_refused{target="grafana"}``). Either way
the error is written on the cursor (``deliveries.grafana.error``), on the
GPURepair where ``kubectl get -o yaml`` shows it, and logged; the next
success clears it. A repair that ended over an hour before the lane first
saw it (Grafana just turned on) is marked sent without a backfill.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.bounds import truncate
from repairbot.kube.client import as_object, describe_error
from repairbot.kube.repairs import read_repair
from repairbot.model import GROUP, PLURAL, TERMINAL_PHASES, VERSION, parse_time
from repairbot.notify import NotifyError
from repairbot.notify.backoff import LaneBackoff
from repairbot.notify.grafana import GrafanaAnnotations, annotation_for
from repairbot.operator.background import BackgroundLoop
from repairbot.operator.delivery import delivery_cursor, steps_owed
from repairbot.operator.metrics import OperatorMetrics
from repairbot.policy import GrafanaPolicy

log = logging.getLogger(__name__)

TARGET = "grafana"
LANE_ERRORS = frozenset({"401", "403"})
"""Refusals of RepairBot's token, not of a step: every step would meet them, so the lane waits (error on the
cursor) instead of skipping the fleet's annotations until someone fixes the Secret."""


@dataclass
class AnnotationDispatcher:
    api: client.ApiClient
    repairs: Callable[[], list[Mapping[str, Any]]]
    grafana: GrafanaAnnotations
    policy: GrafanaPolicy
    interval: float = 1.0
    metrics: OperatorMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    backoff: LaneBackoff = field(default_factory=lambda: LaneBackoff(base=1.0, cap=60.0))
    _lane: BackgroundLoop | None = None

    def start(self) -> None:
        self._lane = BackgroundLoop("notify-grafana", self.deliver_due, lambda: self.interval,
                                    failed="annotation pass failed; retrying", logger=log)  # fmt: skip
        self._lane.start()

    def stop(self) -> None:
        if self._lane is not None:
            self._lane.stop()
            self._lane = None
        self.grafana.close()

    def deliver_due(self) -> int:
        """One pass over every repair that owes Grafana an annotation; how many were posted."""
        if not self.backoff.ready(self.clock()):
            return 0
        sent = 0
        try:
            for cached in self.repairs():
                if not _owed(cached):
                    continue
                name = str(cached["metadata"]["name"])
                try:
                    obj = read_repair(client.CustomObjectsApi(self.api), name)
                    if obj is not None:
                        sent += self._deliver(obj)
                except ApiException as error:
                    log.warning("annotation delayed repair=%s error=%s", name, describe_error(error))
        except NotifyError as error:
            delay = self.backoff.failed(self.clock(), error.retry_after)
            log.warning("annotations to grafana paused for %.1fs error=%s", delay, error)
            if self.metrics is not None:
                self.metrics.count_notification_error(TARGET, error)
        else:
            self.backoff.succeeded()
        if self.metrics is not None:
            self.metrics.notifications_pending.labels(TARGET).set(steps_owed(self.repairs(), TARGET))
        return sent

    def _deliver(self, obj: dict[str, Any]) -> int:
        status = obj.get("status") or {}
        history = list(status.get("history") or [])
        cursor = delivery_cursor(status, TARGET)
        start = int(cursor.get("sent") or 0)
        name = str(obj["metadata"]["name"])
        if "sent" not in cursor and _long_over(status, self.wall()):
            self._move(name, len(history), error=None)  # ended before Grafana was configured: no backfill flood
            return 0
        node = str((obj.get("spec") or {}).get("nodeName", ""))
        sent = 0
        for index in range(start, len(history)):
            annotation = annotation_for(
                history, index, node=node, repair=name, phase=status.get("phase"),
                extra_tags=self.policy.tags, dashboard_uid=self.policy.dashboard_uid,
            )  # fmt: skip
            try:
                if not (index == start and self.grafana.exists(annotation)):
                    self.grafana.post(annotation)
                    sent += 1
            except NotifyError as error:
                if error.retryable or error.code in LANE_ERRORS:
                    self._move(name, index, error=str(error))
                    raise
                log.warning("annotation refused repair=%s step=%r code=%s error=%s", name,
                            history[index].get("step"), error.code, error)  # fmt: skip
                if self.metrics is not None:
                    self.metrics.count_notification_refused(TARGET, error.code)
                refused = int(cursor.get("refused") or 0) + 1
                cursor = {**cursor, "refused": refused}
                self._move(name, index + 1, error=None, refused=refused,
                           last_refusal=f"step {index} ({history[index].get('step')}): {error}")  # fmt: skip
                continue
            self._move(name, index + 1, error=None)
        return sent

    def _move(
        self, name: str, sent: int, *, error: str | None, refused: int | None = None, last_refusal: str | None = None
    ) -> None:
        """Move the cursor; ``error`` is the transient failure now in the way (None clears it), ``refused`` counts
        the steps Grafana refused for good (kept, with the last refusal's words)."""
        cursor: dict[str, Any] = {"sent": sent, "error": truncate(error) if error else None}
        if refused is not None:
            cursor |= {"refused": refused, "lastRefusal": truncate(last_refusal or "")}
        body = {"status": {"deliveries": {TARGET: cursor}}}
        as_object(client.CustomObjectsApi(self.api).patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name,
                                                                                        body))  # fmt: skip


BACKFILL_WINDOW = timedelta(hours=1)
"""A repair that ended longer ago than this before the lane first saw it is not annotated after the fact: turning
Grafana on for a fleet must not post every retained repair's whole story at once."""


def _long_over(status: Mapping[str, Any], now: datetime) -> bool:
    resolved = status.get("resolvedAt")
    ended = status.get("phase") in {p.value for p in TERMINAL_PHASES}
    return bool(ended and resolved and now - parse_time(str(resolved)) > BACKFILL_WINDOW)


def _owed(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    return int(delivery_cursor(status, TARGET).get("sent") or 0) < len(status.get("history") or [])
