"""The policy file (YAML) → a typed, frozen :class:`Policy`, validated before anything runs.

A policy decides how hard RepairBot may hit a fleet: how many nodes may be out
at once, when a storm stops automatic repairs, how drains treat workloads, which
ladder of actions each finding class climbs. A typo here can reboot a fleet or
silently disable a safety, so loading is strict: unknown keys are errors (with
a "did you mean"), durations must carry a unit, and *every* error is reported
at once — an SRE fixing a ConfigMap should not discover the problems one
operator restart at a time.

Defaults are written for a fleet of about 2,000 GPU nodes; each class says why
its values are what they are. ``repairbot/data/policy-default.yaml`` spells the
same defaults out (a unit test keeps the two equal) and the simulated world's ``policy-sandbox.yaml``
shortens every clock for the simulated world.

This module is the policy's public face: import every policy name from here.
The work lives in three package-private modules, each with one job —
:mod:`repairbot.policy.types` (the frozen dataclasses and their defaults),
:mod:`repairbot.policy.parse` (reading and validation with field-path errors) and
:mod:`repairbot.policy.durations` (``30s``/``5m``/``2h``/``7d``); the ``deferral`` section
(maintenance windows) reads and validates itself in :mod:`repairbot.policy.deferral`. Together they
import nothing of ours but :mod:`repairbot.model` (DESIGN.md's dependency rule),
so the Xid catalog reaches :meth:`Policy.ladder_for` as an injected
``fallback`` callable rather than an import.

Two modules reach one floor down, to the catalog (docs/layout.md allows it):
:mod:`repairbot.policy.xid_overrides` (``xid.overrides``: per-Xid changes, tried
against the packaged catalog while the policy is read) and
:mod:`repairbot.policy.escalation` (``escalations``: count-in-window rules, whose
escalated ladders are the catalog's ladders for an action).
"""

from __future__ import annotations

from importlib import resources

from repairbot.policy.deferral import DeferralPolicy, MaintenanceWindow
from repairbot.policy.durations import format_duration, parse_duration
from repairbot.policy.escalation import (
    CONDITION_ESCALATED,
    ESCALATION_STEP,
    Escalation,
    EscalationRule,
    EscalationScope,
    Sighting,
    counted_codes,
    escalated_actions,
    first_escalation,
    longest_window,
    sightings,
)
from repairbot.policy.parse import PolicyError, PolicyFileError, load_policy, parse_policy
from repairbot.policy.silences import AlertmanagerPolicy, GrafanaPolicy
from repairbot.policy.slurm import JobTimeoutMode, SlurmPolicy
from repairbot.policy.types import (
    DEFAULT_ACTION_TIMEOUTS,
    DEFAULT_LADDERS,
    TIMED_ACTIONS,
    BreakerPolicy,
    BudgetPolicy,
    DrainMode,
    DrainPolicy,
    DrainRule,
    JiraPolicy,
    LadderFallback,
    LemonPolicy,
    NotificationPolicy,
    Policy,
    RetentionPolicy,
    Rung,
    SlackPolicy,
    UnavailableLimit,
    ValidationPolicy,
)
from repairbot.policy.xid_overrides import XidPolicy

__all__ = [
    "CONDITION_ESCALATED",
    "DEFAULT_ACTION_TIMEOUTS",
    "DEFAULT_LADDERS",
    "DEFAULT_POLICY_YAML",
    "ESCALATION_STEP",
    "TIMED_ACTIONS",
    "AlertmanagerPolicy",
    "BreakerPolicy",
    "BudgetPolicy",
    "DeferralPolicy",
    "DrainMode",
    "DrainPolicy",
    "DrainRule",
    "Escalation",
    "EscalationRule",
    "EscalationScope",
    "GrafanaPolicy",
    "JiraPolicy",
    "JobTimeoutMode",
    "LadderFallback",
    "LemonPolicy",
    "MaintenanceWindow",
    "NotificationPolicy",
    "Policy",
    "PolicyError",
    "PolicyFileError",
    "RetentionPolicy",
    "Rung",
    "Sighting",
    "SlackPolicy",
    "SlurmPolicy",
    "UnavailableLimit",
    "ValidationPolicy",
    "XidPolicy",
    "counted_codes",
    "escalated_actions",
    "first_escalation",
    "format_duration",
    "load_policy",
    "longest_window",
    "parse_duration",
    "parse_policy",
    "sightings",
]


def _packaged(name: str) -> str:
    return resources.files("repairbot").joinpath(f"data/{name}").read_text(encoding="utf-8")


DEFAULT_POLICY_YAML = _packaged("policy-default.yaml")
"""The shipped default policy, every field spelled out (``repairbot/data/policy-default.yaml``)."""
