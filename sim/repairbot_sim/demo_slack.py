"""The demo's Act 3: an SRE presses **Resume storm** in Slack, and the storm ends the safe way.

The fake Slack clicks the button on the storm's own message exactly as Slack
would: a ``block_actions`` payload signed with the app's signing secret,
POSTed to the webhook's ``/slack/actions``. The webhook checks the signature
and the policy's allow-list, and resumes the storm's repairs through the same
path as ``repairbot resume --all``: the breaker half-opens and one canary goes
first. The storm's scenario is judged on the cluster as it stood just before
the click (Blocked, cordoned, no reboot) and on what the click did after it
(:func:`repairbot_sim.demo_expectations.check_all`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from repairbot_sim.slack import SlackSim

DEMO_SRE = "U0SANDBOX1"
"""The Slack user the demo's policy lets act (``notifications.slack.actions.allowedUsers``)."""
RESUME_STORM = "repairbot:resume-storm"

Obj = Mapping[str, Any]


def storm_message(repairs: Sequence[Obj], nodes: Sequence[str], slack: SlackSim) -> tuple[str, str] | None:
    """The channel and ts of the storm's Slack message: the one a member's status names that shows Resume storm.

    A member opened a moment before the breaker tripped keeps its own thread (no storm button) beside
    the incident, so the first member's thread is not necessarily the storm's message.
    """
    for repair in repairs:
        status = repair.get("status") or {}
        thread = status.get("slack") or {}
        if (repair.get("spec") or {}).get("nodeName") not in nodes or not status.get("incident"):
            continue
        if not thread.get("ts"):
            continue
        channel, ts = str(thread["channel"]), str(thread["ts"])
        if any(button.get("action_id") == RESUME_STORM for button in slack.buttons(channel, ts)):
            return channel, ts
    return None


async def press_resume_storm(slack: SlackSim, message: tuple[str, str]) -> int:
    """``DEMO_SRE`` clicks Resume storm: the signed POST Slack sends. Returns the webhook's HTTP status."""
    status, _ = await slack.click(*message, RESUME_STORM, user=DEMO_SRE)
    return status


def canary_done(repairs: Callable[[], Sequence[Obj]], nodes: Sequence[str]) -> Callable[[], bool]:
    """Has the storm's canary come back (one member Succeeded)?"""

    def done() -> bool:
        members = [r for r in repairs() if (r.get("spec") or {}).get("nodeName") in nodes]
        return any((r.get("status") or {}).get("phase") == "Succeeded" for r in members)

    return done
