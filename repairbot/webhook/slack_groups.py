"""Who is in a Slack user group, asked of Slack and remembered for a minute.

The policy may let a user group act from Slack (``allowedGroups``); whether
the clicker is in it is Slack's answer to ``usergroups.users.list`` (bot
scope ``usergroups:read``), asked through slack-sdk's ``WebClient`` with the
bot token. Answers are cached per group for ``ttl`` seconds (someone removed
from the group loses the buttons within that), for at most ``max_groups``
groups, so a burst of clicks is one call per group.

Fail closed: when Slack cannot answer (an error such as ``missing_scope``
or ``no_such_subteam``, a timeout, no bot token configured) the lookup
raises :class:`GroupLookupError` with the reason, is counted by code, and
the click is refused saying why. A failure is never cached as "no
members" and never as "allowed".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

log = logging.getLogger(__name__)

DEFAULT_TTL = 60.0
DEFAULT_MAX_GROUPS = 64
NO_TOKEN = "no_token"
"""The error code counted when the webhook has no bot token to ask Slack with."""


class GroupLookupError(RuntimeError):
    """Slack did not say who is in a group; ``code`` is Slack's error (or ours), ``str()`` says it for people."""

    def __init__(self, group: str, code: str, detail: str) -> None:
        super().__init__(f"could not ask Slack who is in <!subteam^{group}>: {detail}")
        self.group = group
        self.code = code


@dataclass(frozen=True, slots=True)
class _Entry:
    members: frozenset[str]
    expires: float


class GroupMembers:
    """Members of Slack user groups, from ``usergroups.users.list``, cached with a bounded TTL and size.

    ``client`` None means no bot token is configured: every lookup fails
    (closed). ``on_error`` is called with the error code of each failed
    lookup (the webhook counts them). Thread-safe: clicks are handled in
    worker threads.
    """

    def __init__(
        self,
        client: WebClient | None,
        *,
        ttl: float = DEFAULT_TTL,
        max_groups: int = DEFAULT_MAX_GROUPS,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if ttl <= 0 or max_groups <= 0:
            raise ValueError("ttl and max_groups must be positive")
        self._client = client
        self._ttl = ttl
        self._max = max_groups
        self._clock = clock
        self._on_error = on_error
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_token(
        cls, token: str | None, *, base_url: str | None = None, on_error: Callable[[str], None] | None = None
    ) -> GroupMembers:
        """With slack-sdk's ``WebClient`` on ``token`` (None: no token, every lookup refused)."""
        if not token:
            return cls(None, on_error=on_error)
        client = WebClient(token=token, timeout=5, base_url=base_url) if base_url else WebClient(token=token, timeout=5)
        return cls(client, on_error=on_error)

    def members(self, group: str) -> frozenset[str]:
        """The user ids in ``group``; :class:`GroupLookupError` when Slack did not answer (never cached)."""
        now = self._clock()
        with self._lock:
            entry = self._cache.get(group)
            if entry is not None and entry.expires > now:
                self._cache.move_to_end(group)
                return entry.members
        members = self._ask(group)
        with self._lock:
            self._cache[group] = _Entry(members, self._clock() + self._ttl)
            self._cache.move_to_end(group)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return members

    def _ask(self, group: str) -> frozenset[str]:
        if self._client is None:
            self._failed(group, NO_TOKEN, "no Slack bot token is configured for the webhook (REPAIRBOT_SLACK_TOKEN)")
        try:
            answer = self._client.usergroups_users_list(usergroup=group)
        except SlackApiError as error:
            code = str(error.response.get("error") or f"http_{error.response.status_code}")
            needed = error.response.get("needed")
            self._failed(group, code, f"Slack answered {code}" + (f" (needs scope {needed})" if needed else ""))
        except (SlackClientError, OSError) as error:
            self._failed(group, "unreachable", f"Slack is unreachable ({type(error).__name__}: {error})"[:300])
        users = answer.get("users")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            self._failed(group, "bad_answer", "Slack's answer has no list of users")
        return frozenset(users)

    def _failed(self, group: str, code: str, detail: str) -> NoReturn:
        log.warning("slack user group lookup failed group=%s code=%s detail=%s", group, code, detail)
        if self._on_error is not None:
            self._on_error(code)
        raise GroupLookupError(group, code, detail)
