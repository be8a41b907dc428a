"""Tell Slack and Jira what happened to each repair, in order, at least once, without ever slowing it.

The GPURepair's own ``status.history`` is the outbox: every step is written
there before it runs. This dispatcher, on one thread per target (so a Jira
outage never holds back Slack), walks each repair's history and keeps a cursor per target in ``status.deliveries``
(``{"slack": {"sent": 4, "phase": "Draining"}, "jira": {"sent": 4, "resolved": false}}``).
A cursor moves only after Slack or Jira accepted the message, so an outage
delays notifications and loses none; when the service is back, every step
arrives once, in order. The thread (``status.slack``) and the ticket
(``status.jira``) are recorded before any reply or comment, so a restarted
operator continues the same thread and the same ticket.

Two kinds of failure, two answers. A *transient* one (rate limit, 5xx, no
connection) stops the lane's pass and backs the whole lane off — exponential,
capped, Slack's or Jira's ``Retry-After`` first — with the cursor where it
was. A *permanent* one (``invalid_blocks``, a Jira 400, a missing transition)
would fail the same way forever, so one refused message must not freeze the
lane: a refusal of the form is tried once more as plain text; either way a
``<target>-refused`` line goes into the repair's history (with a metric by
error code) and the cursor moves past the message. That line is never sent
to the target that refused (it would be refused again, a loop); the other
target carries it.

A storm's one Slack message and one Jira ticket are rewritten after a clean
pass whenever its members no longer match what was last written (a node
joined, a member moved on, a restart), so they always count every member.

The reconciler never writes ``deliveries`` and the dispatcher writes nothing
else the reconciler owns but refusal lines. Those are held first in the
cursor (``deliveries.<target>.unrecorded``, ours alone), then appended to the
history fenced on the version just read; the reconciler writes the whole list
from the version it read before a step, so a line is let go only once the
history surely keeps it (:func:`~repairbot.operator.delivery.settle_refusals`)
and appended again if a step's write dropped it. A crash between a send and
its cursor write can repeat that one message — at least once, never lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import as_object, describe_error
from repairbot.kube.repairs import read_repair
from repairbot.logs import step_fields
from repairbot.model import GROUP, PLURAL, VERSION, Phase
from repairbot.notify import NotifyError
from repairbot.notify.backoff import LaneBackoff
from repairbot.notify.jira import JiraNotifier
from repairbot.notify.messages import StormView
from repairbot.notify.slack import SlackNotifier, SlackThread
from repairbot.notify.view import RepairView
from repairbot.operator.background import BackgroundLoop
from repairbot.operator.chat import ChatEndpoints, build_notifiers
from repairbot.operator.delivery import (
    IncidentMemo,
    delivery_cursor,
    history_entry,
    incidents_of,
    owed,
    parent_ticket_owed,
    refused_by,
    steps_owed,
    stored_by_member,
    storm_detail,
    storm_view,
)
from repairbot.operator.metrics import OperatorMetrics
from repairbot.operator.refusals import RepairLane, plainless, send_once, with_plain

log = logging.getLogger(__name__)

__all__ = ["ChatEndpoints", "NotificationDispatcher", "build_notifiers", "delivery_cursor", "owed", "steps_owed"]

BACKOFF_CAP_SECONDS = 60.0


@dataclass(frozen=True)
class _Due:
    """What one lane owes one repair, read once from the version its delivery starts on.

    Both lanes start from the same reading (cursor, phase, the steps not refused
    for this target), so it is made in one place and the two cannot drift.
    """

    obj: dict[str, Any]
    status: Mapping[str, Any]
    history: list[Any]
    phase: str | None
    incident: str | None
    cursor: int
    phase_owed: bool
    to_send: tuple[int, ...]
    view: RepairView


@dataclass
class NotificationDispatcher:
    api: client.ApiClient
    repairs: Callable[[], list[Mapping[str, Any]]]
    slack: SlackNotifier | None = None
    jira: JiraNotifier | None = None
    runbook_base_url: str | None = None
    interval: float = 1.0
    metrics: OperatorMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    backoff_cap: float = BACKOFF_CAP_SECONDS
    _lanes: list[BackgroundLoop] = field(default_factory=list)
    # Per lane (each touched by its own thread only): storms' threads/tickets and renderings, and the backoff.
    _memos: dict[str, IncidentMemo[Any]] = field(default_factory=lambda: {"slack": IncidentMemo(),
                                                                           "jira": IncidentMemo()})  # fmt: skip
    _backoffs: dict[str, LaneBackoff] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.slack is not None or self.jira is not None

    @property
    def targets(self) -> list[str]:
        return [target for target, on in (("slack", self.slack), ("jira", self.jira)) if on is not None]

    def start(self) -> None:
        """One thread per target: Jira retrying through an outage must not hold back the Slack thread."""
        for target in self.targets:
            lane = BackgroundLoop(f"notify-{target}", partial(self.deliver_due, target), lambda: self.interval,
                                  failed=f"notification pass failed target={target}; retrying", logger=log)  # fmt: skip
            lane.start()
            self._lanes.append(lane)

    def stop(self) -> None:
        for lane in self._lanes:
            lane.halt()  # every lane told first, so they wind down together
        for lane in self._lanes:
            lane.stop()
        self._lanes.clear()

    def backoff(self, target: str) -> LaneBackoff:
        """The lane's backoff: one per target, because a rate limit or an outage is the service's, not a message's."""
        return self._backoffs.setdefault(target, LaneBackoff(base=self.interval, cap=self.backoff_cap))

    def memo(self, target: str) -> IncidentMemo[Any]:
        return self._memos[target]

    def deliver_due(self, target: str | None = None) -> int:
        """One pass over every repair that owes ``target`` (default: every target) a message; how many went out.

        A lane backing off after a transient failure is left alone until its time comes.
        """
        sent = 0
        for lane in [target] if target else self.targets:
            if self.backoff(lane).ready(self.clock()):
                sent += self._deliver_lane(lane)
        return sent

    def _deliver_lane(self, target: str) -> int:
        sent = 0
        listing = self.repairs()
        backoff = self.backoff(target)
        try:
            for cached in listing:
                if not owed(cached, target):
                    continue
                try:
                    obj = read_repair(client.CustomObjectsApi(self.api), cached["metadata"]["name"])
                    if obj is not None:
                        sent += self._deliver_slack(obj) if target == "slack" else self._deliver_jira(obj)
                except ApiException as error:  # the API server's, not the target's: retried next pass
                    log.warning("notification delayed repair=%s target=%s error=%s",
                                cached["metadata"]["name"], target, describe_error(error))  # fmt: skip
        except NotifyError as error:  # transient (permanent ones are recorded and skipped inside)
            delay = backoff.failed(self.clock(), error.retry_after)
            log.warning("notifications to %s paused for %.1fs error=%s", target, delay, error,
                        extra=step_fields(target=target, code=error.code, delay=round(delay, 1)))
            if self.metrics is not None:
                self.metrics.count_notification_error(target, error)
        else:
            backoff.succeeded()
            self._refresh_storms_safely(target)
        self.memo(target).prune(incidents_of(self.repairs()))
        if self.metrics is not None:
            self.metrics.notifications_pending.labels(target).set(steps_owed(self.repairs(), target))
        return sent

    # --- both lanes

    def _start_lane(self, obj: dict[str, Any], target: str) -> tuple[RepairLane, _Due]:
        """Open ``target``'s lane on ``obj`` (held refusals recorded first) and read what it owes, once."""
        lane = RepairLane(self._patch, target, obj, self.metrics)
        lane.record_refusals()
        obj = lane.obj
        status = obj.get("status") or {}
        history, phase = status.get("history") or [], status.get("phase")
        cursor = int(delivery_cursor(status, target).get("sent") or 0)
        return lane, _Due(
            obj=obj,
            status=status,
            history=history,
            phase=phase,
            incident=status.get("incident"),
            cursor=cursor,
            phase_owed=delivery_cursor(status, target).get("phase") != phase
            or (target == "slack" and parent_ticket_owed(status)),
            to_send=tuple(i for i in range(cursor, len(history)) if not refused_by(history[i], target)),
            view=self._view(obj),
        )

    # --- Slack

    def _deliver_slack(self, obj: dict[str, Any]) -> int:
        assert self.slack is not None
        slack = self.slack
        lane, due = self._start_lane(obj, "slack")
        obj, history, phase, view, phase_owed = due.obj, due.history, due.phase, due.view, due.phase_owed
        marks = {"phase": phase, "ticket": (due.status.get("jira") or {}).get("key")}  # what the parent shows
        thread = due.status.get("slack") or {}
        if not thread.get("ts"):
            if not due.to_send and not phase_owed:  # only Slack's own refusals are new: nothing to open a thread for
                lane.move(sent=len(history))
                return 0
            opened = send_once(lambda plain: self._thread_for(obj, view, plain=plain))
            if opened.result is None:
                assert opened.refusal is not None
                lane.refused(opened.refusal, what="the thread's first message", reduced=False,
                             sent=len(history), **marks)  # fmt: skip
                return 0
            thread, phase_owed = opened.result, False  # the new parent already shows the current phase and ticket
            lane.patch({"slack": thread, "deliveries": {"slack": {"sent": due.cursor, **marks}}})
            if opened.refusal is not None:
                lane.refused(opened.refusal, what="the thread's first message", reduced=True)
        parent = SlackThread(channel=thread["channel"], ts=thread["ts"])
        for index in range(due.cursor, len(history)):
            if not refused_by(history[index], "slack"):
                step = history_entry(history[index])
                reply = send_once(with_plain(partial(slack.reply_step, parent, view, step)))
                if reply.refusal is not None:
                    lane.refused(reply.refusal, what=f"the reply for step {step.step!r}", reduced=reply.reduced,
                                 sent=index + 1)  # fmt: skip
                    continue
            lane.move(sent=index + 1)
        if phase_owed:
            if not due.incident:  # a storm's parent speaks for every node; it is rewritten from the storm below
                update = send_once(lambda plain: slack.update_parent(parent.channel, parent.ts, view, plain=plain))
                if update.refusal is not None:
                    lane.refused(update.refusal, what=f"the parent's update to {phase}", reduced=update.reduced,
                                 **marks)  # fmt: skip
                else:
                    lane.move(**marks)
            else:
                lane.move(**marks)
        return len(due.to_send)

    def _thread_for(self, obj: Mapping[str, Any], view: RepairView, *, plain: bool) -> dict[str, str]:
        """A repair's own thread, or its storm's one message: found again from any member, else posted once."""
        assert self.slack is not None
        incident = (obj.get("status") or {}).get("incident")
        if not incident:
            opened = self.slack.open_thread(view, plain=plain)
            return {"channel": opened.channel, "ts": opened.ts}
        memo = self.memo("slack")
        if incident in memo.anchors:
            return dict(memo.anchors[incident])
        known = stored_by_member(self._incident_members(incident), "slack", "ts", incident)
        if known:
            thread = {"channel": known["channel"], "ts": known["ts"], "incident": incident}
        else:
            storm = self._storm(obj, incident, memo)
            posted = self.slack.post_storm(storm, plain=plain)
            thread = {"channel": posted.channel, "ts": posted.ts, "incident": incident}
            memo.rendered_as(incident, storm)
        memo.remember(incident, thread)
        return dict(thread)

    # --- Jira

    def _deliver_jira(self, obj: dict[str, Any]) -> int:
        """The repair's steps as comments on its ticket; a storm's repairs share one incident ticket."""
        assert self.jira is not None
        jira = self.jira
        lane, due = self._start_lane(obj, "jira")
        obj, history, phase, incident, view = due.obj, due.history, due.phase, due.incident, due.view
        ticket = (due.status.get("jira") or {}).get("key")
        if not ticket:
            if not due.to_send and not due.phase_owed:
                lane.move(sent=len(history))
                return 0
            made = send_once(lambda _plain: self._incident_ticket(obj) if incident else jira.ensure_ticket(view))
            if made.result is None:
                assert made.refusal is not None
                lane.refused(made.refusal, what="the ticket's creation", reduced=False, sent=len(history), phase=phase)
                return 0
            ticket = str(made.result)
            stored: dict[str, str] = {"key": ticket, "url": jira.browse_url(ticket)}
            if incident:
                stored["incident"] = str(incident)  # the storm's ticket, not this repair's own
            lane.patch({"jira": stored})
        for index in range(due.cursor, len(history)):
            if not refused_by(history[index], "jira"):
                step = history_entry(history[index])
                sent = send_once(plainless(partial(jira.comment_step, ticket, view, step, name_node=bool(incident))))
                if sent.refusal is not None:
                    lane.refused(sent.refusal, what=f"the comment for step {step.step!r}", reduced=False,
                                 sent=index + 1)  # fmt: skip
                    continue
            lane.move(sent=index + 1)
        if due.phase_owed:
            closing = send_once(lambda _plain: self._close_or_escalate(ticket, view, phase, incident))
            if closing.refusal is not None:
                lane.refused(closing.refusal, what=f"the ticket's move to {phase}", reduced=False, phase=phase)
            else:
                for edit in closing.result or []:  # a quarantine edit Jira refused: the rest went through
                    lane.refused(edit, what=f"the ticket's {edit.operation.removeprefix('escalate-')} on {phase}",
                                 reduced=False)  # fmt: skip
                lane.move(phase=phase)
        return len(due.to_send)

    def _close_or_escalate(
        self, ticket: str, view: RepairView, phase: str | None, incident: Any
    ) -> list[NotifyError]:
        """Resolve a succeeded repair's ticket, or escalate a quarantined one; the escalation edits Jira refused."""
        assert self.jira is not None
        if phase == Phase.SUCCEEDED.value and not incident:  # an incident's ticket is closed by a human
            self.jira.resolve(ticket, view=view)
        elif phase == Phase.QUARANTINED.value:
            return self.jira.escalate_quarantine(ticket, view)
        return []

    def _incident_ticket(self, obj: Mapping[str, Any]) -> str:
        """The storm's one ticket: held by a member repair already (after a restart), else found or made once."""
        assert self.jira is not None
        incident = str((obj.get("status") or {}).get("incident"))
        memo = self.memo("jira")
        if incident in memo.anchors:
            return str(memo.anchors[incident])
        known = stored_by_member(self._incident_members(incident), "jira", "key", incident)
        if known:
            key = str(known["key"])
        else:
            storm = self._storm(obj, incident, memo)
            key = self.jira.ensure_incident_ticket(storm)
            memo.rendered_as(incident, StormView.of(incident, storm.members, detail=storm.detail, jira_key=key,
                                                    jira_url=self.jira.browse_url(key)))  # fmt: skip
        memo.remember(incident, key)
        return key

    # --- storms

    def _storm(
        self,
        obj: Mapping[str, Any],
        incident: str,
        memo: IncidentMemo[Any],
        *,
        jira_key: str | None = None,
        members: list[Mapping[str, Any]] | None = None,
    ) -> StormView:
        members = self._incident_members(incident) if members is None else members
        detail = memo.detail(incident, storm_detail([*members, obj], incident))
        ticket = stored_by_member([*members, obj], "jira", "key", incident) or {}
        jira_key = jira_key or ticket.get("key")
        jira_url = ticket.get("url") if ticket.get("key") == jira_key else None
        if jira_key and not jira_url and self.jira is not None:
            jira_url = self.jira.browse_url(jira_key)  # Slack links the incident's ticket
        return storm_view(incident, members, obj, detail=detail, jira_key=jira_key, jira_url=jira_url)

    def _refresh_storm(
        self,
        lane: RepairLane,
        incident: str,
        members: list[Mapping[str, Any]],
        update: Callable[[StormView, bool], None],
        *,
        jira_key: str | None = None,
    ) -> None:
        """Rewrite the storm's message or ticket once it no longer says what the storm is (a node joined or ended)."""
        memo = self.memo(lane.target)
        storm = self._storm(lane.obj, incident, memo, jira_key=jira_key, members=members)
        if memo.is_current(incident, storm):
            return
        sent = send_once(lambda plain: update(storm, plain))
        memo.rendered_as(incident, storm)  # a refused rendering is recorded once, not retried every pass
        if sent.refusal is not None:
            lane.refused(sent.refusal, what="the storm's update", reduced=sent.reduced)

    def _refresh_storms_safely(self, target: str) -> None:
        """After a clean pass, with the members as they stand now (the cache, caught up with this pass's writes)."""
        try:
            self._refresh_storms(target, self.repairs())
        except NotifyError as error:
            self.backoff(target).failed(self.clock(), error.retry_after)
            log.warning("storm refresh for %s delayed error=%s", target, error)
        except ApiException as error:
            log.warning("storm refresh for %s delayed error=%s", target, describe_error(error))

    def _refresh_storms(self, target: str, listing: list[Mapping[str, Any]]) -> None:
        """Every storm whose message or ticket is behind its members (a refresh that failed, a restart): rewrite it."""
        for incident in sorted(incidents_of(listing)):
            members = [r for r in listing if (r.get("status") or {}).get("incident") == incident]
            field_name = "ts" if target == "slack" else "key"
            stored = stored_by_member(members, target, field_name, incident)
            if stored is None:
                continue  # nothing posted yet: the first member's delivery posts it
            lane = RepairLane(self._patch, target, dict(members[0]), self.metrics)
            key = str(stored["key"]) if target == "jira" else None
            self._refresh_storm(lane, incident, members, self._storm_updater(target, stored), jira_key=key)

    def _storm_updater(self, target: str, stored: Mapping[str, Any]) -> Callable[[StormView, bool], None]:
        """How a lane rewrites a storm it has posted: Slack's ``chat.update`` of the message, Jira's ticket fields."""
        if target == "slack":
            assert self.slack is not None
            slack, channel, ts = self.slack, str(stored["channel"]), str(stored["ts"])
            return lambda storm, plain: slack.update_storm(channel, ts, storm, plain=plain)
        assert self.jira is not None
        jira, key = self.jira, str(stored["key"])
        return lambda storm, _plain: jira.update_incident(key, storm)

    # --- plumbing

    def _incident_members(self, incident: str) -> list[Mapping[str, Any]]:
        return [r for r in self.repairs() if (r.get("status") or {}).get("incident") == incident]

    def _view(self, obj: Mapping[str, Any]) -> RepairView:
        return RepairView.from_resource(obj, runbook_base_url=self.runbook_base_url)

    def _patch(self, name: str, status: Mapping[str, Any], *, resource_version: str | None = None) -> dict[str, Any]:
        """Merge-patch the status; with ``resource_version``, only onto that version (409 otherwise)."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        custom = client.CustomObjectsApi(self.api)
        return as_object(custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, body))
