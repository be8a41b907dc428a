"""JQL as far as RepairBot writes it, and the paging of the fake Jira's two searches.

``AND``-joined ``project = X``, ``labels = X``, ``status``/``statusCategory``
clauses and ``ORDER BY``; anything else is refused as Jira refuses JQL it
cannot read. Cloud's ``/search/jql`` pages with an opaque ``nextPageToken``
and refuses unbounded queries; Server's ``/search`` pages with ``startAt``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from repairbot_sim.jira_project import STATUS_CATEGORY

if TYPE_CHECKING:
    from repairbot_sim.jira import SimIssue

_CLAUSE = re.compile(r'(\w+)\s*(!=|=)\s*"?([^"\s]+)"?', re.IGNORECASE)


class JqlError(Exception):
    """A query Jira would answer with 400 (its message is the text)."""


def matching(issues: Iterable[SimIssue], jql: str, *, bounded: bool) -> list[SimIssue]:
    """The issues ``jql`` selects, oldest first; ``bounded`` (Cloud's /search/jql) refuses a query without a clause."""
    where = re.split(r"\border\s+by\b", jql, flags=re.IGNORECASE)[0].strip()
    if bounded and not where:
        raise JqlError("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.")
    found = list(issues)
    for clause in re.split(r"\s+AND\s+", where, flags=re.IGNORECASE):
        if not clause:
            continue
        m = _CLAUSE.fullmatch(clause.strip())
        if m is None:
            raise JqlError(f"Error in the JQL Query: cannot read {clause!r}")
        name, op, value = m.group(1).lower(), m.group(2), m.group(3)
        found = [i for i in found if (_value_matches(i, name, value)) == (op == "=")]
    return sorted(found, key=lambda i: int(i.id))


def wanted_fields(fields: Any) -> set[str] | None:
    names = {f.strip() for f in str(fields or "").split(",") if f.strip()}
    return names or None


def page_start(token: Any) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(str(token).encode()).decode())
    except ValueError as error:
        raise JqlError("The provided next page token is invalid or expired.") from error


def _value_matches(issue: SimIssue, name: str, value: str) -> bool:
    if name == "project":
        return issue.key.startswith(f"{value}-")
    if name == "labels":
        return value in (issue.fields.get("labels") or [])
    if name == "statuscategory":
        return STATUS_CATEGORY[issue.status] == {"done": "done", "to do": "new"}.get(value.lower(), value.lower())
    if name == "status":
        return issue.status.lower() == value.lower()
    raise JqlError(f"Field '{name}' is not supported by the simulated Jira")
