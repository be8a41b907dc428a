"""Escalation rules: repeats of a finding within a window that turn a mild response into a stronger one.

One Xid 13 is an application's bug; the same Xid 13 on the same GPU from three
different jobs within an hour is the GPU. The catalog answers per occurrence,
so it cannot say that; a rule in the policy file can::

    escalations:
      - match: xid-13        # a finding class, or a glob (xid-*)
        scope: gpu           # count per GPU (gpu) or per node (node)
        distinctJobs: true   # count distinct jobs (the Xid line's name[pid]), not lines
        count: 3
        window: 1h
        action: gpu-reset    # the ladder this action starts (gpu-reset → reboot → quarantine)

Rules are plain data and :func:`first_escalation` is a pure function over
:class:`~repairbot.model.Occurrence` records, so the machine (which decides the
ladder) and the tests judge the same thing. Counting is exactly-once: occurrences
are told apart by their source record (``ref``), so a report sent again after a
lost reply counts once. Reading the rules (with field-named errors) is
:func:`read_escalations`; like the rest of the policy it reports every error at once.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from repairbot.catalog.xid_table import LADDER_FOR_ACTION
from repairbot.model import Action, Finding, Occurrence
from repairbot.policy.durations import format_duration, parse_duration

ESCALATION_STEP = "escalation-rule"
"""The history step an escalation writes (its ``action`` is the escalated ladder's first rung)."""
CONDITION_ESCALATED = "Escalated"
ESCALATIONS_MAX = 32
"""More rules than this is no policy anybody reads; each reconcile evaluates every rule."""


class EscalationScope(enum.StrEnum):
    """Where repeats are counted: on one GPU, or anywhere on the node."""

    GPU = "gpu"
    NODE = "node"


@dataclass(frozen=True, slots=True)
class EscalationRule:
    """``count`` occurrences of ``match`` in ``scope`` within ``window`` → climb ``action``'s ladder."""

    match: str
    count: int
    window: timedelta
    action: Action
    scope: EscalationScope = EscalationScope.GPU
    distinct_jobs: bool = False

    def matches(self, code: str) -> bool:
        return fnmatch.fnmatchcase(code, self.match)

    @property
    def ladder(self) -> tuple[Action, ...]:
        return escalated_actions(self.action)

    def to_dict(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "scope": self.scope.value,
            "distinctJobs": self.distinct_jobs,
            "count": self.count,
            "window": format_duration(self.window),
            "action": self.action.value,
        }


def escalated_actions(action: Action) -> tuple[Action, ...]:
    """The ladder an escalation to ``action`` climbs; every destructive start ends in quarantine, as in the catalog."""
    return LADDER_FOR_ACTION[action]


def longest_window(rules: Sequence[EscalationRule]) -> timedelta:
    """How far back the rules look: the node's older repairs need not be read."""
    return max((rule.window for rule in rules), default=timedelta(0))


def counted_codes(rules: Sequence[EscalationRule]) -> tuple[str, ...]:
    """The finding classes the rules count, once each: what the agent must report even when they need no action
    (the chart passes them as ``--report-codes``)."""
    return tuple(dict.fromkeys(rule.match for rule in rules))


@dataclass(frozen=True, slots=True)
class Sighting:
    """One occurrence of a finding class on a GPU ('' = the node), as the rules count it."""

    code: str
    gpu: str
    occurrence: Occurrence


@dataclass(frozen=True, slots=True)
class Escalation:
    """A rule that fired, where, and the sentence an SRE reads in the history, the condition and Slack."""

    rule: EscalationRule
    code: str
    gpu: str
    seen: int

    @property
    def message(self) -> str:
        where = f"on GPU {self.gpu}" if self.gpu else "on the node"
        what = f"from {self.seen} jobs" if self.rule.distinct_jobs else f"{self.seen} times"
        within = format_duration(self.rule.window)
        return f"{self.code} {where} {what} within {within}: escalated to {self.rule.action.value}"


def sightings(findings: Iterable[Finding], gpu_names: dict[str, str] | None = None) -> list[Sighting]:
    """Every occurrence the findings record, once each: the same ``ref`` seen in two repairs is one.

    ``gpu_names`` maps a finding's GPU identity (PCI address) to the name humans use (its index).
    """
    out: list[Sighting] = []
    refs: set[tuple[str, str]] = set()
    for finding in findings:
        gpu = _gpu_name(finding)
        for occurrence in finding.sightings():
            if occurrence.ref:
                if (finding.code, occurrence.ref) in refs:
                    continue
                refs.add((finding.code, occurrence.ref))
            out.append(Sighting(finding.code, gpu, occurrence))
    return out


def _gpu_name(finding: Finding) -> str:
    if finding.gpu.index is not None:
        return str(finding.gpu.index)
    return finding.gpu.identity()


def first_escalation(rules: Sequence[EscalationRule], seen: Sequence[Sighting], now: datetime) -> Escalation | None:
    """The first rule (in the file's order) whose count is reached within its window ending ``now``."""
    for rule in rules:
        groups: dict[tuple[str, str], list[Occurrence]] = {}
        for sighting in seen:
            if not rule.matches(sighting.code) or now - sighting.occurrence.at > rule.window:
                continue
            gpu = sighting.gpu if rule.scope is EscalationScope.GPU else ""
            groups.setdefault((sighting.code, gpu), []).append(sighting.occurrence)
        for (code, gpu), occurrences in sorted(groups.items()):
            # With distinct jobs, an occurrence whose job is unknown proves no second job: it is not counted.
            tally = len({o.job for o in occurrences if o.job}) if rule.distinct_jobs else len(occurrences)
            if tally >= rule.count:
                return Escalation(rule, code, gpu, tally)
    return None


_RULE_KEYS = ("match", "scope", "distinctJobs", "count", "window", "action")
_MATCH = r"[a-z0-9*?\[\]-]+"


def read_escalations(raw: Any, errors: list[str], path: str = "policy.escalations") -> tuple[EscalationRule, ...]:
    """The ``escalations`` list → rules; every problem appended to ``errors`` naming its field path."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(f"{path}: must be a list of rules (match, scope, distinctJobs, count, window, action)")
        return ()
    if len(raw) > ESCALATIONS_MAX:
        errors.append(f"{path}: {len(raw)} rules is more than {ESCALATIONS_MAX}")
        return ()
    rules = []
    for index, item in enumerate(raw):
        rule = _read_rule(item, f"{path}[{index}]", errors)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _read_rule(item: Any, where: str, errors: list[str]) -> EscalationRule | None:
    if not isinstance(item, dict):
        errors.append(f"{where}: must be a mapping with {', '.join(_RULE_KEYS)}")
        return None
    before = len(errors)
    for key in item:
        if key not in _RULE_KEYS:
            errors.append(f"{where}.{key}: unknown key (known keys: {', '.join(_RULE_KEYS)})")
    match = item.get("match")
    if not isinstance(match, str) or not re.fullmatch(_MATCH, match):
        errors.append(f"{where}.match: {match!r} is not a finding class or glob (e.g. xid-13, ib-flap, xid-*)")
    scope_raw = item.get("scope", EscalationScope.GPU.value)
    try:
        scope = EscalationScope(scope_raw)
    except ValueError:
        errors.append(f"{where}.scope: {scope_raw!r} is not one of {', '.join(s.value for s in EscalationScope)}")
        scope = EscalationScope.GPU
    distinct = item.get("distinctJobs", False)
    if not isinstance(distinct, bool):
        errors.append(f"{where}.distinctJobs: {distinct!r} must be true or false")
    count: Any = item.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        errors.append(f"{where}.count: {count!r} must be a whole number of at least 1")
    elif count > 32:
        errors.append(f"{where}.count: {count} is over 32, the occurrences a finding remembers")
    window = _window(item, where, errors)
    action = _action(item, where, errors)
    if len(errors) > before or window is None or action is None:
        return None
    return EscalationRule(str(match), int(count), window, action, scope, bool(distinct))


def _window(item: dict[str, Any], where: str, errors: list[str]) -> timedelta | None:
    raw: Any = item.get("window")
    try:
        window = parse_duration(raw)
    except ValueError as error:
        errors.append(f"{where}.window: {raw!r} {error}")
        return None
    if not window:
        errors.append(f"{where}.window: {raw!r} must be longer than zero")
        return None
    return window


def _action(item: dict[str, Any], where: str, errors: list[str]) -> Action | None:
    raw: Any = item.get("action")
    allowed = [a for a in Action if a is not Action.NONE]
    try:
        action = Action(raw)
    except ValueError:
        action = None
    if action is None or action is Action.NONE:
        errors.append(f"{where}.action: {raw!r} is not one of {', '.join(a.value for a in allowed)}")
        return None
    return action
