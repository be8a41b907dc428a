"""Grafana annotations: every step of a repair on the fleet dashboard, in the history's own words.

:func:`annotation_for` (pure) turns one history entry into one annotation:
tags ``repairbot``, the node, the phase the step belongs to and
``repair:<name>`` (so one repair's marks can be queried), the entry's message
as the text, and — for a step's ``done`` line — a region from its ``started``
line, so the dashboard shows how long the drain or the reboot took.
:class:`GrafanaAnnotations` posts them through Grafana's HTTP API
(``POST /api/annotations`` with ``time``/``timeEnd`` in epoch milliseconds,
``tags``, ``text``, optional ``dashboardUID``; bearer-token auth with a
service-account token) and finds one again (``GET /api/annotations``) so a
restart never posts a step twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from tenacity.wait import wait_base

from repairbot.model import parse_time
from repairbot.notify.errors import NotifyError
from repairbot.notify.http_api import JsonApi

TARGET = "grafana"
TAG = "repairbot"
MAX_TEXT = 2000
"""Characters of an annotation's text: a history message is already bounded; this keeps a region's text short."""

STEP_PHASES = {
    "queue": "Pending",
    "admit": "Cordoned",
    "cordon": "Cordoned",
    "defer": "Cordoned",
    "start-drain": "Draining",
    "continue-drain": "Draining",
    "drain": "Draining",
    "drain-timed-out": "Draining",
    "request": "Remediating",
    "hold": "Remediating",
    "power-cycle": "Remediating",
    "validate": "Validating",
    "return-to-service": "Succeeded",
    "quarantine": "Quarantined",
    "escalate": "Quarantined",
    "block": "Blocked",
    "cancel": "Cancelled",
}
"""The phase a history step belongs to; a step not named here (a rung's outcome, a note) takes the repair's phase."""


@dataclass(frozen=True, slots=True)
class Annotation:
    """One annotation as Grafana's API takes it."""

    time_ms: int
    tags: tuple[str, ...]
    text: str
    time_end_ms: int | None = None
    dashboard_uid: str | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"time": self.time_ms, "tags": list(self.tags), "text": self.text}
        if self.time_end_ms is not None:
            body["timeEnd"] = self.time_end_ms
        if self.dashboard_uid:
            body["dashboardUID"] = self.dashboard_uid
        return body


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def annotation_for(
    history: Sequence[Mapping[str, Any]],
    index: int,
    *,
    node: str,
    repair: str,
    phase: str | None,
    extra_tags: Sequence[str] = (),
    dashboard_uid: str | None = None,
) -> Annotation:
    """History entry ``index`` of repair ``repair`` as an annotation (see the module's docstring)."""
    entry = history[index]
    step, outcome = str(entry.get("step", "")), str(entry.get("outcome", ""))
    at = epoch_ms(parse_time(str(entry["at"])))
    step_phase = STEP_PHASES.get(step) or phase or "Pending"
    text = str(entry.get("message", "")) or f"{step} {outcome}"
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"
    start = _started(history, index) if outcome != "started" else None
    tags = (TAG, node, step_phase, f"repair:{repair}", *(t for t in extra_tags if t not in (TAG, node, step_phase)))
    if start is not None and start < at:
        return Annotation(start, tags, text, time_end_ms=at, dashboard_uid=dashboard_uid)
    return Annotation(at, tags, text, dashboard_uid=dashboard_uid)


def _started(history: Sequence[Mapping[str, Any]], index: int) -> int | None:
    """When the ``started`` line of this ``done`` line's step was written, if it is just before it."""
    step = history[index].get("step")
    for earlier in reversed(history[:index]):
        if earlier.get("step") == step:
            return epoch_ms(parse_time(str(earlier["at"]))) if earlier.get("outcome") == "started" else None
    return None


class GrafanaAnnotations:
    """Grafana's annotation API with a bearer token; every failure is a :class:`NotifyError`."""

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 10.0, attempts: int = 3, wait: wait_base | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._api = JsonApi(TARGET, base_url, headers=headers, timeout=timeout, attempts=attempts, wait=wait)

    def close(self) -> None:
        self._api.close()

    def post(self, annotation: Annotation) -> int:
        """Add ``annotation``; its id."""
        answer = self._api.request("POST", "/api/annotations", "add-annotation", body=annotation.to_api())
        if not isinstance(answer, Mapping) or "id" not in answer:
            raise NotifyError(TARGET, "add-annotation", "bad-answer", f"no id in {str(answer)[:200]}")
        return int(answer["id"])

    def exists(self, annotation: Annotation) -> bool:
        """Is an annotation with these tags, this time and this text there already (posted before a crash)?"""
        until = annotation.time_end_ms or annotation.time_ms
        fields = [("from", annotation.time_ms), ("to", until), ("type", "annotation"), ("limit", 100)]
        query = urlencode([*fields, *(("tags", t) for t in annotation.tags)])
        answer = self._api.request("GET", f"/api/annotations?{query}", "find-annotation")
        return any(
            isinstance(item, Mapping) and item.get("text") == annotation.text and item.get("time") == annotation.time_ms
            for item in answer or ()
        )
