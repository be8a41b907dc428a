"""Who may act from Slack: the ``notifications.slack.actions`` section of the policy.

A Slack button can resume a storm or quarantine a node, so only the people
the policy names may press it; everyone else gets an ephemeral "not allowed"
and nothing changes. Users are named by their Slack *user id* (``U…``/``W…``),
never a display name anyone can change::

    notifications:
      slack:
        actions:
          allowedUsers: [U0SANDBOX1, U0SRE00001]

An empty list (the default) lets nobody act: the buttons are shown, and
every click is refused with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

USER_ID = r"[UW][A-Z0-9]{2,}"
KEYS = ("allowedUsers",)


@dataclass(frozen=True, slots=True)
class SlackActionsPolicy:
    """The Slack users whose button clicks RepairBot carries out."""

    allowed_users: tuple[str, ...] = ()

    def allows(self, user_id: str) -> bool:
        return bool(re.fullmatch(USER_ID, user_id)) and user_id in self.allowed_users

    def to_dict(self) -> dict[str, Any]:
        return {"allowedUsers": list(self.allowed_users)}


class _Reads(Protocol):
    """What this reader needs of the policy parser's section (``texts`` with a pattern and a hint)."""

    def texts(self, key: str, default: tuple[str, ...], *, pattern: str, hint: str) -> tuple[str, ...]: ...


def read_slack_actions(section: _Reads) -> SlackActionsPolicy:
    """``notifications.slack.actions`` → :class:`SlackActionsPolicy`; errors are reported on ``section``."""
    users = section.texts(
        "allowedUsers", (), pattern=USER_ID, hint="must be a list of Slack user ids (U…), not names or @handles"
    )
    return SlackActionsPolicy(allowed_users=users)
