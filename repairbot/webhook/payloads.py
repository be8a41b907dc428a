"""Grafana (webhook payload v1) and Alertmanager (version 4) bodies → typed :class:`Alert` s.

Both senders post the same outline — a group notification with ``alerts[]``,
each alert a label set with a status and times — so one parser serves both,
with the few fields that differ read where present. The parser is strict
about shape and lax about extras: a body that is not what the sender
documents (someone configured a custom Grafana payload template, or posted
garbage) is refused as a whole with a :class:`PayloadError` that names the
exact field, before anything is applied; unknown keys are ignored so a newer
Grafana does not break intake.

Pure: no I/O, and on any JSON value it either returns or raises
:class:`PayloadError` — never anything else (a hypothesis test holds it to that).
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Alert",
    "AlertStatus",
    "Notification",
    "PayloadError",
    "SenderKind",
    "label_fingerprint",
    "parse_body",
    "parse_notification",
]

# Go's zero time: what both senders put in ``endsAt`` while an alert fires.
_ZERO_TIME_PREFIX = "0001-01-01"
_FRACTION = re.compile(r"\.(\d+)")
_EXPECTED_VERSION = {"grafana": "1", "alertmanager": "4"}


class PayloadError(ValueError):
    """The body is not a notification we understand; ``str()`` is the reason the sender gets in the 400."""


class SenderKind(enum.StrEnum):
    """Which webhook dialect a body is in (the endpoint it was posted to)."""

    GRAFANA = "grafana"
    ALERTMANAGER = "alertmanager"


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of a group notification, in the senders' own words.

    ``starts_at_raw`` is kept verbatim: with ``fingerprint`` it is the identity
    of one firing (REFERENCE §6.2 — a re-fire of the same label set has a new
    ``startsAt``), and comparing the sender's own string avoids any parsing
    round-trip making two deliveries of one firing look different.
    """

    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    fingerprint: str
    starts_at: datetime | None = None
    starts_at_raw: str = ""
    ends_at: datetime | None = None
    generator_url: str = ""
    dashboard_url: str = ""
    panel_url: str = ""
    silence_url: str = ""

    @property
    def firing(self) -> bool:
        return self.status is AlertStatus.FIRING

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def runbook_url(self) -> str:
        """Prometheus convention is the ``runbook_url`` annotation; some rules carry it as a label."""
        return self.annotations.get("runbook_url") or self.labels.get("runbook_url", "")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description", "")

    def identity(self) -> tuple[str, str]:
        """``(fingerprint, startsAt)``: one firing of one label set, the key of idempotence."""
        return (self.fingerprint, self.starts_at_raw)


@dataclass(frozen=True, slots=True)
class Notification:
    """One delivery: the group header and every alert, already validated."""

    kind: SenderKind
    receiver: str
    status: str
    alerts: tuple[Alert, ...]
    group_key: str = ""
    truncated_alerts: int = 0
    external_url: str = ""
    common_labels: Mapping[str, str] = field(default_factory=dict)


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 16-hex identity of a label set, for senders that send no ``fingerprint``.

    Sorted ``name=value`` pairs with separators that cannot occur unescaped in
    JSON keys (NUL, 0xFF) — the same idea as Prometheus' own label hash, not its
    exact value (we never compare against a sender's fingerprint).
    """
    digest = hashlib.sha256()
    for name in sorted(labels):
        digest.update(name.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
        digest.update(labels[name].encode("utf-8", "surrogatepass"))
        digest.update(b"\xff")
    return digest.hexdigest()[:16]


def parse_body(raw: bytes, kind: SenderKind) -> Notification:
    """Decode the raw request body and parse it; every failure is a :class:`PayloadError`.

    Both senders post UTF-8 JSON (RFC 8259), so a body in another encoding is
    refused rather than guessed at (``json.loads`` alone would accept UTF-16).
    Numbers are held to what a notification can mean: a 5,000-digit integer
    would otherwise make Python's int conversion raise a ``ValueError`` of its
    own (a 500), NaN and Infinity are not JSON, and no field of either dialect
    nests deeper than a few levels.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PayloadError(
            f"body is not JSON: not UTF-8 (byte {raw[error.start]:#04x} at offset {error.start})"
        ) from None
    try:
        data = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant)
    except PayloadError:
        raise
    except RecursionError:
        raise PayloadError("body is not JSON we accept: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, and any conversion error of the json module
        raise PayloadError(f"body is not JSON: {_short(str(error), 200)}") from None
    if _depth_over(data, _MAX_DEPTH):
        raise PayloadError(f"body is not JSON we accept: nested more than {_MAX_DEPTH} levels deep")
    return parse_notification(data, kind)


_MAX_NUMBER_DIGITS = 40
"""No number either sender writes (counts, org ids, sample values) needs more digits."""
_MAX_DEPTH = 32
"""Body → alerts → alert → labels → value is five levels; senders' extras (``values``) add a few."""


def _digits(text: str) -> int:
    return sum(char.isdigit() for char in text.partition("e")[0].partition("E")[0])


def _parse_int(text: str) -> int:
    if _digits(text) > _MAX_NUMBER_DIGITS:
        raise PayloadError(f"body is not JSON we accept: a number with {_digits(text)} digits "
                           f"(at most {_MAX_NUMBER_DIGITS})")  # fmt: skip
    return int(text)


def _parse_float(text: str) -> float:
    if _digits(text) > _MAX_NUMBER_DIGITS:
        raise PayloadError(f"body is not JSON we accept: a number with {_digits(text)} digits "
                           f"(at most {_MAX_NUMBER_DIGITS})")  # fmt: skip
    value = float(text)
    if math.isinf(value):
        raise PayloadError(f"body is not JSON we accept: {_short(text)} is out of range")
    return value


def _refuse_constant(text: str) -> Any:
    raise PayloadError(f"body is not JSON we accept: {text} is not a JSON number")


def _depth_over(data: Any, limit: int) -> bool:
    """Does ``data`` nest deeper than ``limit`` containers? (Iterative: a deep body cannot exhaust the stack.)"""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_notification(data: Any, kind: SenderKind) -> Notification:
    """A decoded JSON value → :class:`Notification`, or :class:`PayloadError` naming the first bad field."""
    if not isinstance(data, dict):
        raise PayloadError(f"body must be a JSON object, not {_json_type(data)}")
    version = data.get("version")
    expected = _EXPECTED_VERSION[kind.value]
    if version is not None and version != expected:
        raise PayloadError(f"version must be {expected!r} for a {kind.value} webhook (got {version!r})")
    raw_alerts = data.get("alerts")
    if raw_alerts is None:
        raise PayloadError("alerts is required")
    if not isinstance(raw_alerts, list):
        raise PayloadError(f"alerts must be an array, not {_json_type(raw_alerts)}")
    alerts = tuple(_parse_alert(item, f"alerts[{index}]") for index, item in enumerate(raw_alerts))
    truncated = data.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int):
        raise PayloadError(f"truncatedAlerts must be an integer, not {_json_type(truncated)}")
    return Notification(
        kind=kind,
        receiver=_optional_str(data, "receiver", ""),
        status=_optional_str(data, "status", ""),
        alerts=alerts,
        group_key=_optional_str(data, "groupKey", ""),
        truncated_alerts=truncated,
        external_url=_optional_str(data, "externalURL", ""),
        common_labels=_string_map(data.get("commonLabels"), "commonLabels"),
    )


def _parse_alert(item: Any, where: str) -> Alert:
    if not isinstance(item, dict):
        raise PayloadError(f"{where} must be an object, not {_json_type(item)}")
    status = item.get("status")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"{where}.status must be 'firing' or 'resolved' (got {_short(status)})")
    if "labels" not in item:
        raise PayloadError(f"{where}.labels is required")
    labels = _string_map(item["labels"], f"{where}.labels")
    annotations = _string_map(item.get("annotations"), f"{where}.annotations")
    starts_raw = _optional_str(item, "startsAt", "", where)
    fingerprint = _optional_str(item, "fingerprint", "", where) or label_fingerprint(labels)
    return Alert(
        status=AlertStatus(status),
        labels=labels,
        annotations=annotations,
        fingerprint=fingerprint,
        starts_at=_parse_time(starts_raw, f"{where}.startsAt"),
        starts_at_raw=starts_raw,
        ends_at=_parse_time(_optional_str(item, "endsAt", "", where), f"{where}.endsAt"),
        generator_url=_optional_str(item, "generatorURL", "", where),
        dashboard_url=_optional_str(item, "dashboardURL", "", where),
        panel_url=_optional_str(item, "panelURL", "", where),
        silence_url=_optional_str(item, "silenceURL", "", where),
    )


def _string_map(value: Any, where: str) -> dict[str, str]:
    """A label or annotation set: an object of strings (absent or null is empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object, not {_json_type(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{where}.{_short(key, 60)} must be a string, not {_json_type(item)}")
    return dict(value)


def _optional_str(data: Mapping[str, Any], key: str, default: str, where: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        prefix = f"{where}." if where else ""
        raise PayloadError(f"{prefix}{key} must be a string, not {_json_type(value)}")
    return value


def _parse_time(text: str, where: str) -> datetime | None:
    """RFC 3339 → aware UTC datetime; empty or Go's zero time → None.

    Alertmanager sends nanoseconds, which ``fromisoformat`` refuses: the
    fraction is cut to microseconds first.
    """
    if not text or text.startswith(_ZERO_TIME_PREFIX):
        return None
    cleaned = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        parsed = datetime.fromisoformat(cleaned.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{where} must be an RFC 3339 time (got {_short(text)})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise PayloadError(f"{where} is out of range (got {_short(text)})") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _short(value: Any, limit: int = 40) -> str:
    """A value quoted for an error message, cut so a huge field cannot bloat the answer."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
