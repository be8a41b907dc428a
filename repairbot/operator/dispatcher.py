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

The reconciler never writes ``deliveries`` and the dispatcher writes nothing
else the reconciler owns: their merge patches touch different keys and cannot
undo each other. A crash between a send and its cursor write can repeat that
one message — at least once, never lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import as_object
from repairbot.model import GROUP, PLURAL, VERSION, Action, HistoryEntry, Phase, parse_time
from repairbot.notify import NotifyError
from repairbot.notify.jira import JiraNotifier
from repairbot.notify.slack import SlackNotifier, SlackThread
from repairbot.notify.view import RepairView
from repairbot.operator.metrics import OperatorMetrics
from repairbot.policy import Policy

log = logging.getLogger(__name__)


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
    if int(cursor.get("sent") or 0) < len(history):
        return True
    return cursor.get("phase") != status.get("phase")


def steps_owed(repairs: Iterable[Mapping[str, Any]], target: str) -> int:
    """History entries not yet delivered to ``target``, over all repairs: the backlog RepairBot alerts on."""
    total = 0
    for obj in repairs:
        status = obj.get("status") or {}
        sent = int(delivery_cursor(status, target).get("sent") or 0)
        total += max(0, len(status.get("history") or []) - sent)
    return total


def stored_by_member(members: Iterable[Mapping[str, Any]], target: str, field: str) -> Mapping[str, Any] | None:
    """The first ``status.<target>`` among an incident's repairs that has ``field`` set (the shared thread or
    ticket, found again after a restart)."""
    for repair in members:
        stored = (repair.get("status") or {}).get(target) or {}
        if stored.get(field):
            return dict(stored)
    return None


def member_nodes(members: Iterable[Mapping[str, Any]], obj: Mapping[str, Any]) -> list[str]:
    """The incident's nodes as far as the cache knows them, at least ``obj``'s own."""
    return [str(r.get("spec", {}).get("nodeName")) for r in members] or [str(obj["spec"]["nodeName"])]


@dataclass
class NotificationDispatcher:
    api: client.ApiClient
    repairs: Callable[[], list[Mapping[str, Any]]]
    slack: SlackNotifier | None = None
    jira: JiraNotifier | None = None
    runbook_base_url: str | None = None
    interval: float = 1.0
    metrics: OperatorMetrics | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _storm_threads: dict[str, dict[str, str]] = field(default_factory=dict)
    _incident_tickets: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.slack is not None or self.jira is not None

    @property
    def targets(self) -> list[str]:
        return [target for target, on in (("slack", self.slack), ("jira", self.jira)) if on is not None]

    def start(self) -> None:
        """One thread per target: Jira retrying through an outage must not hold back the Slack thread."""
        for target in self.targets:
            thread = threading.Thread(target=self._loop, args=(target,), name=f"notify-{target}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self._threads.clear()

    def deliver_due(self, target: str | None = None) -> int:
        """One pass over every repair that owes ``target`` (default: every target) a message; how many went out."""
        sent = 0
        for lane in [target] if target else self.targets:
            sent += self._deliver_lane(lane)
        return sent

    def _deliver_lane(self, target: str) -> int:
        sent = 0
        for cached in self.repairs():
            if not owed(cached, target):
                continue
            obj = self._read(cached["metadata"]["name"])
            if obj is None:
                continue
            try:
                sent += self._deliver_slack(obj) if target == "slack" else self._deliver_jira(obj)
            except (NotifyError, ApiException) as error:  # retried next pass: the cursor did not move
                log.warning("notification delayed repair=%s target=%s error=%s", obj["metadata"]["name"], target, error)
                if self.metrics is not None:
                    self.metrics.notification_errors.labels(target).inc()
        if self.metrics is not None:
            self.metrics.notifications_pending.labels(target).set(steps_owed(self.repairs(), target))
        return sent

    # --- per target

    def _deliver_slack(self, obj: dict[str, Any]) -> int:
        assert self.slack is not None
        name, status = obj["metadata"]["name"], obj.get("status") or {}
        view = self._view(obj)
        thread = status.get("slack") or {}
        if not thread.get("ts"):
            thread = self._storm_thread(obj) or self._open_thread(view)
            self._patch(name, {"slack": thread, "deliveries": {"slack": {"sent": 0, "phase": status.get("phase")}}})
        parent = SlackThread(channel=thread["channel"], ts=thread["ts"])
        cursor = int(delivery_cursor(status, "slack").get("sent") or 0)
        history = status.get("history") or []
        for index in range(cursor, len(history)):
            self.slack.reply_step(parent, view, history_entry(history[index]))
            self._patch(name, {"deliveries": {"slack": {"sent": index + 1}}})
        if delivery_cursor(status, "slack").get("phase") != status.get("phase"):
            if not thread.get("incident"):  # a storm's parent speaks for every node; one repair must not rewrite it
                self.slack.update_parent(parent.channel, parent.ts, view)
            self._patch(name, {"deliveries": {"slack": {"phase": status.get("phase")}}})
        return len(history) - cursor

    def _open_thread(self, view: RepairView) -> dict[str, str]:
        assert self.slack is not None
        opened = self.slack.open_thread(view)
        return {"channel": opened.channel, "ts": opened.ts}

    def _storm_thread(self, obj: Mapping[str, Any]) -> dict[str, str] | None:
        """A storm is one Slack message for all its nodes; its repairs share that thread.

        The thread is found again from any repair of the same incident that
        already holds it (after a restart), else posted once and remembered.
        """
        assert self.slack is not None
        incident = (obj.get("status") or {}).get("incident")
        if not incident:
            return None
        if incident in self._storm_threads:
            return self._storm_threads[incident]
        members = self._incident_members(incident)
        known = stored_by_member(members, "slack", "ts")
        if known:
            thread = {"channel": known["channel"], "ts": known["ts"], "incident": incident}
        else:
            message = str((obj.get("status") or {}).get("message") or "")
            posted = self.slack.post_storm(member_nodes(members, obj), reason=incident, detail=message)
            thread = {"channel": posted.channel, "ts": posted.ts, "incident": incident}
        self._storm_threads[incident] = thread
        return thread

    def _deliver_jira(self, obj: dict[str, Any]) -> int:
        """The repair's steps as comments on its ticket; a storm's repairs share one incident ticket."""
        assert self.jira is not None
        name, status = obj["metadata"]["name"], obj.get("status") or {}
        view = self._view(obj)
        incident = status.get("incident")
        ticket = (status.get("jira") or {}).get("key")
        if not ticket:
            ticket = self._incident_ticket(obj) if incident else self.jira.ensure_ticket(view)
            self._patch(name, {"jira": {"key": ticket, "url": self.jira.browse_url(ticket)}})
        cursor = int(delivery_cursor(status, "jira").get("sent") or 0)
        history = status.get("history") or []
        for index in range(cursor, len(history)):
            self.jira.comment_step(ticket, view, history_entry(history[index]), name_node=bool(incident))
            self._patch(name, {"deliveries": {"jira": {"sent": index + 1}}})
        phase = status.get("phase")
        if delivery_cursor(status, "jira").get("phase") != phase:
            if phase == Phase.SUCCEEDED.value and not incident:  # an incident's ticket is closed by a human
                self.jira.resolve(ticket, view=view)
            elif phase == Phase.QUARANTINED.value:
                self.jira.escalate_quarantine(ticket, view)
            self._patch(name, {"deliveries": {"jira": {"phase": phase}}})
        return len(history) - cursor

    def _incident_ticket(self, obj: Mapping[str, Any]) -> str:
        """The storm's one ticket: held by a member repair already (after a restart), else found or made once."""
        assert self.jira is not None
        incident = str((obj.get("status") or {}).get("incident"))
        if incident in self._incident_tickets:
            return self._incident_tickets[incident]
        members = self._incident_members(incident)
        known = stored_by_member(members, "jira", "key")
        if known:
            key = str(known["key"])
        else:
            detail = str((obj.get("status") or {}).get("message") or "")
            key = self.jira.ensure_incident_ticket(incident, member_nodes(members, obj), detail)
        self._incident_tickets[incident] = key
        return key

    # --- plumbing

    def _incident_members(self, incident: str) -> list[Mapping[str, Any]]:
        return [r for r in self.repairs() if (r.get("status") or {}).get("incident") == incident]

    def _view(self, obj: Mapping[str, Any]) -> RepairView:
        return RepairView.from_resource(obj, runbook_base_url=self.runbook_base_url)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return as_object(client.CustomObjectsApi(self.api).get_cluster_custom_object(GROUP, VERSION, PLURAL, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _patch(self, name: str, status: Mapping[str, Any]) -> None:
        body = {"status": dict(status)}
        client.CustomObjectsApi(self.api).patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, body)

    def _loop(self, target: str) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due(target)
            except Exception:  # a notification problem must never stop the next pass
                log.exception("notification pass failed target=%s; retrying", target)
            self._stop.wait(self.interval)


@dataclass(frozen=True, slots=True)
class ChatEndpoints:
    """Where Slack and Jira answer and how to log in; from the environment (Secrets) or the sandbox."""

    slack_token: str | None = None
    slack_api_url: str | None = None
    jira_url: str | None = None
    jira_token: str | None = None
    jira_user: str | None = None
    jira_password: str | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> ChatEndpoints:
        return cls(
            slack_token=env.get("REPAIRBOT_SLACK_TOKEN") or env.get("SLACK_BOT_TOKEN"),
            slack_api_url=env.get("REPAIRBOT_SLACK_API_URL"),
            jira_url=env.get("REPAIRBOT_JIRA_URL"),
            jira_token=env.get("REPAIRBOT_JIRA_TOKEN"),
            jira_user=env.get("REPAIRBOT_JIRA_USER"),
            jira_password=env.get("REPAIRBOT_JIRA_PASSWORD"),
        )


def build_notifiers(policy: Policy, endpoints: ChatEndpoints) -> tuple[SlackNotifier | None, JiraNotifier | None]:
    """Slack when the policy names a channel and a token is there; Jira when it names a project and a server."""
    slack_policy, jira_policy = policy.notifications.slack, policy.notifications.jira
    slack = None
    if slack_policy.channel and endpoints.slack_token:
        slack = SlackNotifier(
            endpoints.slack_token, slack_policy.channel, base_url=endpoints.slack_api_url, on_call=slack_policy.on_call
        )
    jira = None
    if jira_policy.project and endpoints.jira_url:
        basic = (
            (endpoints.jira_user, endpoints.jira_password) if endpoints.jira_user and endpoints.jira_password else None
        )
        jira = JiraNotifier(
            endpoints.jira_url,
            project=jira_policy.project,
            issue_type=jira_policy.issue_type,
            labels=jira_policy.labels,
            done_transition=jira_policy.done_transition,
            hardware_assignee=jira_policy.hardware_assignee,
            token=None if basic else endpoints.jira_token,
            basic=basic,
        )
    return slack, jira
