"""Who may act from Slack: the ``notifications.slack.actions`` section of the policy.

A Slack button can resume a storm or quarantine a node, so only the people
the policy names may press it; everyone else gets an ephemeral "not allowed"
and nothing changes. People are named by their Slack *user id* (``U…``/``W…``)
or by a *user group* id (``S…``, the group behind ``@gpu-sre``), never a
display name or handle anyone can change::

    notifications:
      slack:
        actions:
          allowedUsers: [U0SANDBOX1]
          allowedGroups: [S0SANDBOXSRE]

A group's members are asked of Slack when someone clicks
(``usergroups.users.list``, bot scope ``usergroups:read``; see
:mod:`repairbot.webhook.slack_groups`): who joins or leaves the group in
Slack gains or loses the buttons without a policy change. Both lists empty
(the default) lets nobody act: the buttons are shown, and every click is
refused with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

USER_ID = r"[UW][A-Z0-9]{2,}"
GROUP_ID = r"S[A-Z0-9]{2,}"
MAX_GROUPS = 32
"""At most this many groups: each is one Slack call per click (cached), so the list stays short."""
KEYS = ("allowedUsers", "allowedGroups")


@dataclass(frozen=True, slots=True)
class SlackActionsPolicy:
    """The Slack users, and the user groups, whose button clicks RepairBot carries out."""

    allowed_users: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()

    def allows(self, user_id: str) -> bool:
        """Named directly by ``allowedUsers`` (a group member is decided by the webhook, which asks Slack)."""
        return bool(re.fullmatch(USER_ID, user_id)) and user_id in self.allowed_users

    def to_dict(self) -> dict[str, Any]:
        return {"allowedUsers": list(self.allowed_users), "allowedGroups": list(self.allowed_groups)}


class _Reads(Protocol):
    """What this reader needs of the policy parser's section (``texts`` with a pattern and a hint, ``fail``)."""

    def texts(self, key: str, default: tuple[str, ...], *, pattern: str, hint: str) -> tuple[str, ...]: ...

    def fail(self, key: str, value: Any, problem: str) -> None: ...


def read_slack_actions(section: _Reads) -> SlackActionsPolicy:
    """``notifications.slack.actions`` → :class:`SlackActionsPolicy`; errors are reported on ``section``."""
    users = section.texts(
        "allowedUsers", (), pattern=USER_ID, hint="must be a list of Slack user ids (U…), not names or @handles"
    )
    groups = section.texts(
        "allowedGroups", (), pattern=GROUP_ID,
        hint="must be a list of Slack user group ids (S…, from the group's profile), not @handles or names",
    )  # fmt: skip
    if len(set(groups)) > MAX_GROUPS:
        section.fail("allowedGroups", f"{len(set(groups))} groups", f"must name at most {MAX_GROUPS} groups")
        groups = ()
    return SlackActionsPolicy(allowed_users=users, allowed_groups=tuple(dict.fromkeys(groups)))
