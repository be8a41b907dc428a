"""A fake Jira REST server over real HTTP, answering the real ``jira`` client library.

It serves what RepairBot's tickets need — ``serverInfo``, ``field``, issue
create/get/edit, comments, attachments, transitions, assignee, search — and
holds each request to the rules of a configured :class:`JiraProject`
(sim/repairbot_sim/jira_project.py): fields off the create/edit/transition screen,
unknown issue types, priorities and users, text over 32,767 characters,
summaries over 255, labels with spaces or over 255 characters all answer 400
with Jira's error body; a comment inside a transition without a screen is
dropped with 204, as Jira drops it.

Two deployments, switched by ``cloud`` (``deploymentType`` in ``serverInfo``,
which the client reads to pick its code paths):

* **Server/Data Center** serves ``/rest/api/2/search`` (``startAt`` paging) and
  has no ``/search/jql``; it logs in with basic auth or a bearer PAT.
* **Cloud** answers the removed ``/rest/api/{2,3}/search`` with 410 and serves
  ``/rest/api/{2,3}/search/jql`` (``nextPageToken`` paging, only issue ids
  unless ``fields`` asks for more; unbounded JQL refused); it logs in with
  e-mail + API token over basic auth only.

JQL is understood only as far as RepairBot writes it: ``AND``-joined
``project = X``, ``labels = X``, ``status``/``statusCategory`` clauses, and
``ORDER BY created``. Every request is recorded (``GET /_recorded``); ``down``
(or ``POST /_control {"down": true}``) answers 503 to everything else,
``rate_limit(n, retry_after)`` answers 429 with ``Retry-After`` to the next
``n``, and ``refuse(operation, status, message, containing=…)`` answers one
kind of request with a Jira error (rules the fake does not model: a
validator, a permission).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from repairbot_sim.jira_project import (
    STATUS_CATEGORY,
    FieldErrors,
    FieldRules,
    JiraProject,
    JiraTransition,
    not_on_screen,
    workflow_of,
)
from repairbot_sim.jira_search import JqlError, matching, page_start, wanted_fields
from repairbot_sim.serving import Listening

ATTACHMENT_LIMIT = 10 * 1024 * 1024  # Jira Server's default attachment size limit (10 MB)
MAX_RESULTS_CAP = 5000  # /search/jql: the most issues one page returns
_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)


@dataclass(frozen=True, slots=True)
class JiraRefusal:
    """Answer ``operation`` (``create``, ``update``, ``comment``, ``transition``, ``attachment``) with ``status``
    when the request body contains ``containing``."""

    operation: str
    status: int
    message: str
    containing: str = ""


@dataclass(slots=True)
class SimIssue:
    """A ticket as the fake holds it."""

    id: str
    key: str
    fields: dict[str, Any]
    comments: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    status: str = "To Do"

    @property
    def issue_type(self) -> str:
        return str((self.fields.get("issuetype") or {}).get("name", ""))


class JiraSim(Listening):
    """One fake Jira holding one project. ``cloud`` switches ``deploymentType``, search endpoints and login."""

    def __init__(
        self,
        *,
        cloud: bool = False,
        user: str | None = None,
        password: str = "api-token",
        token: str | None = "jira-pat",
        project: JiraProject | None = None,
    ) -> None:
        self.cloud = cloud
        self.user = user if user is not None else ("repairbot@example.com" if cloud else "repairbot")
        self.password, self.token = password, token
        self.project = project or JiraProject()
        self.down = False
        self.attachment_limit = ATTACHMENT_LIMIT
        self._rate_limited = 0
        self._retry_after = 1
        self.recorded: list[dict[str, Any]] = []
        self.issues: dict[str, SimIssue] = {}
        self.refusals: list[JiraRefusal] = []
        self._ids = itertools.count(10001)
        self.url: str | None = None

    @property
    def workflow(self) -> dict[str, list[JiraTransition]]:
        return self.project.workflow

    @workflow.setter
    def workflow(self, spec: dict[str, list[Any]]) -> None:
        """Status → transitions, each a :class:`JiraTransition` or ``(id, name, to[, screen fields])``."""
        self.project.workflow = workflow_of(spec)

    @property
    def rules(self) -> FieldRules:
        return FieldRules(self.project, self.cloud)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.attachment_limit + 1024 * 1024)
        app.router.add_get("/_recorded", self._recorded)
        app.router.add_post("/_control", self._control)
        r = "/rest/api/2"
        app.router.add_get(f"{r}/serverInfo", self._server_info)
        app.router.add_get(f"{r}/field", self._fields)
        app.router.add_post(f"{r}/issue", self._create)
        app.router.add_get(f"{r}/issue/{{key}}", self._get)
        app.router.add_put(f"{r}/issue/{{key}}", self._update)
        app.router.add_put(f"{r}/issue/{{key}}/assignee", self._assign)
        app.router.add_get(f"{r}/issue/{{key}}/comment", self._comments)
        app.router.add_post(f"{r}/issue/{{key}}/comment", self._comment)
        app.router.add_post(f"{r}/issue/{{key}}/attachments", self._attach)
        app.router.add_delete(f"{r}/attachment/{{id}}", self._delete_attachment)
        app.router.add_get(f"{r}/issue/{{key}}/transitions", self._transitions)
        app.router.add_post(f"{r}/issue/{{key}}/transitions", self._transition)
        for version in ("2", "3"):
            for method in ("GET", "POST"):
                app.router.add_route(method, f"/rest/api/{version}/search", self._search_v2)
                app.router.add_route(method, f"/rest/api/{version}/search/jql", self._search_jql)
        self.url = await self._listen(app, host, port)
        return self.url

    def rate_limit(self, calls: int, retry_after: int = 1) -> None:
        """Answer the next ``calls`` requests with 429 and ``Retry-After: retry_after``, as Jira Cloud does."""
        self._rate_limited, self._retry_after = calls, retry_after

    def refuse(self, operation: str, status: int, message: str, *, containing: str = "") -> None:
        """From now on, answer ``operation`` requests whose body contains ``containing`` with ``status``."""
        self.refusals.append(JiraRefusal(operation, status, message, containing))

    def _refused(self, operation: str, body: Any) -> None:
        text = json.dumps(body)
        for rule in self.refusals:
            if rule.operation == operation and rule.containing in text:
                raise _Refusal(rule.status, rule.message)

    def comments_of(self, key: str) -> list[str]:
        return [c["body"] for c in self.issues[key].comments]

    def attachments_of(self, key: str) -> dict[str, bytes]:
        """The issue's attachments by file name, as they were uploaded."""
        return {a["filename"]: a["data"] for a in self.issues[key].attachments}

    # ------------------------------------------------------------ plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_"):
            return await handler(request)
        raw = await request.read()
        body: Any = None
        if raw and request.content_type == "multipart/form-data":
            body = {"multipart": len(raw)}
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        record: dict[str, Any] = {"method": request.method, "path": request.path, "body": body,
                                  "query": dict(request.query)}  # fmt: skip
        self.recorded.append(record)
        if self.down:
            response: web.StreamResponse = _errors(503, "Jira is down (simulated)")
        elif self._rate_limited > 0:
            self._rate_limited -= 1
            response = _errors(429, "Rate limit exceeded.")
            response.headers["Retry-After"] = str(self._retry_after)
        elif not self._authorized(request.headers.get("Authorization", "")):
            response = _errors(401, "You are not authenticated. Authentication required to perform this operation.")
        else:
            try:
                response = await handler(request)
            except _Refusal as refusal:
                response = refusal.response
            except FieldErrors as refused:
                response = _errors(400, "", refused.errors)
            except JqlError as refused:
                response = _errors(400, str(refused))
        record["status"] = response.status
        return response

    def _authorized(self, header: str) -> bool:
        """Cloud: basic auth with the account's e-mail and an API token only. Server/DC: basic or a bearer PAT."""
        if not self.cloud and self.token is not None and header == f"Bearer {self.token}":
            return True
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"

    def _issue(self, request: web.Request) -> SimIssue:
        ident = request.match_info["key"]
        issue = self.issues.get(ident) or next((i for i in self.issues.values() if i.id == ident), None)
        if issue is None:
            raise _Refusal(404, "Issue does not exist or you do not have permission to see it.")
        return issue

    def _issue_json(self, issue: SimIssue, base: str, wanted: set[str] | None = None) -> dict[str, Any]:
        fields = dict(issue.fields)
        fields["status"] = {"name": issue.status, "statusCategory": {"key": STATUS_CATEGORY[issue.status]}}
        fields["comment"] = {"comments": issue.comments, "total": len(issue.comments)}
        fields["attachment"] = [{k: v for k, v in a.items() if k != "data"} for a in issue.attachments]
        if wanted is not None and not wanted & {"*all", "*navigable"}:
            fields = {k: v for k, v in fields.items() if k in wanted}
        return {"id": issue.id, "key": issue.key, "self": f"{base}/rest/api/2/issue/{issue.id}", "fields": fields}

    # ------------------------------------------------------------ handlers

    async def _recorded(self, request: web.Request) -> web.Response:
        return web.json_response(self.recorded)

    async def _control(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "down" in data:
            self.down = bool(data["down"])
        if "cloud" in data:
            self.cloud = bool(data["cloud"])
        if "refuse" in data:
            rule = data["refuse"]
            self.refuse(str(rule["operation"]), int(rule.get("status", 400)), str(rule.get("message", "")),
                        containing=str(rule.get("containing", "")))  # fmt: skip
        return web.json_response({"down": self.down, "cloud": self.cloud})

    async def _server_info(self, request: web.Request) -> web.Response:
        base = _base(request)
        if self.cloud:
            return web.json_response({"baseUrl": base, "version": "1001.0.0", "versionNumbers": [1001, 0, 0],
                                      "deploymentType": "Cloud", "serverTitle": "Jira (sim)"})  # fmt: skip
        return web.json_response({"baseUrl": base, "version": "9.12.0", "versionNumbers": [9, 12, 0],
                                  "deploymentType": "Server", "serverTitle": "Jira (sim)"})  # fmt: skip

    async def _fields(self, request: web.Request) -> web.Response:
        names = ["summary", "description", "labels", "priority", "assignee", "status", "issuetype", "project",
                 "comment", "attachment", "reporter"]  # fmt: skip
        return web.json_response([{"id": n, "key": n, "name": n.title(), "custom": False} for n in names])

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._refused("create", body)
        fields = dict(body.get("fields") or {})
        project = (fields.pop("project", None) or {}).get("key")
        if project != self.project.key:
            raise FieldErrors({"project": "valid project is required"})
        issue_type = self.project.issue_type_named(fields.pop("issuetype", None))
        if issue_type is None:
            raise FieldErrors({"issuetype": "The issue type selected is invalid." if self.cloud
                               else "valid issue type is required"})  # fmt: skip
        errors: dict[str, str] = {}
        if "summary" not in fields:
            errors["summary"] = "You must specify a summary of the issue."
        screen = self.project.create_fields(issue_type)
        self.rules.check(fields, screen, errors)
        self.rules.check_update(body.get("update") or {}, screen, errors)
        if errors:
            raise FieldErrors(errors)
        issue_id = str(next(self._ids))
        key = f"{project}-{len(self.issues) + 1}"
        issue = SimIssue(issue_id, key, {**fields, "project": {"key": project}, "issuetype": {"name": issue_type}})
        issue.fields.setdefault("priority", {"name": self.project.default_priority})
        self.issues[key] = issue
        self._apply_update(issue, body.get("update") or {}, _base(request))
        return web.json_response({"id": issue_id, "key": key, "self": f"{_base(request)}/rest/api/2/issue/{issue_id}"},
                                 status=201)  # fmt: skip

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(self._issue_json(self._issue(request), _base(request)))

    async def _update(self, request: web.Request) -> web.Response:
        """Edit: every field and ``update`` verb must be on the issue type's edit screen, or nothing changes."""
        issue = self._issue(request)
        body = await request.json()
        self._refused("update", body)
        fields, update = body.get("fields") or {}, body.get("update") or {}
        errors: dict[str, str] = {}
        screen = self.project.edit_fields(issue.issue_type)
        self.rules.check(fields, screen, errors)
        self.rules.check_update(update, screen, errors)
        if errors:
            raise FieldErrors(errors)
        issue.fields.update(fields)
        self._apply_update(issue, update, _base(request))
        return web.Response(status=204)

    def _apply_update(self, issue: SimIssue, update: dict[str, Any], base: str) -> None:
        for name, operations in update.items():
            for operation in operations or []:
                for verb, value in (operation or {}).items():
                    if name == "comment" and verb == "add":
                        self._add_comment(issue, str(value["body"]), base)
                    elif name == "labels":
                        labels = list(issue.fields.get("labels") or [])
                        values = value if isinstance(value, list) else [value]
                        if verb == "set":
                            labels = list(values)
                        elif verb == "add":
                            labels += [v for v in values if v not in labels]
                        elif verb == "remove":
                            labels = [v for v in labels if v not in values]
                        issue.fields["labels"] = labels
                    elif verb == "set":
                        issue.fields[name] = value

    async def _assign(self, request: web.Request) -> web.Response:
        """``PUT …/assignee`` needs the Assign Issues permission, not the field on the edit screen."""
        issue = self._issue(request)
        who = await request.json()
        errors: dict[str, str] = {}
        self.rules.check({"assignee": who}, frozenset({"assignee"}), errors)
        if errors:
            raise FieldErrors(errors)
        issue.fields["assignee"] = who
        return web.Response(status=204)

    async def _comments(self, request: web.Request) -> web.Response:
        comments = self._issue(request).comments
        return web.json_response({"comments": comments, "total": len(comments), "startAt": 0,
                                  "maxResults": len(comments)})  # fmt: skip

    async def _comment(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        body = await request.json()
        self._refused("comment", body)
        problem = self.rules.comment_problem(body.get("body"))
        if problem:
            raise FieldErrors({"comment": problem})
        return web.json_response(self._add_comment(issue, str(body["body"]), _base(request)), status=201)

    def _add_comment(self, issue: SimIssue, body: str, base: str) -> dict[str, Any]:
        comment_id = str(next(self._ids))
        comment = {"id": comment_id, "body": body, "self": f"{base}/rest/api/2/issue/{issue.id}/comment/{comment_id}"}
        issue.comments.append(comment)
        return comment

    async def _attach(self, request: web.Request) -> web.Response:
        """Jira refuses an upload without ``X-Atlassian-Token: no-check`` (its XSRF guard) and takes the ``file``
        parts of a multipart body."""
        issue = self._issue(request)
        if request.headers.get("X-Atlassian-Token", "").lower() != "no-check":
            return web.Response(status=403, text="XSRF check failed")
        if request.content_type != "multipart/form-data":
            return _errors(415, "Unsupported Media Type")
        raw = await request.read()
        self._refused("attachment", {"size": len(raw)})
        header = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
        made: list[dict[str, Any]] = []
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") != "file":
                continue
            data = part.get_payload(decode=True) or b""
            if len(data) > self.attachment_limit:
                return _errors(413, f"The file exceeds the maximum attachment size of {self.attachment_limit} bytes.")
            attachment_id = str(next(self._ids))
            made.append({"id": attachment_id, "filename": part.get_filename() or "attachment", "size": len(data),
                         "mimeType": part.get_content_type(), "data": data,
                         "self": f"{_base(request)}/rest/api/2/attachment/{attachment_id}"})  # fmt: skip
        if not made:
            return _errors(400, "No file was attached.")
        issue.attachments.extend(made)
        return web.json_response([{k: v for k, v in a.items() if k != "data"} for a in made])

    async def _delete_attachment(self, request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        for issue in self.issues.values():
            kept = [a for a in issue.attachments if a["id"] != wanted]
            if len(kept) < len(issue.attachments):
                issue.attachments = kept
                return web.Response(status=204)
        return _errors(404, f"The attachment with id '{wanted}' does not exist")

    async def _transitions(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        return web.json_response({"transitions": [
            {"id": t.id, "name": t.name, "hasScreen": t.has_screen, "isGlobal": False, "isInitial": False,
             "isConditional": False, "to": {"name": t.to, "statusCategory": {"key": STATUS_CATEGORY[t.to]}}}
            for t in self.workflow.get(issue.status, [])
        ]})  # fmt: skip

    async def _transition(self, request: web.Request) -> web.Response:
        """Fields must be on the transition's screen; a comment inside a transition *without* a screen is dropped
        with 204, as Jira does, while one with a screen is added."""
        issue = self._issue(request)
        body = await request.json()
        self._refused("transition", body)
        wanted = str((body.get("transition") or {}).get("id"))
        match = next((t for t in self.workflow.get(issue.status, []) if t.id == wanted), None)
        if match is None:
            return _errors(400, f"Transition id '{wanted}' is not valid for this issue.")
        screen = match.screen or frozenset()
        fields, update = body.get("fields") or {}, dict(body.get("update") or {})
        if not match.has_screen:
            update.pop("comment", None)  # silently dropped: the transition has nowhere to take it
        errors: dict[str, str] = {}
        self.rules.check(fields, screen, errors)
        self.rules.check_update(update, screen | ({"comment"} if match.has_screen else set()), errors)
        if errors:
            raise FieldErrors(errors)
        issue.status = match.to
        issue.fields.update(fields)
        self._apply_update(issue, update, _base(request))
        return web.Response(status=204)

    async def _search_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        params["fields"] = ",".join(request.query.getall("fields", []))
        if request.method == "POST":
            posted = await request.json()
            if isinstance(posted.get("fields"), list):
                posted["fields"] = ",".join(posted["fields"])
            params.update(posted)
        return params

    async def _search_v2(self, request: web.Request) -> web.Response:
        """Server/DC's search. Jira Cloud removed it (CHANGE-2046): 410 there, for v2 and v3 alike."""
        if self.cloud:
            return _errors(410, _GONE)
        if request.path.startswith("/rest/api/3/"):
            return _errors(404, f"null for uri: {request.path}")
        params = await self._search_params(request)
        issues = matching(self.issues.values(), str(params.get("jql", "")), bounded=False)
        start, limit = int(params.get("startAt", 0)), int(params.get("maxResults", 50))
        wanted = wanted_fields(params.get("fields"))
        page = issues[start : start + limit]
        return web.json_response({"startAt": start, "maxResults": limit, "total": len(issues),
                                  "issues": [self._issue_json(i, _base(request), wanted) for i in page]})  # fmt: skip

    async def _search_jql(self, request: web.Request) -> web.Response:
        """Cloud's enhanced search: ``nextPageToken`` paging, no ``total``, only ids unless ``fields`` names more."""
        if not self.cloud:
            return _errors(404, f"null for uri: {request.path}")
        params = await self._search_params(request)
        issues = matching(self.issues.values(), str(params.get("jql", "")), bounded=True)
        limit = max(1, min(int(params.get("maxResults", 50)), MAX_RESULTS_CAP))
        start = page_start(params.get("nextPageToken"))
        page = issues[start : start + limit]
        wanted = wanted_fields(params.get("fields"))
        base = _base(request)
        found = [self._issue_json(i, base, wanted) if wanted else {"id": i.id} for i in page]
        answer: dict[str, Any] = {"issues": found, "isLast": start + limit >= len(issues)}
        if not answer["isLast"]:
            answer["nextPageToken"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return web.json_response(answer)


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _errors(status: int, message: str, errors: dict[str, str] | None = None) -> web.Response:
    """Jira's error shape: ``{"errorMessages": [...], "errors": {field: message}}``."""
    return web.json_response({"errorMessages": [message] if message else [], "errors": errors or {}}, status=status)


class _Refusal(Exception):
    """Raised deep in a handler to answer with a Jira error; the middleware turns it into the response."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message or str(errors))
        self.response = _errors(status, message, errors)


__all__ = ["JiraProject", "JiraRefusal", "JiraSim", "JiraTransition", "SimIssue", "not_on_screen"]
