"""The demo's event log: what was done to the cluster, and every step RepairBot took, as it happens.

Steps come from the GPURepairs' ``status.history`` and are told in the words
Slack and Jira use for them (:func:`repairbot.notify.messages.describe_step`),
so the screen, the channel and the ticket read alike. Channel messages come
from the fake Slack's ``/_recorded``. Pure: the demo feeds it snapshots.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from repairbot.model import Action, HistoryEntry, parse_time
from repairbot.notify.messages import describe_step, is_failure
from repairbot_sim.demo_expectations import slack_top_level_posts

Obj = Mapping[str, Any]


class EventKind(enum.StrEnum):
    NOTE = "note"  # the demo narrating
    INJECT = "inject"  # something done to the cluster
    OPENED = "opened"  # a GPURepair appeared
    STEP = "step"  # a history entry
    SLACK = "slack"  # a message in the channel
    LOG = "log"  # a warning logged by RepairBot


@dataclass(frozen=True, slots=True)
class DemoEvent:
    at: datetime
    node: str
    text: str
    kind: EventKind = EventKind.NOTE
    bad: bool = False


@dataclass(frozen=True, slots=True)
class Frame:
    """What the cluster looks like now, for the views: nodes, GPURepairs, and which act of the show is on."""

    nodes: tuple[Obj, ...]
    repairs: tuple[Obj, ...]
    act: str
    elapsed: float


class DemoView(Protocol):
    """A way to show the demo: the live terminal view or plain timestamped lines."""

    def start(self) -> None: ...
    def event(self, event: DemoEvent) -> None: ...
    def show(self, frame: Frame) -> None: ...
    def stop(self) -> None: ...


def now_event(text: str, *, node: str = "", kind: EventKind = EventKind.NOTE, bad: bool = False) -> DemoEvent:
    return DemoEvent(datetime.now(UTC), node, text, kind, bad)


def history_entry(data: Obj) -> HistoryEntry:
    """A ``status.history`` item as the notifier reads it."""
    try:
        action = Action(data["action"]) if data.get("action") else None
    except ValueError:
        action = None
    at = parse_time(str(data["at"])) if data.get("at") else datetime.now(UTC)
    return HistoryEntry(str(data.get("step", "")), str(data.get("outcome", "")), str(data.get("message", "")), at,
                        action, data.get("attempt"))  # fmt: skip


def _twin(started: Obj, done: Obj) -> bool:
    """A ``started`` entry whose ``done`` follows with the same words says nothing twice."""
    return (
        started.get("outcome") == "started" and done.get("outcome") == "done"
        and started.get("step") == done.get("step") and started.get("message") == done.get("message")
    )  # fmt: skip


@dataclass
class HistoryFeed:
    """Turns successive lists of GPURepairs into the events that are new since the last list."""

    _seen: dict[str, int] = field(default_factory=dict)

    def update(self, repairs: Iterable[Obj]) -> list[DemoEvent]:
        events: list[DemoEvent] = []
        for repair in repairs:
            name = str(repair["metadata"]["name"])
            node = str((repair.get("spec") or {}).get("nodeName", ""))
            history = list((repair.get("status") or {}).get("history") or [])
            if name not in self._seen:
                self._seen[name] = 0
                events.append(_opened(repair, name, node))
            start = self._seen[name] if self._seen[name] <= len(history) else 0
            for index in range(start, len(history)):
                following = history[index + 1] if index + 1 < len(history) else None
                if following is not None and _twin(history[index], following):
                    continue
                entry = history_entry(history[index])
                events.append(DemoEvent(entry.at, node, describe_step(entry), EventKind.STEP, is_failure(entry)))
            self._seen[name] = len(history)
        return sorted(events, key=lambda e: e.at)


def _opened(repair: Obj, name: str, node: str) -> DemoEvent:
    """Dated when the finding was first seen (``detectedAt``, in ms) so it sorts before the repair's first step."""
    spec, status = repair.get("spec") or {}, repair.get("status") or {}
    codes = ", ".join(sorted({str(f.get("code")) for f in spec.get("findings") or []})) or "no finding yet"
    first = status.get("detectedAt") or next((e.get("at") for e in status.get("history") or ()), None)
    at = parse_time(str(first)) if first else datetime.now(UTC)
    return DemoEvent(at, node, f"GPURepair {name} opened (source {spec.get('source', '?')}: {codes})", EventKind.OPENED)


_GPU_DETAIL = re.compile(r" \(GPU-[0-9a-f-]+(, [0-9a-f:.]+)?\)")
_DECORATION = re.compile(r"(^|\s)(<[@!][^<>]*>|@[\w.-]+|:[a-z0-9_+-]+:)(?=\s)")
_LINK = re.compile(r"<[^<>|]*\|([^<>]*)>")


def slack_headline(text: str, *, sentences: int = 2) -> str:
    """The first sentences of a Slack message as a reader sees them: without mentions, emoji codes, GPU UUIDs
    and PCI addresses, links by their label, ``&amp;`` as ``&``."""
    short = _GPU_DETAIL.sub("", text.splitlines()[0] if text else "")
    short = _DECORATION.sub("", short).strip()
    short = _LINK.sub(r"\1", short).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    parts = re.split(r"(?<=\.) ", short)
    return " ".join(parts[:sentences])


@dataclass
class SlackFeed:
    """New channel messages (not thread replies) in the fake Slack's recording."""

    _count: int = 0

    def update(self, recorded: Sequence[Obj]) -> list[DemoEvent]:
        posts = slack_top_level_posts(recorded)
        fresh, self._count = posts[self._count :], len(posts)
        return [now_event(f"Slack #gpu-repairs: {slack_headline(text)}", kind=EventKind.SLACK) for text in fresh]
