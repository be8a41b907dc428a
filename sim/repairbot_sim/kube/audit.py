"""A bounded record of authorization decisions: ``GET /_sim/audit``.

A real cluster's audit log says, per request, who asked, what, and which
binding allowed it (``authorization.k8s.io/reason``). Tests read this one to
see which RBAC rules a scenario used, so a rule nothing uses can be found
and removed. One row per distinct (user, request, decision) with a count, the
least recently seen rows dropped past :data:`MAX_ROWS`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from repairbot_sim.kube.attributes import RequestAttributes
from repairbot_sim.kube.identity import UserInfo
from repairbot_sim.kube.rbac import Decision

__all__ = ["MAX_ROWS", "AuditLog"]

MAX_ROWS = 20_000


class AuditLog:
    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self._rows: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self.dropped = 0

    def record(self, user: UserInfo, request: RequestAttributes, decision: Decision) -> None:
        key = (user.username, tuple(sorted(user.extra.items())), request, decision.allowed, decision.grants)
        row = self._rows.get(key)
        if row is not None:
            row["count"] += 1
            self._rows.move_to_end(key)
            return
        self._rows[key] = {
            "user": user.username,
            "groups": list(user.groups),
            "extra": {k: list(v) for k, v in user.extra.items()},
            **request.as_dict(),
            "allowed": decision.allowed,
            "by": decision.by,
            "rules": [grant.rule_id for grant in decision.grants],
            "count": 1,
        }
        if len(self._rows) > self.max_rows:
            self._rows.popitem(last=False)
            self.dropped += 1

    def rows(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._rows.values()]

    def clear(self) -> None:
        self._rows.clear()
        self.dropped = 0
