"""What each Slack button does, through the same functions as the CLI, once per phase.

Every action is judged on the repair as listed now, and does nothing when
the phase says it was done already: a resume of a repair no longer Blocked
(or held) is "already resumed", a storm whose Blocked repairs were all
resumed is too, a second quarantine, release or cancel likewise. So Slack's
retry or a double click writes one annotation, and the operator writes one
history entry ("resumed by <@U…> from Slack"), which the thread and the
Jira ticket then mirror like every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from repairbot.kube.commands import (
    cancel_repair,
    list_repairs,
    open_manual_repair,
    release_quarantine,
    resume_repairs,
)
from repairbot.kube.intake import IntakeRefused, is_held_quarantine
from repairbot.model import (
    ANNOTATION_CANCEL_REQUESTED_BY,
    ANNOTATION_RELEASED_BY,
    ANNOTATION_RESUME,
    ANNOTATION_RESUMED_BY,
    Action,
    Phase,
    Source,
)
from repairbot.notify.slack_buttons import HOLD_PHASES, SlackAction
from repairbot.webhook.slack_actions import Click

Repair = Mapping[str, Any]


class SlackApplier:
    """Carries out clicks against the cluster the webhook's API client reaches."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    def __call__(self, click: Click) -> str:
        repairs = list_repairs(self._api)
        if click.action is SlackAction.RESUME_STORM:
            return self._resume_storm(click, repairs)
        repair = next((r for r in repairs if r["metadata"]["name"] == click.value), None)
        if repair is None:
            return f"GPURepair {click.value} no longer exists."
        return {
            SlackAction.RESUME: self._resume,
            SlackAction.QUARANTINE: self._quarantine,
            SlackAction.RELEASE: self._release,
            SlackAction.CANCEL: self._cancel,
        }[click.action](click, repair, repairs)

    def _resume(self, click: Click, repair: Repair, repairs: list[dict[str, Any]]) -> str:
        name, phase = _name(repair), _phase(repair)
        held = phase is Phase.BLOCKED or (phase in HOLD_PHASES and _status(repair).get("action") == Action.NOTIFY)
        if not held or _annotations(repair).get(ANNOTATION_RESUME, "").lower() == "true":
            return f"{name} is already resumed (now {phase.value})."
        resume_repairs(self._api, [name], by=click.who, repairs=repairs)
        return f"Resuming {name} (node {_node(repair)}, was {phase.value})."

    def _resume_storm(self, click: Click, repairs: list[dict[str, Any]]) -> str:
        """The storm's Blocked repairs, as ``repairbot resume --all`` would: the breaker half-opens, a canary first."""
        members = [r for r in repairs if _status(r).get("incident") == click.value]
        if not members:
            return f"Storm {click.value} has no repairs left."
        waiting = [_name(r) for r in members
                   if _phase(r) is Phase.BLOCKED and ANNOTATION_RESUMED_BY not in _annotations(r)]  # fmt: skip
        if not waiting:
            return f"Storm {click.value} is already resumed."
        resume_repairs(self._api, waiting, by=click.who, repairs=repairs)
        return f"Resuming storm {click.value}: {len(waiting)} repairs, one canary first."

    def _quarantine(self, click: Click, repair: Repair, repairs: list[dict[str, Any]]) -> str:
        name, phase = _name(repair), _phase(repair)
        asked = any(f.get("source") == Source.MANUAL.value and f.get("action") == Action.QUARANTINE.value
                    for f in (repair.get("spec") or {}).get("findings") or [])  # fmt: skip
        if phase is Phase.QUARANTINED or asked:
            return f"{name} is already quarantined."
        if phase.is_terminal:
            return f"{name} is {phase.value}; nothing to quarantine."
        try:
            open_manual_repair(self._api, _node(repair), reason=f"quarantined by {click.who}",
                               action=Action.QUARANTINE, by=click.who)  # fmt: skip
        except IntakeRefused as refused:
            return f"Not quarantined: {refused}"
        return f"Quarantining node {_node(repair)} ({name}): it goes to hardware."

    def _release(self, click: Click, repair: Repair, repairs: list[dict[str, Any]]) -> str:
        name = _name(repair)
        if not is_held_quarantine(dict(repair)) or ANNOTATION_RELEASED_BY in _annotations(repair):
            return f"{name} is already released."
        release_quarantine(self._api, _node(repair), by=click.who)
        return f"Releasing node {_node(repair)} ({name}): validation, then back to service."

    def _cancel(self, click: Click, repair: Repair, repairs: list[dict[str, Any]]) -> str:
        name, phase = _name(repair), _phase(repair)
        if phase.is_terminal or ANNOTATION_CANCEL_REQUESTED_BY in _annotations(repair):
            return f"{name} is already {'cancelled' if phase is not Phase.SUCCEEDED else phase.value}."
        cancel_repair(self._api, name, by=click.who, repairs=repairs)
        return f"Cancelling {name}: node {_node(repair)} stays cordoned for a human."


def _status(repair: Repair) -> Mapping[str, Any]:
    return repair.get("status") or {}


def _phase(repair: Repair) -> Phase:
    return Phase(_status(repair).get("phase") or Phase.PENDING.value)


def _name(repair: Repair) -> str:
    return str(repair["metadata"]["name"])


def _node(repair: Repair) -> str:
    return str((repair.get("spec") or {}).get("nodeName", ""))


def _annotations(repair: Repair) -> Mapping[str, str]:
    return (repair.get("metadata") or {}).get("annotations") or {}
