"""How every ``repairbot`` process logs: one line per event, as text for a terminal or JSON for a log pipeline.

An SRE greps the operator's log for the repair the Slack thread names, and a
log pipeline (Loki, Elasticsearch, Cloud Logging) indexes fields rather than
words. So a log call that concerns a repair step passes the step's fields as
``extra=`` — ``node``, ``repair``, ``phase``, ``action``, the same words as the
GPURepair history — and the JSON format writes them as fields of the line
next to ``time``, ``level``, ``logger`` and ``message``; the text format keeps
the ``key=value`` message it always had.

kopf, embedded in the operator, logs through the standard ``logging`` tree
with the object a record is about in ``k8s_ref``; the same formatter writes
that as ``object`` (kopf's own key for it) and, for a GPURepair or a Node, as
``repair`` or ``node`` too, so kopf's lines and RepairBot's read alike.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
STEP_FIELDS = ("node", "repair", "phase", "action")
"""The fields a repair step's log line carries, named as in the GPURepair history."""

_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_KOPF_INTERNALS = frozenset({"k8s_ref", "k8s_skip", "settings"})
"""Attributes kopf's object loggers add: the reference becomes ``object``; the rest is kopf's plumbing."""


def step_fields(
    *, node: str | None = None, repair: str | None = None, phase: str | None = None, action: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    """The ``extra=`` of a step's log call: the fields given, the empty ones left out.

    A field named like one of ``LogRecord``'s own attributes (``created``, ``name``, ``msg`` …) raises
    ``ValueError`` here, at every log level. ``logging`` itself raises ``KeyError`` for it only once the
    level is enabled, and so only in production: at ``INFO`` an agent's ``created=`` made every report
    to intake look failed, and the agent re-sent its findings every second, counting them up each time.
    """
    clashing = sorted(set(more) & _RECORD_ATTRIBUTES)
    if clashing:
        raise ValueError(f"log fields {clashing} are LogRecord's own attributes; name them otherwise")
    given = {"node": node, "repair": repair, "phase": phase, "action": action, **more}
    return {key: value for key, value in given.items() if value is not None and value != ""}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (RFC 3339, UTC), ``level``, ``logger``, ``message``, then the
    record's own fields (whatever the call passed as ``extra=``), and ``exception`` with the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, Mapping):
            line["object"] = {key: value for key, value in ref.items() if value}
            if ref.get("kind") == "GPURepair" and ref.get("name"):
                line["repair"] = ref["name"]
            elif ref.get("kind") == "Node" and ref.get("name"):
                line["node"] = ref["name"]
        for key, value in vars(record).items():
            if key in _RECORD_ATTRIBUTES or key in _KOPF_INTERNALS or key.startswith("_") or key in line:
                continue
            line[key] = _plain(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: an enum by its value, anything else unknown by its text."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "value") and isinstance(value.value, str | int):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def level_number(level: str) -> int:
    """``DEBUG``, ``info``, … as logging's number; an unknown name is WARNING, as it always was."""
    number = logging.getLevelName(str(level).upper())
    return number if isinstance(number, int) else logging.WARNING


class _Handler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure_logging` installs, told apart so a second call replaces it."""


def configure_logging(level: str = "WARNING", fmt: str = "text", *, stream: TextIO | None = None) -> None:
    """Route every logger (kopf's and the libraries' included) to one handler on ``stream`` (stderr).

    Like :func:`logging.basicConfig`, it leaves alone a root logger that someone else gave a handler (a
    test runner capturing logs, a program embedding a command): their choice of where lines go stands.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if isinstance(handler, _Handler)]
    if len(ours) != len(root.handlers):
        return
    for old in ours:
        root.removeHandler(old)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level_number(level))
