"""A fake Jira REST v2 server over real HTTP, answering the real ``jira`` client library.

It serves what RepairBot's tickets need — ``serverInfo``, ``field``, issue
create/get/update, comments, transitions, assignee — and both searches:
``/rest/api/2/search`` in Server/DC mode (Cloud answers 410 there, as Atlassian
removed it) and ``/rest/api/2/search/jql`` in Cloud mode (404 on Server). The
client picks its path from ``deploymentType`` in ``serverInfo``, so the mode
switch exercises the real library's branch.

JQL is understood only as far as RepairBot writes it: ``AND``-joined
``project = X``, ``labels = X`` and ``statusCategory != Done`` clauses, and
``ORDER BY created``. Auth is basic or bearer against the configured
credentials. Text fields are held to Jira's limits: a comment or description over
32,767 characters, a summary over 255, or an empty comment answers 400 with
Jira's field error. The workflow is the instance's (``workflow``: status →
transitions), so a test can give it the shape of a real project's, e.g. one
without ``Done``. Every request is recorded (``GET /_recorded``); ``down = True``
(or ``POST /_control {"down": true}``) answers 503 to everything else,
``rate_limit(n, retry_after)`` answers 429 with ``Retry-After`` to the next ``n``, and
``refuse(operation, status, message, containing=…)`` answers one kind of
request with a Jira error (rules of a real instance the fake does not model:
a field a screen lacks, a validator, a permission).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from repairbot.sim.serving import serve

WORKFLOW = {
    "To Do": [("11", "Start Progress", "In Progress"), ("21", "Done", "Done")],
    "In Progress": [("21", "Done", "Done"), ("31", "Stop Progress", "To Do")],
    "Done": [("41", "Reopen", "To Do")],
}
TEXT_LIMIT = 32_767
SUMMARY_LIMIT = 255
STATUS_CATEGORY = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}
_CLAUSE = re.compile(r'(\w+)\s*(!=|=)\s*"?([^"\s]+)"?', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class JiraRefusal:
    """Answer ``operation`` (``create``, ``update``, ``comment``, ``transition``) with ``status`` when the request
    body contains ``containing``."""

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
    status: str = "To Do"


class JiraSim:
    """One fake Jira. ``cloud`` switches ``deploymentType`` and which search endpoint exists."""

    def __init__(
        self,
        *,
        cloud: bool = False,
        user: str = "repairbot",
        password: str = "api-token",
        token: str | None = "jira-pat",
    ) -> None:
        self.cloud = cloud
        self.user, self.password, self.token = user, password, token
        self.down = False
        self._rate_limited = 0
        self._retry_after = 1
        self.recorded: list[dict[str, Any]] = []
        self.issues: dict[str, SimIssue] = {}
        self.workflow: dict[str, list[tuple[str, str, str]]] = {k: list(v) for k, v in WORKFLOW.items()}
        self.refusals: list[JiraRefusal] = []
        self._ids = itertools.count(10001)
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._middleware])
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
        app.router.add_get(f"{r}/issue/{{key}}/transitions", self._transitions)
        app.router.add_post(f"{r}/issue/{{key}}/transitions", self._transition)
        app.router.add_get(f"{r}/search", self._search_v2)
        app.router.add_get(f"{r}/search/jql", self._search_jql)
        app.router.add_post(f"{r}/search/jql", self._search_jql)
        served = await serve(app, host, port)
        self._runner, self.url = served.runner, served.url
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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

    # ------------------------------------------------------------ plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_"):
            return await handler(request)
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        record: dict[str, Any] = {"method": request.method, "path": request.path, "body": body,
                                  "query": dict(request.query)}
        self.recorded.append(record)
        if self.down:
            response: web.StreamResponse = _errors(503, "Jira is down (simulated)")
        elif self._rate_limited > 0:
            self._rate_limited -= 1
            response = _errors(429, "Rate limit exceeded.")
            response.headers["Retry-After"] = str(self._retry_after)
        elif not self._authorized(request.headers.get("Authorization", "")):
            response = _errors(401, "You are not authenticated")
        else:
            try:
                response = await handler(request)
            except _Refusal as refusal:
                response = refusal.response
        record["status"] = response.status
        return response

    def _authorized(self, header: str) -> bool:
        if self.token is not None and header == f"Bearer {self.token}":
            return True
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"

    def _issue(self, request: web.Request) -> SimIssue:
        issue = self.issues.get(request.match_info["key"])
        if issue is None:
            raise _Refusal(404, "Issue does not exist or you do not have permission to see it.")
        return issue

    def _issue_json(self, issue: SimIssue, base: str) -> dict[str, Any]:
        fields = dict(issue.fields)
        fields["status"] = {"name": issue.status, "statusCategory": {"key": STATUS_CATEGORY[issue.status]}}
        fields["comment"] = {"comments": issue.comments, "total": len(issue.comments)}
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
                                      "deploymentType": "Cloud", "serverTitle": "Jira (sim)"})
        return web.json_response({"baseUrl": base, "version": "9.12.0", "versionNumbers": [9, 12, 0],
                                  "deploymentType": "Server", "serverTitle": "Jira (sim)"})

    async def _fields(self, request: web.Request) -> web.Response:
        names = ["summary", "description", "labels", "priority", "assignee", "status", "issuetype", "project"]
        return web.json_response([{"id": n, "key": n, "name": n.title(), "custom": False} for n in names])

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._refused("create", body)
        fields = body.get("fields") or {}
        _check_text_fields(fields)
        project = (fields.get("project") or {}).get("key")
        if not project or not fields.get("summary") or not (fields.get("issuetype") or {}).get("name"):
            return _errors(400, "project, issuetype and summary are required")
        labels = fields.get("labels") or []
        if any(" " in label for label in labels):
            return _errors(400, "labels cannot contain spaces")
        issue_id = str(next(self._ids))
        key = f"{project}-{len([k for k in self.issues if k.startswith(project + '-')]) + 1}"
        self.issues[key] = SimIssue(issue_id, key, dict(fields))
        self.issues[key].fields.setdefault("priority", {"name": "Medium"})
        return web.json_response({"id": issue_id, "key": key, "self": f"{_base(request)}/rest/api/2/issue/{issue_id}"},
                                 status=201)

    def _by_key_or_id(self, ident: str) -> SimIssue | None:
        return self.issues.get(ident) or next((i for i in self.issues.values() if i.id == ident), None)

    async def _get(self, request: web.Request) -> web.Response:
        issue = self._by_key_or_id(request.match_info["key"])
        if issue is None:
            return _errors(404, "Issue does not exist or you do not have permission to see it.")
        return web.json_response(self._issue_json(issue, _base(request)))

    async def _update(self, request: web.Request) -> web.Response:
        issue = self._by_key_or_id(request.match_info["key"])
        if issue is None:
            return _errors(404, "Issue does not exist")
        body = await request.json()
        self._refused("update", body)
        _check_text_fields(body.get("fields") or {})
        issue.fields.update(body.get("fields") or {})
        return web.Response(status=204)

    async def _assign(self, request: web.Request) -> web.Response:
        self._issue(request).fields["assignee"] = await request.json()
        return web.Response(status=204)

    async def _comments(self, request: web.Request) -> web.Response:
        comments = self._issue(request).comments
        return web.json_response({"comments": comments, "total": len(comments), "startAt": 0,
                                  "maxResults": len(comments)})

    async def _comment(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        body = await request.json()
        self._refused("comment", body)
        text = str(body.get("body", ""))
        _check_comment(text)
        comment = self._add_comment(issue, text, _base(request))
        return web.json_response(comment, status=201)

    def _add_comment(self, issue: SimIssue, body: str, base: str) -> dict[str, Any]:
        comment_id = str(next(self._ids))
        comment = {"id": comment_id, "body": body, "self": f"{base}/rest/api/2/issue/{issue.id}/comment/{comment_id}"}
        issue.comments.append(comment)
        return comment

    async def _transitions(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        return web.json_response({"transitions": [
            {"id": tid, "name": name, "to": {"name": to, "statusCategory": {"key": STATUS_CATEGORY[to]}}}
            for tid, name, to in self.workflow.get(issue.status, [])
        ]})

    async def _transition(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        body = await request.json()
        self._refused("transition", body)
        wanted = str((body.get("transition") or {}).get("id"))
        match = next((t for t in self.workflow.get(issue.status, []) if t[0] == wanted), None)
        if match is None:
            return _errors(400, f"Transition id '{wanted}' is not valid for this issue.")
        comments = [str((change.get("add") or {}).get("body", "")) for change in (body.get("update") or {}).get(
            "comment", [])]  # fmt: skip
        for text in comments:
            _check_comment(text)
        issue.status = match[2]
        for text in comments:
            self._add_comment(issue, text, _base(request))
        return web.Response(status=204)

    def _matching(self, jql: str) -> list[SimIssue]:
        where = re.split(r"\border\s+by\b", jql, flags=re.IGNORECASE)[0]
        found = list(self.issues.values())
        for clause in re.split(r"\s+AND\s+", where.strip(), flags=re.IGNORECASE):
            if not clause:
                continue
            m = _CLAUSE.fullmatch(clause.strip())
            if m is None:
                raise _Refusal(400, f"Error in the JQL Query: cannot read {clause!r}")
            name, op, value = m.group(1).lower(), m.group(2), m.group(3)
            found = [i for i in found if (_value_matches(i, name, value)) == (op == "=")]
        return sorted(found, key=lambda i: int(i.id))

    async def _search_v2(self, request: web.Request) -> web.Response:
        if self.cloud:
            return _errors(410, "The requested API has been removed. Please migrate to /rest/api/2/search/jql.")
        issues = self._matching(request.query.get("jql", ""))
        start = int(request.query.get("startAt", 0))
        limit = int(request.query.get("maxResults", 50))
        page = issues[start : start + limit]
        return web.json_response({"startAt": start, "maxResults": limit, "total": len(issues),
                                  "issues": [self._issue_json(i, _base(request)) for i in page]})

    async def _search_jql(self, request: web.Request) -> web.Response:
        if not self.cloud:
            return _errors(404, "null for uri: /rest/api/2/search/jql")
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            params.update(await request.json())
        issues = self._matching(str(params.get("jql", "")))
        limit = int(params.get("maxResults", 50))
        return web.json_response({"issues": [self._issue_json(i, _base(request)) for i in issues[:limit]],
                                  "isLast": True})


def _value_matches(issue: SimIssue, name: str, value: str) -> bool:
    if name == "project":
        return issue.key.startswith(f"{value}-")
    if name == "labels":
        return value in (issue.fields.get("labels") or [])
    if name == "statuscategory":
        return STATUS_CATEGORY[issue.status] == {"done": "done", "to do": "new"}.get(value.lower(), value.lower())
    if name == "status":
        return issue.status.lower() == value.lower()
    raise _Refusal(400, f"Field '{name}' is not supported by the simulated Jira")


def _check_text_fields(fields: dict[str, Any]) -> None:
    """Jira's field rules for the text RepairBot writes: summary ≤ 255 characters, description ≤ 32,767."""
    summary = fields.get("summary")
    if isinstance(summary, str) and len(summary) > SUMMARY_LIMIT:
        raise _Refusal(400, "", {"summary": f"Summary must be less than {SUMMARY_LIMIT} characters."})
    description = fields.get("description")
    if isinstance(description, str) and len(description) > TEXT_LIMIT:
        raise _Refusal(400, "", {"description": _too_long()})


def _check_comment(text: str) -> None:
    if not text.strip():
        raise _Refusal(400, "", {"comment": "Comment body can not be empty!"})
    if len(text) > TEXT_LIMIT:
        raise _Refusal(400, "", {"comment": _too_long()})


def _too_long() -> str:
    return f"The entered text is too long. It exceeds the allowed limit of {TEXT_LIMIT:,} characters."


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
