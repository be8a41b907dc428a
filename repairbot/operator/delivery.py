"""The pure half of notification delivery: cursors, what is owed, refusal records, and what storms remember.

Kept apart from :mod:`repairbot.operator.dispatcher` (the threads and the
I/O) so each rule is a plain function of a GPURepair's status, testable in a
table without Slack, Jira or an API server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from repairbot.model import Action, HistoryEntry, format_time, parse_time
from repairbot.notify import NotifyError
from repairbot.notify.messages import StormView

A = TypeVar("A")

REFUSED_SUFFIX = "-refused"
"""History steps ``slack-refused`` / ``jira-refused``: a message that service refused for good."""
MAX_REFUSAL_MESSAGE = 500
MAX_UNRECORDED = 20
"""Refusals a cursor holds until the history surely keeps them; a flood beyond this keeps the newest."""
SETTLED_PHASES = frozenset({"Succeeded", "Failed", "Quarantined", "Cancelled"})
MAX_INCIDENTS_REMEMBERED = 256
"""Storms a lane remembers at once (thread or ticket, last rendering); more are found again from their repairs."""


def history_entry(raw: Mapping[str, Any]) -> HistoryEntry:
    action = raw.get("action")
    return HistoryEntry(
        step=str(raw.get("step", "")),
        outcome=str(raw.get("outcome", "")),
        message=str(raw.get("message", "")),
        at=parse_time(str(raw["at"])),
        action=Action(action) if action in {a.value for a in Action} else None,
        attempt=raw.get("attempt"),
    )


def delivery_cursor(status: Mapping[str, Any], target: str) -> Mapping[str, Any]:
    """How far ``target`` has been told this repair: ``{"sent": n, "phase": ...}`` (empty before anything)."""
    return dict((status.get("deliveries") or {}).get(target) or {})


def owed(obj: Mapping[str, Any], target: str) -> bool:
    """Does this repair owe ``target`` anything (a first message, a step, a phase change)?"""
    status = obj.get("status") or {}
    cursor = delivery_cursor(status, target)
    history = status.get("history") or []
    if not status.get("phase") and not history:
        return False
    if not cursor and nothing_to_tell(status):
        return False
    if int(cursor.get("sent") or 0) < len(history) or cursor.get("unrecorded"):
        return True
    return cursor.get("phase") != status.get("phase") or (target == "slack" and parent_ticket_owed(status))


def nothing_to_tell(status: Mapping[str, Any]) -> bool:
    """A repair that ended at once because its findings need no action (an application's Xid 13, reported only
    so an escalation rule can count it) touched nothing and asks nothing of anyone: no thread, no ticket.
    The GPURepair keeps the record; the repair an escalation opens is told as any other."""
    conditions = status.get("conditions") or ()
    return status.get("phase") == "Cancelled" and any(
        c.get("type") == "Cancelled" and c.get("reason") == "NoAction" for c in conditions
    )


def parent_ticket_owed(status: Mapping[str, Any]) -> bool:
    """Does the repair's own Slack parent still lack the link to a Jira ticket opened after it was last written?

    The two lanes run apart, so the ticket often exists only after the parent
    last changed (a quarantine's final phase, say); the Slack cursor's
    ``ticket`` says which key the parent shows. A storm's message is rewritten
    from the storm instead.
    """
    key = (status.get("jira") or {}).get("key")
    thread = status.get("slack") or {}
    if not key or not thread.get("ts") or status.get("incident"):
        return False
    return delivery_cursor(status, "slack").get("ticket") != key


def steps_owed(repairs: Iterable[Mapping[str, Any]], target: str) -> int:
    """History entries not yet delivered to ``target``, over all repairs: the backlog RepairBot alerts on."""
    total = 0
    for obj in repairs:
        status = obj.get("status") or {}
        sent = int(delivery_cursor(status, target).get("sent") or 0)
        total += max(0, len(status.get("history") or []) - sent)
    return total


def refusal_entry(error: NotifyError, *, what: str, reduced: bool, now: datetime) -> dict[str, Any]:
    """The history line that says a service refused one message for good, and what RepairBot did instead.

    Its step names the refusing target, so that target is never asked to carry
    it (:func:`refused_by`): a refusal can never become a refusal loop. The
    other target does carry it, so the SRE reading Jira learns Slack refused.
    """
    done = "sent as plain text instead" if reduced else "skipped; the messages after it go on"
    detail = f" ({error.detail})" if error.detail else ""
    message = f"{error.target} refused {what} with {error.code}{detail}: {done}"
    if len(message) > MAX_REFUSAL_MESSAGE:
        message = message[: MAX_REFUSAL_MESSAGE - 1] + "…"
    return {
        "step": f"{error.target}{REFUSED_SUFFIX}",
        "outcome": "sent-plain" if reduced else "skipped",
        "message": message,
        "at": format_time(now),
    }


def refused_by(entry: Mapping[str, Any], target: str) -> bool:
    """Is this history line ``target``'s own refusal (never to be sent to ``target`` itself)?"""
    return entry.get("step") == f"{target}{REFUSED_SUFFIX}"


def same_entry(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("step", "at", "message"))


def settle_refusals(
    history: list[Mapping[str, Any]], unrecorded: list[Mapping[str, Any]], phase: str | None
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Which refusal lines to (re-)append to the history, and which to keep holding in the cursor.

    The reconciler writes the whole history list from the version it read
    before a step, so a line appended meanwhile can be overwritten. A line is
    safe once the history holds it *and* either a later step follows it (that
    step's write was based on a version that had it) or the repair is over;
    until then the cursor holds it, and a line the history lost is appended again.

    Nothing is appended while the last step is ``started`` (in flight): the
    reconciler is about to write its outcome, and a restarted one finishes an
    interrupted step only when that step is the history's last line.
    """
    in_flight = bool(history) and history[-1].get("outcome") == "started"
    missing = [] if in_flight else [r for r in unrecorded if not any(same_entry(r, h) for h in history)]
    keep: list[Mapping[str, Any]] = []
    for refusal in unrecorded:
        at = next((i for i, h in enumerate(history) if same_entry(refusal, h)), None)
        followed = at is not None and any(not str(h.get("step", "")).endswith(REFUSED_SUFFIX)
                                          for h in history[at + 1 :])  # fmt: skip
        if at is None or not (followed or phase in SETTLED_PHASES):
            keep.append(refusal)
    return missing, keep[-MAX_UNRECORDED:]


def stored_by_member(
    members: Iterable[Mapping[str, Any]], target: str, field_name: str, incident: str
) -> Mapping[str, Any] | None:
    """The storm's shared thread or ticket (``status.<target>`` with ``field_name`` set and marked with ``incident``)
    as any member holds it, found again after a restart.

    Only a message marked with the incident is the storm's: a member that opened
    its own thread or ticket before the breaker opened (the storm's first node,
    cordoned a moment before the trip) keeps it for itself; it never becomes the
    storm's message.
    """
    for repair in members:
        stored = (repair.get("status") or {}).get(target) or {}
        if stored.get(field_name) and stored.get("incident") == incident:
            return dict(stored)
    return None


def storm_view(
    incident: str,
    members: Iterable[Mapping[str, Any]],
    obj: Mapping[str, Any],
    *,
    detail: str,
    jira_key: str | None,
    jira_url: str | None = None,
) -> StormView:
    """The storm as its members stand now: every repair of ``incident`` the cache knows, and ``obj`` (fresh) last."""
    pairs = [_node_phase(r) for r in members if (r.get("status") or {}).get("incident") == incident]
    return StormView.of(incident, [*pairs, _node_phase(obj)], detail=detail, jira_key=jira_key, jira_url=jira_url)


def storm_detail(members: Iterable[Mapping[str, Any]], incident: str) -> str:
    """Why the storm opened: the first history line naming the incident (the breaker's trip message).

    Read from the history rather than a member's current ``message``, which moves
    on as the member is repaired, so the storm says the same "why" after a restart.
    """
    for repair in sorted(members, key=lambda r: str((r.get("metadata") or {}).get("name", ""))):
        for entry in (repair.get("status") or {}).get("history") or ():
            message = str(entry.get("message") or "")
            if incident in message:
                return message
    return ""


def _node_phase(repair: Mapping[str, Any]) -> tuple[str, str]:
    return str((repair.get("spec") or {}).get("nodeName")), str((repair.get("status") or {}).get("phase") or "Pending")


@dataclass
class IncidentMemo(Generic[A]):
    """What one delivery lane remembers per storm: its anchor (Slack thread or Jira key) and its last rendering.

    Only a cache — the anchor is stored on every member repair and found
    again from them — so it is pruned freely: incidents none of whose repairs
    exist any more go, and at most ``limit`` incidents are kept (oldest out).
    """

    limit: int = MAX_INCIDENTS_REMEMBERED
    anchors: dict[str, A] = field(default_factory=dict)
    rendered: dict[str, StormView] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    def remember(self, incident: str, anchor: A) -> None:
        self.anchors.pop(incident, None)
        self.anchors[incident] = anchor
        self._cap()

    def detail(self, incident: str, current: str) -> str:
        """The reason the storm opened, as first seen (members' own messages move on as they are repaired)."""
        if incident not in self.details:
            self.details[incident] = current
            self._cap()
        return self.details[incident]

    def is_current(self, incident: str, storm: StormView) -> bool:
        return self.rendered.get(incident) == storm

    def rendered_as(self, incident: str, storm: StormView) -> None:
        self.rendered.pop(incident, None)
        self.rendered[incident] = storm
        self._cap()

    def prune(self, live: Iterable[str]) -> None:
        """Forget incidents none of whose repairs exist any more."""
        keep = set(live)
        for memory in (self.anchors, self.rendered, self.details):
            for incident in [i for i in memory if i not in keep]:
                del memory[incident]

    def __len__(self) -> int:
        return len(set(self.anchors) | set(self.rendered) | set(self.details))

    def _cap(self) -> None:
        for memory in (self.anchors, self.rendered, self.details):
            while len(memory) > self.limit:
                del memory[next(iter(memory))]


def incidents_of(repairs: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every incident some repair still names."""
    return {str(i) for r in repairs if (i := (r.get("status") or {}).get("incident"))}
