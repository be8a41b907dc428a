"""The buttons a repair's and a storm's Slack message carry, by phase, within Block Kit's limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from repairbot.model import Action, HistoryEntry, Phase
from repairbot.notify.messages import StormView
from repairbot.notify.slack_buttons import SlackAction, last_slack_action, repair_actions, storm_actions
from repairbot.notify.slack_messages import slack_parent, slack_storm
from repairbot.notify.view import RepairView
from repairbot_sim.slack_blocks import buttons, message_problem

R, Q, REL, C = SlackAction.RESUME, SlackAction.QUARANTINE, SlackAction.RELEASE, SlackAction.CANCEL


@pytest.mark.parametrize(
    ("phase", "action", "expected"),
    [
        (Phase.PENDING, None, (Q, C)),
        (Phase.CORDONED, Action.REBOOT, (Q, C)),
        (Phase.DRAINING, Action.REBOOT, (Q, C)),
        (Phase.REMEDIATING, Action.GPU_RESET, (Q, C)),
        (Phase.REMEDIATING, Action.NOTIFY, (R, Q, C)),  # held for a human
        (Phase.CORDONED, Action.NOTIFY, (R, Q, C)),
        (Phase.VALIDATING, Action.REBOOT, (Q, C)),
        (Phase.BLOCKED, Action.REBOOT, (R, Q, C)),
        (Phase.QUARANTINED, Action.QUARANTINE, (REL,)),
        (Phase.SUCCEEDED, Action.REBOOT, ()),
        (Phase.FAILED, Action.REBOOT, ()),
        (Phase.CANCELLED, None, ()),
    ],
)  # fmt: skip
def test_the_buttons_fit_the_phase(phase: Phase, action: Action | None, expected: tuple[SlackAction, ...]) -> None:
    assert repair_actions(phase, action) == expected


def test_a_dry_run_shows_no_buttons() -> None:
    assert repair_actions(Phase.BLOCKED, Action.REBOOT, dry_run=True) == ()


def test_a_storm_offers_resume_storm_only_while_a_repair_is_blocked() -> None:
    assert storm_actions(["Blocked", "Cordoned"]) == (SlackAction.RESUME_STORM,)
    assert storm_actions(["Draining", "Succeeded"]) == ()


def view(phase: Phase, action: Action | None = Action.REBOOT, **extra: object) -> RepairView:
    return RepairView(name="gpu-node-007-20261202080000", node="gpu-node-007", phase=phase, reason="xid-79",
                      action=action, **extra)  # type: ignore[arg-type]  # fmt: skip


def test_a_blocked_parent_carries_resume_quarantine_cancel_with_the_repair_name_and_passes_block_kit() -> None:
    message = slack_parent(view(Phase.BLOCKED))
    body = {"text": message.text, "blocks": list(message.blocks)}
    assert message_problem(body) is None
    shown = buttons(list(message.blocks))
    assert [b["action_id"] for b in shown] == ["repairbot:resume", "repairbot:quarantine", "repairbot:cancel"]
    assert {b["value"] for b in shown} == {"gpu-node-007-20261202080000"}
    assert shown[0]["style"] == "primary" and shown[1]["style"] == "danger"


def test_the_parent_says_who_acted_from_slack() -> None:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    entry = HistoryEntry("resume", "requested", "resumed by <@U0SANDBOX1> from Slack", at)
    message = slack_parent(view(Phase.CORDONED, history=(entry,)))
    assert any(b.get("text", {}).get("text") == "Resumed by <@U0SANDBOX1>" for b in message.blocks)
    assert last_slack_action((entry,)) == "Resumed by <@U0SANDBOX1>"
    assert last_slack_action((HistoryEntry("x", "y", "resumed by <!channel> from Slack", at),)) is None


def test_a_storm_message_carries_resume_storm_with_the_incident() -> None:
    storm = StormView.of("storm-20261202-leaf-3", [("gpu-node-012", "Blocked"), ("gpu-node-013", "Blocked")])
    message = slack_storm(storm)
    assert message_problem({"text": message.text, "blocks": list(message.blocks)}) is None
    (button,) = buttons(list(message.blocks))
    assert button["action_id"] == "repairbot:resume-storm" and button["value"] == "storm-20261202-leaf-3"
