"""Who Slack pages when a repair needs a human: ``notifications.slack.onCall`` in the syntax Slack notifies on.

Slack notifies nobody for plain text: ``@gpu-oncall`` typed into an API message
arrives as those eleven characters. Only the mention syntax pages —
``<!subteam^S…>`` (a user group), ``<@U…>``/``<@W…>`` (a user), ``<!here>`` and
``<!channel>``. A bare group id (``S…``) or user id (``U…``/``W…``) is accepted
and written in that syntax, because that is what an admin copies from Slack.

A ``@handle`` is refused, not looked up: resolving it needs ``usergroups.list``
(another OAuth scope, another call at every start, and a handle can be renamed
under us), while refusing it at startup names the one value that works. It
must never be accepted and then page nobody. ``<!everyone>`` is refused too:
Slack honours it only in the workspace's general channel, never a repair channel.

Kept on the policy floor (no Slack client here) so the policy, the chart's
schema tests and the notifier all use the same rule.
"""

from __future__ import annotations

import re

_ID = r"[A-Z0-9]{6,}"
MENTION = re.compile(rf"<!subteam\^S{_ID}(\|[^<>|]+)?>|<@[UW]{_ID}>|<!here>|<!channel>")
"""The mention forms Slack notifies on (a user group may carry its ``|@handle`` label)."""
_GROUP_ID = re.compile(rf"S{_ID}")
_USER_ID = re.compile(rf"[UW]{_ID}")

ON_CALL_HINT = (
    "must be a form Slack notifies on: a user group <!subteam^S0123ABCD> (or its id S0123ABCD), "
    "a user <@U0123ABCD> (or U0123ABCD), <!here> or <!channel>"
)


def on_call_mention(value: str) -> str:
    """``value`` in the mention syntax Slack pages on; ValueError (naming the right form) for anything else."""
    text = value.strip()
    if MENTION.fullmatch(text):
        return text
    if _GROUP_ID.fullmatch(text):
        return f"<!subteam^{text}>"
    if _USER_ID.fullmatch(text):
        return f"<@{text}>"
    if text.startswith("@"):
        raise ValueError(
            f"is plain text to Slack and notifies nobody; it {ON_CALL_HINT} "
            "(Slack's usergroups.list names each group's id)"
        )
    raise ValueError(ON_CALL_HINT)
