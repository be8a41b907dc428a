"""The buttons on a repair's and a storm's Slack message: what a human may do from Slack, by phase.

A button is only shown where its action means something now, so a message
never invites a click that can only be refused: **Resume** on a Blocked
repair or one held for a human, **Quarantine** and **Cancel** on any repair
still running, **Release** on a quarantine, **Resume storm** on a storm
with repairs still Blocked. The parent is rewritten as the phase moves on,
so the buttons follow. Each button's ``action_id`` says the action and its
``value`` names the GPURepair (or the storm's incident); the webhook's
``POST /slack/actions`` reads them back (:mod:`repairbot.webhook.slack_actions`).
Slack's limits (button text ≤ 75, ``action_id`` ≤ 255, ``value`` ≤ 2,000,
≤ 25 elements per actions block) are kept by construction.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Any

from repairbot.model import Action, HistoryEntry, Phase

ACTIONS_BLOCK_ID = "repairbot-actions"
VALUE_LIMIT = 2000
BUTTON_TEXT_LIMIT = 75


class SlackAction(enum.StrEnum):
    """The ``action_id`` of each RepairBot button."""

    RESUME = "repairbot:resume"
    QUARANTINE = "repairbot:quarantine"
    RELEASE = "repairbot:release"
    CANCEL = "repairbot:cancel"
    RESUME_STORM = "repairbot:resume-storm"


LABELS = {
    SlackAction.RESUME: ("Resume", "primary"),
    SlackAction.QUARANTINE: ("Quarantine", "danger"),
    SlackAction.RELEASE: ("Release", "primary"),
    SlackAction.CANCEL: ("Cancel", None),
    SlackAction.RESUME_STORM: ("Resume storm", "primary"),
}
HOLD_PHASES = frozenset({Phase.CORDONED, Phase.REMEDIATING})
_BY_SLACK = re.compile(r"\b(resumed|cancelled|released|quarantined) by <@([UW][A-Z0-9]+)> from Slack")


def repair_actions(phase: Phase, action: Action | None, *, dry_run: bool = False) -> tuple[SlackAction, ...]:
    """The buttons a repair in ``phase`` (on rung ``action``) shows; none for a dry run or a finished repair."""
    if dry_run:
        return ()
    if phase is Phase.QUARANTINED:
        return (SlackAction.RELEASE,)
    if phase.is_terminal:
        return ()
    held = phase is Phase.BLOCKED or (phase in HOLD_PHASES and action is Action.NOTIFY)
    resume = (SlackAction.RESUME,) if held else ()
    return (*resume, SlackAction.QUARANTINE, SlackAction.CANCEL)


def storm_actions(member_phases: Sequence[str]) -> tuple[SlackAction, ...]:
    """A storm shows **Resume storm** while any of its repairs is Blocked."""
    return (SlackAction.RESUME_STORM,) if Phase.BLOCKED.value in member_phases else ()


def actions_block(actions: Sequence[SlackAction], value: str) -> dict[str, Any] | None:
    """One Block Kit ``actions`` block of buttons carrying ``value``; None when there is none to show."""
    if not actions:
        return None
    return {"type": "actions", "block_id": ACTIONS_BLOCK_ID, "elements": [_button(a, value) for a in actions]}


def last_slack_action(history: Sequence[HistoryEntry]) -> str | None:
    """"Resumed by <@U…>" for the latest step a human took from Slack, as the parent message says it."""
    for entry in reversed(history):
        found = _BY_SLACK.search(entry.message)
        if found:
            return f"{found.group(1).capitalize()} by <@{found.group(2)}>"
    return None


def _button(action: SlackAction, value: str) -> dict[str, Any]:
    text, style = LABELS[action]
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action.value,
        "text": {"type": "plain_text", "text": text[:BUTTON_TEXT_LIMIT]},
        "value": value[:VALUE_LIMIT],
    }
    if style:
        button["style"] = style
    return button
