"""One Jira ticket per repair: found again before it is ever created, commented per step, resolved or escalated.

Built on the ``jira`` library (REST v2, plain-string bodies), which talks to
Server/Data Center and Cloud alike: it reads ``deploymentType`` from
``serverInfo`` when the client is built, and RepairBot searches with
``enhanced_search_issues`` (``/search/jql``) on Cloud, which removed
``/search`` (410), and with ``search_issues`` (``/search``) on Server/DC,
which has no ``/search/jql`` (REFERENCE.md §7.2). The client is built lazily,
inside the retry, so a Jira that is down at startup does not stop the operator.

*What Jira refuses is fitted first* (notify/jira_limits.py): a description or
comment over 32,767 characters is cut at a line and the full text attached;
labels are capped at 255 characters and stay unique. *What a project's
screens refuse is asked for one field at a time*: the quarantine's priority
and assignee are two edits, so one off the edit screen does not stop the
other or the comment, and each refusal comes back to be recorded. The closing
comment is its own request, never part of the transition: Jira drops a
comment sent inside a transition that has no screen.

*Never a duplicate*: a ticket is looked up by the key stored in the GPURepair
status, else by JQL on its labels (``repairbot``, ``node-<node>``,
``repair-<repair name>``), and only then created — and that whole
find-or-create is one retried unit, so a create that timed out after Jira
stored it is found on the next attempt instead of made twice. Cloud's search
is eventually consistent, so keys this process created are also cached.

Retries (tenacity: exponential backoff with jitter, bounded; Jira's own
``Retry-After`` first) cover 5xx, 429, 409 and connection errors; the library's
own retry loop is switched off so there is one policy. Other 4xx are refusals a
retry cannot change. Failures surface as :class:`NotifyError` (``retryable``
saying which kind) for the outbox.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import requests
from jira import JIRA, JIRAError
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from repairbot.catalog.xid import XidCatalog
from repairbot.model import HistoryEntry
from repairbot.notify.errors import NotifyError, jira_retryable, retry_after_seconds
from repairbot.notify.jira_limits import Attachment, Fitted, fit_text, jira_label, with_attachment_note
from repairbot.notify.messages import (
    MAX_STORM_NODES_IN_TICKET,
    StormView,
    jira_comment,
    jira_description,
    jira_incident_description,
    jira_incident_summary,
    jira_quarantine,
    jira_resolution,
    jira_summary,
)
from repairbot.notify.view import RepairView

T = TypeVar("T")
_SAID_MEMORY = 1024  # (ticket, comment) pairs remembered so a retried step does not say the same thing twice


def sanitize_label(text: str) -> str:
    """A label Jira takes: ``[A-Za-z0-9_.-]`` (no spaces), at most 255 characters, unique per ``text``."""
    return jira_label(text)


def ticket_labels(base: Sequence[str], node: str, repair: str) -> list[str]:
    """The labels that identify a repair's ticket: the policy's, plus ``repairbot``, node and repair."""
    labels = [sanitize_label(label) for label in base]
    labels += ["repairbot", sanitize_label(f"node-{node}"), sanitize_label(f"repair-{repair}")]
    return list(dict.fromkeys(labels))


def dedupe_jql(project: str, node: str, repair: str) -> str:
    """All tickets for one repair, whatever their status: a resolved ticket is still *the* ticket."""
    node_label = sanitize_label(f"node-{node}")
    repair_label = sanitize_label(f"repair-{repair}")
    return (
        f'project = "{project}" AND labels = "repairbot" AND labels = "{node_label}" '
        f'AND labels = "{repair_label}" ORDER BY created ASC'
    )


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, JIRAError):
        return jira_retryable(error.status_code)
    return isinstance(error, requests.ConnectionError | requests.Timeout)


def _retry_after(error: BaseException | None) -> float | None:
    """Jira's ``Retry-After`` on a 429 (or 503), in seconds, if it sent one."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    return retry_after_seconds(headers.get("Retry-After"))


class WaitRetryAfter(wait_base):
    """Wait what Jira's ``Retry-After`` says when it says it (capped), else fall back to ``fallback``."""

    def __init__(self, fallback: wait_base, cap: float = 60.0) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        told = _retry_after(outcome.exception() if outcome is not None else None)
        return min(told, self.cap) if told is not None else float(self.fallback(retry_state))


class JiraNotifier:
    """Tickets in ``project`` for repairs; quarantines go to ``hardware_assignee``."""

    def __init__(
        self,
        server: str,
        *,
        project: str,
        issue_type: str = "Task",
        labels: Sequence[str] = ("repairbot", "gpu"),
        done_transition: str = "Done",
        hardware_assignee: str | None = None,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        escalation_priority: str = "Highest",
        catalog: XidCatalog | None = None,
        attempts: int = 4,
        wait: wait_base | None = None,
        timeout: float = 15,
    ) -> None:
        if token is not None and basic is not None:
            raise ValueError("Jira auth: give a token or basic credentials, not both")
        self.server = server.rstrip("/")
        self.project = project
        self.issue_type = issue_type
        self.labels = tuple(labels)
        self.done_transition = done_transition
        self.hardware_assignee = hardware_assignee
        self.escalation_priority = escalation_priority
        self._token = token
        self._basic = basic
        self._catalog = catalog
        self._attempts = attempts
        self._wait = WaitRetryAfter(wait or wait_exponential_jitter(multiplier=0.5, max=8, jitter=0.5))
        self._timeout = timeout
        self._client: JIRA | None = None
        self._created: dict[str, str] = {}
        self._said: OrderedDict[tuple[str, str], str] = OrderedDict()

    @property
    def client(self) -> JIRA:
        """The library client, built on first use (it calls ``serverInfo``, which fails while Jira is down)."""
        if self._client is None:
            self._client = JIRA(
                server=self.server,
                token_auth=self._token,
                basic_auth=self._basic,
                max_retries=0,
                timeout=int(self._timeout),
            )
        return self._client

    @property
    def login(self) -> str:
        """How this notifier logs in: ``basic`` (user or Cloud e-mail + password or API token) or ``token`` (PAT)."""
        return "basic" if self._basic is not None else "token" if self._token is not None else "anonymous"

    @property
    def is_cloud(self) -> bool:
        """What ``serverInfo`` said: ``deploymentType`` Cloud (else Server or Data Center)."""
        return getattr(self.client, "deploymentType", None) == "Cloud"

    def browse_url(self, key: str) -> str:
        return f"{self.server}/browse/{key}"

    # ------------------------------------------------------------ operations

    def ensure_ticket(self, view: RepairView) -> str:
        """The repair's ticket key: the stored one, else one found by labels, else a new ticket.

        A description over Jira's limit goes in cut, with the full text attached (once) after the find-or-create.
        """
        description = fit_text(jira_description(view, catalog=self._catalog), stem="description")
        key = self._retry("ensure_ticket", lambda: self._find_or_create(view, description.text))
        if description.attachment is not None:
            self._attach(key, description.attachment, replace=False)
        return key

    def find_ticket(self, view: RepairView) -> str | None:
        """The repair's existing ticket, if any, without creating one."""
        return self._retry("find_ticket", lambda: self._find(view))

    def comment(self, key: str, text: str) -> str:
        """Add a comment; returns its id (for the outbox's ``external``).

        A text over Jira's limit is cut at a line, and the full text is attached first (once, by its hash), so a
        long comment is never refused and nothing in it is lost.
        """
        fitted = fit_text(text, stem="comment")
        if fitted.attachment is not None:
            self._attach(key, fitted.attachment, replace=False)
        return self._retry("comment", lambda: str(self.client.add_comment(key, fitted.text).id))

    def comment_step(self, key: str, view: RepairView, entry: HistoryEntry, *, name_node: bool = False) -> str:
        return self.comment(key, jira_comment(view, entry, name_node=name_node))

    def ensure_incident_ticket(self, storm: StormView) -> str:
        """One ticket for a storm, shared by its repairs; found by its ``incident-<id>`` label before any create."""
        description = self._incident_description(storm)
        key = self._retry("ensure_incident_ticket", lambda: self._find_or_create_incident(storm, description.text))
        if description.attachment is not None:
            self._attach(key, description.attachment, replace=True)
        return key

    def update_incident(self, key: str, storm: StormView) -> None:
        """Rewrite the storm ticket's summary and description as members join and end (count, phases, nodes)."""
        description = self._incident_description(storm)
        if description.attachment is not None:
            self._attach(key, description.attachment, replace=True)
        fields = {"summary": jira_incident_summary(storm), "description": description.text}
        self._retry("update_incident", lambda: self.client.issue(key, fields="summary").update(fields=fields))

    def resolve(self, key: str, text: str | None = None, *, view: RepairView | None = None) -> None:
        """Post the closing comment, then move the ticket through the configured done transition.

        Two requests, not a comment inside the transition: Jira drops (204) a comment sent with a transition that
        has no screen, and most workflows' "Done" has none. A retry does not post the comment twice.
        """
        body = text if text is not None else (jira_resolution(view) if view is not None else "Resolved by RepairBot.")
        self._say_once(key, body)
        self._retry("resolve", lambda: self._transition(key, self.done_transition))

    def escalate_quarantine(self, key: str, view: RepairView, *, assignee: str | None = None) -> list[NotifyError]:
        """Raise priority, assign to hardware, and say what to replace: the node is out until a part is swapped.

        Priority and assignee are separate edits, because a project's edit screen may lack either (Jira then
        refuses the whole edit); the comment is posted whatever they come to. Returns the edits Jira refused for
        good, each to be recorded; a transient failure raises, to be retried whole (the edits are idempotent,
        the comment is said once).
        """
        who = assignee or self.hardware_assignee
        priority = {"priority": {"name": self.escalation_priority}}
        edits: list[tuple[str, dict[str, Any]]] = [("escalate-priority", priority)]
        if who:
            edits.append(("escalate-assignee", {"assignee": {"accountId": who} if self.is_cloud else {"name": who}}))
        refused: list[NotifyError] = []
        for operation, fields in edits:
            try:
                self._retry(operation, partial(self._edit, key, fields))
            except NotifyError as error:
                if error.retryable:
                    raise
                refused.append(error)
        self._say_once(key, jira_quarantine(view, catalog=self._catalog))
        return refused

    # ------------------------------------------------------------ internals

    def _find(self, view: RepairView) -> str | None:
        if view.jira_key and self._exists(view.jira_key):
            return view.jira_key
        return self._known(view.name, dedupe_jql(self.project, view.node, view.name))

    def _find_or_create(self, view: RepairView, description: str) -> str:
        found = self._find(view)
        if found:
            return found
        return self._create(view.name, {
            "summary": jira_summary(view),
            "description": description,
            "labels": ticket_labels(self.labels, view.node, view.name),
        })  # fmt: skip

    def _incident_description(self, storm: StormView) -> Fitted:
        """The storm's description within Jira's limit; every member, with its phase, attached when it lists fewer."""
        text = jira_incident_description(storm)
        if len(storm.members) <= MAX_STORM_NODES_IN_TICKET:
            return fit_text(text, stem=f"{sanitize_label(storm.incident)}-description")
        roster = "\n".join(f"{node}\t{phase}" for node, phase in storm.members) + "\n"
        nodes = Attachment.of(f"{sanitize_label(storm.incident)}-nodes", roster)
        return with_attachment_note(text, nodes, f"The full list of {len(storm.members)} nodes and their phases")

    def _find_or_create_incident(self, storm: StormView, description: str) -> str:
        label = sanitize_label(f"incident-{storm.incident}")
        jql = f'project = "{self.project}" AND labels = "repairbot" AND labels = "{label}" ORDER BY created ASC'
        found = self._known(label, jql)
        if found:
            return found
        return self._create(label, {
            "summary": jira_incident_summary(storm),
            "description": description,
            "labels": list(dict.fromkeys([*(sanitize_label(x) for x in self.labels), "repairbot", label])),
        })  # fmt: skip

    def _known(self, cache_key: str, jql: str) -> str | None:
        """A ticket this process made (Cloud's search lags), else the oldest one ``jql`` finds.

        Cloud answers only ``/search/jql`` (``enhanced_search_issues``); Server/DC only ``/search``.
        """
        cached = self._created.get(cache_key)
        if cached:
            return cached
        if self.is_cloud:
            issues = self.client.enhanced_search_issues(jql, maxResults=1, fields="summary,labels")
        else:
            issues = self.client.search_issues(jql, maxResults=1, fields="summary,labels")
        return str(issues[0].key) if issues else None

    def _edit(self, key: str, fields: dict[str, Any]) -> None:
        self.client.issue(key, fields="summary").update(fields=fields)

    def _say_once(self, key: str, text: str) -> str:
        """Comment, unless this process already said exactly this on this ticket (a retried step)."""
        said = (key, hashlib.sha256(text.encode()).hexdigest())
        if said not in self._said:
            self._said[said] = self.comment(key, text)
            while len(self._said) > _SAID_MEMORY:
                self._said.popitem(last=False)
        return self._said[said]

    def _attach(self, key: str, attachment: Attachment, *, replace: bool) -> None:
        self._retry("attach", lambda: self._upload_missing(key, attachment, replace=replace))

    def _upload_missing(self, key: str, attachment: Attachment, *, replace: bool) -> None:
        """Upload unless the ticket holds this file already (its name hashes its content); with ``replace``,
        delete the older versions of the same file, so a storm rewritten N times keeps one node list."""
        held = list(getattr(self.client.issue(key, fields="attachment").fields, "attachment", None) or [])
        if not any(str(a.filename) == attachment.filename for a in held):
            self.client.add_attachment(key, io.BytesIO(attachment.data), filename=attachment.filename)
        if replace:
            for old in held:
                name = str(old.filename)
                if name != attachment.filename and name.startswith(f"{attachment.stem}-"):
                    self.client.delete_attachment(str(old.id))

    def _create(self, cache_key: str, fields: dict[str, Any]) -> str:
        issue = self.client.create_issue(
            fields={"project": {"key": self.project}, "issuetype": {"name": self.issue_type}, **fields}, prefetch=False
        )
        self._created[cache_key] = str(issue.key)
        return str(issue.key)

    def _exists(self, key: str) -> bool:
        try:
            self.client.issue(key, fields="summary")
        except JIRAError as error:
            if error.status_code == 404:
                return False
            raise
        return True

    def _transition(self, key: str, name: str) -> None:
        transitions = self.client.transitions(key)
        wanted = name.casefold()
        match = next((t for t in transitions if str(t["name"]).casefold() == wanted), None)
        if match is None:
            names = ", ".join(repr(t["name"]) for t in transitions) or "none"
            raise NotifyError(
                "jira", "resolve", "no-such-transition",
                f"{key} has no transition {name!r} from its current status (available: {names}); "
                "set jira.doneTransition in the policy",
                retryable=False,
            )
        self.client.transition_issue(key, str(match["id"]))

    def _retry(self, operation: str, call: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            reraise=False,
        )
        try:
            return retrying(call)
        except RetryError as error:
            last = error.last_attempt.exception()
            raise self._notify_error(operation, last, attempts=self._attempts) from last
        except NotifyError:
            raise
        except (JIRAError, requests.RequestException) as error:
            raise self._notify_error(operation, error, attempts=1) from error

    def _notify_error(self, operation: str, error: BaseException | None, *, attempts: int) -> NotifyError:
        if isinstance(error, JIRAError):
            code = f"http-{error.status_code}" if error.status_code else "error"
            detail = f"{error.text or error} after {attempts} attempt(s)"
            self._client = None if error.status_code is None else self._client
            return NotifyError(
                "jira", operation, code, detail, retryable=_is_transient(error), retry_after=_retry_after(error)
            )
        self._client = None  # a connection error may have come from building the client: rebuild next time
        return NotifyError("jira", operation, "connection-error", f"{error} after {attempts} attempt(s)")
