"""Which Alertmanager silence a repair should hold now: a pure function of its status, the policy and the clock.

A drain and a reboot make the node's own alerts fire (NotReady, exporters'
targets down) and page on-call for work RepairBot is already doing. So from
the first disruptive step (the drain, or a remediation that needs none) until
the repair ends — the node back in service, quarantined, failed or cancelled —
the repair holds one silence for its node; a dry run disturbs nothing and
holds none. A held silence is renewed once half its length is left, so it
outlives a stopped operator by at most one ``duration`` and never mutes a
node forever. :mod:`repairbot.operator.silences` carries the plan out.

Apart from the keeper so each rule is a table test without Alertmanager.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from repairbot.machine import Step
from repairbot.model import Phase, SilenceRecord
from repairbot.notify.alertmanager import Matcher
from repairbot.policy import AlertmanagerPolicy
from repairbot.policy.silences import NODE_PLACEHOLDER

DISRUPTIVE_PHASES = frozenset({Phase.DRAINING, Phase.REMEDIATING, Phase.VALIDATING})
"""Phases in which the node's workloads or the machine itself are being disturbed."""


class SilenceMove(enum.StrEnum):
    NONE = "none"
    """No silence is wanted and none is held."""
    CREATE = "create"
    KEEP = "keep"
    """Held, and more than half of it is left."""
    RENEW = "renew"
    EXPIRE = "expire"
    """Held, but the repair is over (or never disturbed the node): expire it now."""


@dataclass(frozen=True, slots=True)
class SilencePlan:
    move: SilenceMove
    held: SilenceRecord | None = None
    matchers: tuple[Matcher, ...] = ()
    ends_at: datetime | None = None
    """Where a created or renewed silence ends."""
    comment: str = ""


def repair_marker(name: str) -> str:
    """The words in a silence's comment that name its repair: how a silence made just before a crash is found."""
    return f"[GPURepair {name}]"


def silence_matchers(policy: AlertmanagerPolicy, node: str) -> tuple[Matcher, ...]:
    """The node's label matchers (``$node`` replaced), then ``alertname=~"A|B"`` when the policy lists names."""
    matchers = [Matcher(label, value.replace(NODE_PLACEHOLDER, node)) for label, value in policy.matchers.items()]
    if policy.alertnames:
        names = "|".join(re.escape(name) for name in policy.alertnames)
        matchers.append(Matcher("alertname", names, is_regex=True))
    return tuple(matchers)


def silence_comment(name: str, node: str, reason: str | None, runbook_url: str | None) -> str:
    """What a human reading Alertmanager's silence list needs: whose silence, why, where to look, when it goes."""
    why = f" ({reason})" if reason else ""
    text = (
        f"RepairBot is repairing node {node}{why} {repair_marker(name)}: alerts its drain and reboot cause are "
        f"silenced until the node is back or quarantined, then this silence is expired. "
        f"Details: kubectl describe gpurepair {name}"
    )
    return f"{text}. Runbook: {runbook_url}" if runbook_url else text


def silence_wanted(status: Mapping[str, Any], *, dry_run: bool) -> bool:
    """Has this repair disturbed its node, and is it still running?"""
    if dry_run:
        return False
    try:
        phase = Phase(str(status.get("phase") or Phase.PENDING.value))
    except ValueError:
        return False
    if phase.is_terminal:
        return False
    if phase in DISRUPTIVE_PHASES:
        return True
    # Blocked or queued between rungs after a drain: the node is still out, its alerts still the repair's.
    return any(entry.get("step") == Step.START_DRAIN.value for entry in status.get("history") or ())


def plan_silence(
    obj: Mapping[str, Any], policy: AlertmanagerPolicy, now: datetime, *, runbook_url: str | None = None
) -> SilencePlan:
    """The silence move for one GPURepair now."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    held = SilenceRecord.from_dict(status.get("silence"))
    live = held if held is not None and held.expired_at is None else None
    if not silence_wanted(status, dry_run=bool(spec.get("dryRun"))):
        return SilencePlan(SilenceMove.EXPIRE, held) if live is not None else SilencePlan(SilenceMove.NONE, held)
    if live is not None and live.ends_at - now > policy.duration / 2:
        return SilencePlan(SilenceMove.KEEP, held)
    name = str((obj.get("metadata") or {}).get("name", ""))
    node = str(spec.get("nodeName", ""))
    return SilencePlan(
        SilenceMove.RENEW if live is not None else SilenceMove.CREATE,
        held,
        matchers=silence_matchers(policy, node),
        ends_at=now + policy.duration,
        comment=silence_comment(name, node, status.get("reason"), runbook_url),
    )
