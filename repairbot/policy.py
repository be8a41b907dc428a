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
same defaults out (a unit test keeps the two equal) and ``policy-sandbox.yaml``
shortens every clock for the simulated world.

This module imports nothing of ours but :mod:`repairbot.model` (DESIGN.md's
dependency rule), so the Xid catalog reaches :meth:`Policy.ladder_for` as an
injected ``fallback`` callable rather than an import.
"""

from __future__ import annotations

import difflib
import enum
import fnmatch
import json
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from repairbot.model import LABEL_FAILURE_DOMAIN, Action

LadderFallback = Callable[[str], Sequence[Action] | None]
"""Finding code → the catalog's default ladder, or None when the catalog has no opinion."""


class PolicyError(ValueError):
    """A policy that must not be used; ``errors`` holds one line per problem, each naming its field."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        plural = "" if len(self.errors) == 1 else "s"
        lines = "\n".join(f"  - {error}" for error in self.errors)
        super().__init__(f"invalid policy ({len(self.errors)} error{plural}):\n{lines}")


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``7d`` → timedelta. One number, one unit: ``90`` or ``1.5h`` are refused,
    because a bare number in a policy file is always a question (seconds? minutes?)."""
    found = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ValueError("is not a duration (use a number and a unit: 30s, 5m, 2h, 7d)")
    return timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)])


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration`, in the largest unit that divides exactly."""
    seconds = int(delta.total_seconds())
    for unit, size in _UNIT_SECONDS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True, slots=True)
class UnavailableLimit:
    """At most ``count`` nodes, or ``percent`` of a pool, out of service at once.

    A percentage rounds down but never below one node, except ``0%`` (a deliberate
    freeze): a 10% budget on an 8-node pool would otherwise never repair anything.
    """

    count: int | None = None
    percent: int | None = None

    def cap(self, pool_size: int) -> int:
        """How many nodes of a pool of ``pool_size`` may be out of service at once."""
        if self.count is not None:
            return self.count
        percent = self.percent or 0
        return 0 if percent == 0 else max(1, pool_size * percent // 100)

    def to_yaml(self) -> int | str:
        """As the file writes it: ``20`` or ``"5%"``."""
        return f"{self.percent}%" if self.percent is not None else (self.count or 0)


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """How many nodes may be out of service (cordoned, draining, repairing) at once.

    5% of a 2,000-node fleet is 100 nodes: enough to heal a bad day, too few to
    take a training cluster down. ``pool_label`` splits the budget per pool
    (e.g. ``nvidia.com/gpu.product``) so one pool's storm cannot spend another's.
    """

    max_unavailable: UnavailableLimit = UnavailableLimit(percent=5)
    pool_label: str | None = None


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When to stop automatic repairs: a storm is a fabric, power or driver problem, not N bad GPUs.

    Ten new faults in ten minutes is far above a 2,000-node fleet's normal rate
    (a few a day). Two in one failure domain (leaf switch, rack, PDU) within five
    minutes points at the domain, not the nodes. After a human resumes, one canary
    repair runs before the rest.
    """

    max_faults: int = 10
    window: timedelta = timedelta(minutes=10)
    failure_domain_label: str = LABEL_FAILURE_DOMAIN
    max_per_domain: int = 2
    domain_window: timedelta = timedelta(minutes=5)
    half_open_canaries: int = 1


class DrainMode(enum.StrEnum):
    """How a drain treats matching pods: evict (PDBs honoured), wait for them to finish, or delete after a wait."""

    EVICT = "evict"
    WAIT = "wait"
    FORCE_AFTER = "force-after"


@dataclass(frozen=True, slots=True)
class DrainRule:
    """Pods in ``namespace`` (glob, ``*`` = any) with all of ``label_selector`` drain by ``mode``."""

    mode: DrainMode
    namespace: str = "*"
    label_selector: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    wait_timeout: timedelta | None = None

    def matches(self, namespace: str, labels: Mapping[str, str]) -> bool:
        in_namespace = fnmatch.fnmatchcase(namespace, self.namespace)
        return in_namespace and all(labels.get(key) == value for key, value in self.label_selector.items())


@dataclass(frozen=True, slots=True)
class DrainPolicy:
    """Drains honour PodDisruptionBudgets; a drain that cannot finish blocks the repair for a human.

    Thirty minutes lets a checkpointing training job save and leave; longer and a
    faulty node holds its slot in the budget for too long. ``grace_period_seconds``
    None keeps each pod's own ``terminationGracePeriodSeconds``. Force-deleting
    pods loses work, so a ``force-after`` rule is refused unless ``allow_force``.
    """

    timeout: timedelta = timedelta(minutes=30)
    grace_period_seconds: int | None = None
    allow_force: bool = False
    rules: tuple[DrainRule, ...] = ()

    def rule_for(self, namespace: str, labels: Mapping[str, str]) -> DrainRule:
        """The first rule matching a pod; plain eviction when none does."""
        return next((rule for rule in self.rules if rule.matches(namespace, labels)), DrainRule(DrainMode.EVICT))


@dataclass(frozen=True, slots=True)
class Rung:
    """One step of a ladder: an action and how long it may take before the next rung is tried.

    ``timeout`` None on ``notify`` means "wait for a human"; with a timeout the
    ladder climbs on when nobody came.
    """

    action: Action
    timeout: timedelta | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action.value}
        if self.timeout is not None:
            out["timeout"] = format_duration(self.timeout)
        return out


TIMED_ACTIONS = (Action.GPU_RESET, Action.DRIVER_RELOAD, Action.REBOOT, Action.POWER_CYCLE)
DEFAULT_ACTION_TIMEOUTS: Mapping[Action, timedelta] = MappingProxyType(
    {
        Action.GPU_RESET: timedelta(minutes=5),
        Action.DRIVER_RELOAD: timedelta(minutes=10),
        Action.REBOOT: timedelta(minutes=20),
        Action.POWER_CYCLE: timedelta(minutes=30),
    }
)
"""How long each action may take when a rung names none: an 8-GPU node with IB can take 15 minutes to boot."""


def _ladder(*actions: Action) -> tuple[Rung, ...]:
    return tuple(Rung(action, DEFAULT_ACTION_TIMEOUTS.get(action)) for action in actions)


_REBOOT_FIRST = _ladder(Action.REBOOT, Action.POWER_CYCLE, Action.QUARANTINE)
_RESET_FIRST = _ladder(Action.GPU_RESET, Action.REBOOT, Action.QUARANTINE)
DEFAULT_LADDERS: Mapping[str, tuple[Rung, ...]] = MappingProxyType(
    {
        "xid-79": _REBOOT_FIRST,  # GPU fell off the bus: only a reboot brings it back
        "gpu-lost": _REBOOT_FIRST,
        "gpu-missing": _REBOOT_FIRST,
        "xid-48": _RESET_FIRST,  # double-bit ECC: a reset retires the page / remaps the row
        "ecc-dbe": _RESET_FIRST,
        "row-remap-pending": _ladder(Action.GPU_RESET),  # the remap takes effect at the next reset
        "row-remap-failure": _RESET_FIRST,
        "ib-port-down": _ladder(Action.NOTIFY),  # cabling and switches are a human's job
        "default": _ladder(Action.NOTIFY),  # never act on what we do not understand
    }
)


@dataclass(frozen=True, slots=True)
class LemonPolicy:
    """A node repaired ``max_repairs`` times within ``window`` is quarantined instead of repaired again.

    Three repairs in a week is a node that eats jobs; hardware should replace it.
    """

    max_repairs: int = 3
    window: timedelta = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """How a repaired node proves itself before it takes work again.

    ``dcgm_diag_level`` 2 (a few minutes) catches what NVML checks miss without
    the half hour of level 3; 0 skips DCGM. ``quiet_period`` is checked with
    ``promql`` only when ``prometheus_url`` is set. Idle checks pass too easily
    (NVSentinel #695), so ``require_load_check`` can insist on a load test.
    """

    dcgm_diag_level: int = 2
    timeout: timedelta = timedelta(minutes=15)
    quiet_period: timedelta = timedelta(minutes=10)
    prometheus_url: str | None = None
    promql: str = 'sum(increase(repairbot_agent_findings_total{node="$node",action!~"none|notify"}[$window]))'
    require_load_check: bool = False


@dataclass(frozen=True, slots=True)
class SlackPolicy:
    """Where repair threads go; None disables Slack."""

    channel: str | None = None
    on_call: str | None = None


@dataclass(frozen=True, slots=True)
class JiraPolicy:
    """Where repair tickets go; ``project`` None disables Jira."""

    project: str | None = None
    issue_type: str = "Task"
    labels: tuple[str, ...] = ("repairbot", "gpu")
    done_transition: str = "Done"
    hardware_assignee: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationPolicy:
    slack: SlackPolicy = SlackPolicy()
    jira: JiraPolicy = JiraPolicy()


@dataclass(frozen=True, slots=True)
class Policy:
    """The whole policy. Build it with :func:`parse_policy` or :func:`load_policy`, never by hand in production."""

    dry_run: bool = False
    budget: BudgetPolicy = BudgetPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    drain: DrainPolicy = DrainPolicy()
    ladders: Mapping[str, tuple[Rung, ...]] = field(default_factory=lambda: DEFAULT_LADDERS)
    action_timeouts: Mapping[Action, timedelta] = field(default_factory=lambda: DEFAULT_ACTION_TIMEOUTS)
    lemon: LemonPolicy = LemonPolicy()
    reboots_per_day: int = 2
    validation: ValidationPolicy = ValidationPolicy()
    notifications: NotificationPolicy = NotificationPolicy()
    runbook_base_url: str | None = None

    def ladder_for(self, finding_code: str, *, fallback: LadderFallback | None = None) -> tuple[Rung, ...]:
        """The ladder a finding climbs: exact key, else the longest matching glob, else the
        catalog's ladder (``fallback``), else ``default``. Policy beats catalog so a cluster can
        override any Xid; the catalog beats ``default`` so an unlisted Xid is still handled well."""
        exact = self.ladders.get(finding_code)
        if exact is not None and not _is_glob(finding_code):
            return exact
        globs = [p for p in self.ladders if _is_glob(p) and fnmatch.fnmatchcase(finding_code, p)]
        if globs:
            return self.ladders[max(globs, key=lambda p: (len(p), p))]
        actions = fallback(finding_code) if fallback is not None else None
        if actions:
            return tuple(Rung(action, self.action_timeouts.get(action)) for action in actions)
        return self.ladders["default"]

    def to_dict(self) -> dict[str, Any]:
        """The effective policy in the file's own shape (``repairbot policy check FILE`` prints it)."""
        drain_rules = [_rule_to_dict(rule) for rule in self.drain.rules]
        return {
            "dryRun": self.dry_run,
            "budget": {"maxUnavailable": self.budget.max_unavailable.to_yaml(), "poolLabel": self.budget.pool_label},
            "breaker": {
                "maxFaults": self.breaker.max_faults,
                "window": format_duration(self.breaker.window),
                "failureDomainLabel": self.breaker.failure_domain_label,
                "maxPerDomain": self.breaker.max_per_domain,
                "domainWindow": format_duration(self.breaker.domain_window),
                "halfOpenCanaries": self.breaker.half_open_canaries,
            },
            "drain": {
                "timeout": format_duration(self.drain.timeout),
                "gracePeriodSeconds": self.drain.grace_period_seconds,
                "allowForce": self.drain.allow_force,
                "rules": drain_rules,
            },
            "ladders": {code: [rung.to_dict() for rung in rungs] for code, rungs in self.ladders.items()},
            "actionTimeouts": {a.value: format_duration(t) for a, t in self.action_timeouts.items()},
            "lemon": {"maxRepairs": self.lemon.max_repairs, "window": format_duration(self.lemon.window)},
            "rebootsPerDay": self.reboots_per_day,
            "validation": {
                "dcgmDiagLevel": self.validation.dcgm_diag_level,
                "timeout": format_duration(self.validation.timeout),
                "quietPeriod": format_duration(self.validation.quiet_period),
                "prometheusUrl": self.validation.prometheus_url,
                "promql": self.validation.promql,
                "requireLoadCheck": self.validation.require_load_check,
            },
            "notifications": {
                "slack": {"channel": self.notifications.slack.channel, "onCall": self.notifications.slack.on_call},
                "jira": {
                    "project": self.notifications.jira.project,
                    "issueType": self.notifications.jira.issue_type,
                    "labels": list(self.notifications.jira.labels),
                    "doneTransition": self.notifications.jira.done_transition,
                    "hardwareAssignee": self.notifications.jira.hardware_assignee,
                },
            },
            "runbookBaseUrl": self.runbook_base_url,
        }


def _rule_to_dict(rule: DrainRule) -> dict[str, Any]:
    out: dict[str, Any] = {"namespace": rule.namespace, "mode": rule.mode.value}
    if rule.label_selector:
        out["labelSelector"] = dict(rule.label_selector)
    if rule.wait_timeout is not None:
        out["waitTimeout"] = format_duration(rule.wait_timeout)
    return out


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


# --------------------------------------------------------------------------- reading


def _show(value: Any) -> str:
    """A value as the error line quotes it: JSON where possible, so strings carry their quotes."""
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


class _Section:
    """One mapping of the policy file being read: knows its path, reports into a shared error list.

    Every reader returns the default after reporting an error, so reading goes on
    and the user sees every problem at once.
    """

    def __init__(self, raw: Any, path: str, known: Sequence[str], errors: list[str]) -> None:
        self.path, self.errors = path, errors
        if raw is not None and not isinstance(raw, Mapping):
            errors.append(f"{path}: {_show(raw)} must be a mapping")
        self.data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        for key in self.data:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                tip = f' (did you mean "{hint[0]}"?)' if hint else f" (known keys: {', '.join(known)})"
                errors.append(f"{path}.{key}: unknown key{tip}")

    def fail(self, key: str, value: Any, problem: str) -> None:
        self.errors.append(f"{self.path}.{key}: {_show(value)} {problem}")

    def child(self, key: str, known: Sequence[str]) -> _Section:
        return _Section(self.data.get(key), f"{self.path}.{key}", known, self.errors)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if isinstance(value, bool):
            return value
        self.fail(key, value, "must be true or false")
        return default

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, value, "must be a whole number")
        elif value < minimum:
            self.fail(key, value, f"is below the minimum of {minimum}")
        elif maximum is not None and value > maximum:
            self.fail(key, value, f"is over the maximum of {maximum}")
        else:
            return value
        return default

    def duration(self, key: str, default: timedelta, *, allow_zero: bool = False) -> timedelta:
        if key not in self.data:
            return default
        value = self.data[key]
        try:
            parsed = parse_duration(value)
        except ValueError as error:
            self.fail(key, value, str(error))
            return default
        if not parsed and not allow_zero:
            self.fail(key, value, "must be longer than zero")
            return default
        return parsed

    def text(self, key: str, default: str | None, *, pattern: str | None = None, hint: str = "") -> str | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, value, "must be a non-empty string")
        elif pattern is not None and not re.fullmatch(pattern, value):
            self.fail(key, value, hint or f"does not match {pattern}")
        else:
            return value
        return default

    def texts(self, key: str, default: tuple[str, ...], *, pattern: str, hint: str) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and re.fullmatch(pattern, v) for v in value):
            self.fail(key, value, hint)
            return default
        return tuple(value)


_TOP_KEYS = (
    "dryRun", "budget", "breaker", "drain", "ladders", "actionTimeouts", "lemon",
    "rebootsPerDay", "validation", "notifications", "runbookBaseUrl",
)  # fmt: skip
_LABEL_KEY = r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_URL = r"https?://[^\s]+"


def parse_policy(data: Mapping[str, Any] | None) -> Policy:
    """A policy from already-parsed YAML; missing keys take the defaults. Raises :class:`PolicyError`."""
    errors: list[str] = []
    top = _Section(data, "policy", _TOP_KEYS, errors)
    timeouts = _read_action_timeouts(top.child("actionTimeouts", [a.value for a in TIMED_ACTIONS]))
    policy = Policy(
        dry_run=top.boolean("dryRun", False),
        budget=_read_budget(top.child("budget", ("maxUnavailable", "poolLabel"))),
        breaker=_read_breaker(top.child("breaker", _BREAKER_KEYS)),
        drain=_read_drain(top.child("drain", ("timeout", "gracePeriodSeconds", "allowForce", "rules"))),
        ladders=_read_ladders(top, timeouts),
        action_timeouts=timeouts,
        lemon=_read_lemon(top.child("lemon", ("maxRepairs", "window"))),
        reboots_per_day=top.integer("rebootsPerDay", 2),
        validation=_read_validation(top.child("validation", _VALIDATION_KEYS)),
        notifications=_read_notifications(top.child("notifications", ("slack", "jira"))),
        runbook_base_url=top.text("runbookBaseUrl", None, pattern=_URL, hint="must be an http(s) URL"),
    )
    if errors:
        raise PolicyError(errors)
    return policy


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; YAML syntax errors become a :class:`PolicyError` too."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError([f"policy: {path} is not valid YAML: {error}"]) from None
    return parse_policy(data)


def _read_budget(section: _Section) -> BudgetPolicy:
    default = BudgetPolicy()
    raw = section.data.get("maxUnavailable", default.max_unavailable.to_yaml())
    limit = default.max_unavailable
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        limit = UnavailableLimit(count=raw)
    elif isinstance(raw, str) and re.fullmatch(r"\d+%", raw.strip()):
        percent = int(raw.strip()[:-1])
        if percent > 100:
            section.fail("maxUnavailable", raw, "is over 100%")
        else:
            limit = UnavailableLimit(percent=percent)
    else:
        section.fail("maxUnavailable", raw, 'must be a node count (e.g. 20) or a percentage (e.g. "5%")')
    pool = section.text("poolLabel", None, pattern=_LABEL_KEY, hint="is not a valid label key")
    return BudgetPolicy(max_unavailable=limit, pool_label=pool)


_BREAKER_KEYS = ("maxFaults", "window", "failureDomainLabel", "maxPerDomain", "domainWindow", "halfOpenCanaries")


def _read_breaker(section: _Section) -> BreakerPolicy:
    d = BreakerPolicy()
    return BreakerPolicy(
        max_faults=section.integer("maxFaults", d.max_faults, minimum=1),
        window=section.duration("window", d.window),
        failure_domain_label=section.text(
            "failureDomainLabel", d.failure_domain_label, pattern=_LABEL_KEY, hint="is not a valid label key"
        )
        or d.failure_domain_label,
        max_per_domain=section.integer("maxPerDomain", d.max_per_domain, minimum=1),
        domain_window=section.duration("domainWindow", d.domain_window),
        half_open_canaries=section.integer("halfOpenCanaries", d.half_open_canaries, minimum=1),
    )


def _read_drain(section: _Section) -> DrainPolicy:
    d = DrainPolicy()
    grace_raw = section.data.get("gracePeriodSeconds")
    grace = None if grace_raw is None else section.integer("gracePeriodSeconds", 0, minimum=0)
    allow_force = section.boolean("allowForce", d.allow_force)
    raw_rules = section.data.get("rules", [])
    if not isinstance(raw_rules, list):
        section.fail("rules", raw_rules, "must be a list of rules")
        raw_rules = []
    rules = []
    for index, raw in enumerate(raw_rules):
        rule = _Section(raw, f"{section.path}.rules[{index}]", _RULE_KEYS, section.errors)
        rules.append(_read_rule(rule, allow_force=allow_force))
    return DrainPolicy(
        timeout=section.duration("timeout", d.timeout),
        grace_period_seconds=grace,
        allow_force=allow_force,
        rules=tuple(rules),
    )


_RULE_KEYS = ("namespace", "labelSelector", "mode", "waitTimeout")


def _read_rule(rule: _Section, *, allow_force: bool) -> DrainRule:
    mode_raw = rule.data.get("mode", DrainMode.EVICT.value)
    try:
        mode = DrainMode(mode_raw)
    except ValueError:
        rule.fail("mode", mode_raw, f"is not one of {', '.join(m.value for m in DrainMode)}")
        mode = DrainMode.EVICT
    if mode is DrainMode.FORCE_AFTER and not allow_force:
        rule.fail("mode", mode_raw, "deletes pods; opt in with policy.drain.allowForce: true")
    wait = rule.duration("waitTimeout", timedelta(0)) if "waitTimeout" in rule.data else None
    if mode is not DrainMode.EVICT and wait is None:
        rule.fail("waitTimeout", None, f"is required for mode {mode.value}")
    selector_raw = rule.data.get("labelSelector", {})
    selector: dict[str, str] = {}
    if isinstance(selector_raw, Mapping) and all(isinstance(v, str) for v in selector_raw.values()):
        selector = {str(k): v for k, v in selector_raw.items()}
    else:
        rule.fail("labelSelector", selector_raw, "must map label keys to string values")
    return DrainRule(
        mode=mode,
        namespace=rule.text("namespace", "*") or "*",
        label_selector=MappingProxyType(selector),
        wait_timeout=wait,
    )


def _read_action_timeouts(section: _Section) -> Mapping[Action, timedelta]:
    timeouts = dict(DEFAULT_ACTION_TIMEOUTS)
    for action in TIMED_ACTIONS:
        timeouts[action] = section.duration(action.value, timeouts[action])
    return MappingProxyType(timeouts)


def _read_ladders(top: _Section, timeouts: Mapping[Action, timedelta]) -> Mapping[str, tuple[Rung, ...]]:
    """Policy ladders replace the defaults key by key; ``default`` can be changed, never removed."""
    raw = top.data.get("ladders") or {}
    ladders = {code: _retimed(rungs, timeouts) for code, rungs in DEFAULT_LADDERS.items()}
    if not isinstance(raw, Mapping):
        top.fail("ladders", raw, "must map finding classes to lists of rungs")
        return MappingProxyType(ladders)
    for code, rungs in raw.items():
        path = f"policy.ladders.{code}"
        if not isinstance(code, str) or not re.fullmatch(r"[a-z0-9*?\[\]-]+", code):
            top.errors.append(f"{path}: {_show(code)} is not a finding class or glob (e.g. xid-79, row-remap-*)")
            continue
        ladder = _read_ladder(rungs, path, timeouts, top.errors)
        if ladder:
            ladders[code] = ladder
    return MappingProxyType(ladders)


def _retimed(rungs: tuple[Rung, ...], timeouts: Mapping[Action, timedelta]) -> tuple[Rung, ...]:
    """A default ladder with the policy's action timeouts (the sandbox shortens them all)."""
    return tuple(Rung(rung.action, timeouts.get(rung.action)) for rung in rungs)


def _read_ladder(raw: Any, path: str, timeouts: Mapping[Action, timedelta], errors: list[str]) -> tuple[Rung, ...]:
    if not isinstance(raw, list) or not raw:
        errors.append(f"{path}: {_show(raw)} must be a non-empty list of rungs")
        return ()
    rungs: list[Rung] = []
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        rung = _Section(item if isinstance(item, Mapping) else {"action": item}, where, ("action", "timeout"), errors)
        action_raw = rung.data.get("action")
        try:
            action = Action(str(action_raw))
        except ValueError:
            errors.append(f"{where}.action: {_show(action_raw)} is not one of {', '.join(a.value for a in Action)}")
            continue
        untimed = action in (Action.NONE, Action.QUARANTINE)
        if untimed and "timeout" in rung.data:
            rung.fail("timeout", rung.data["timeout"], f"makes no sense for {action.value}")
        default_timeout = None if action is Action.NOTIFY else timeouts.get(action)
        timeout = rung.duration("timeout", timedelta(0)) if "timeout" in rung.data else default_timeout
        rungs.append(Rung(action, None if untimed else timeout))
    for index, rung_ in enumerate(rungs[:-1]):
        if rung_.action is Action.QUARANTINE:
            errors.append(f"{path}[{index}].action: \"quarantine\" is terminal; it must be the last rung")
        elif rung_.action is Action.NOTIFY and rung_.timeout is None:
            errors.append(f'{path}[{index}].action: "notify" without a timeout waits forever; later rungs unreachable')
        elif rung_.action is Action.NONE:
            errors.append(f"{path}[{index}].action: \"none\" may only stand alone")
    return tuple(rungs)


def _read_lemon(section: _Section) -> LemonPolicy:
    d = LemonPolicy()
    return LemonPolicy(section.integer("maxRepairs", d.max_repairs, minimum=1), section.duration("window", d.window))


_VALIDATION_KEYS = ("dcgmDiagLevel", "timeout", "quietPeriod", "prometheusUrl", "promql", "requireLoadCheck")


def _read_validation(section: _Section) -> ValidationPolicy:
    d = ValidationPolicy()
    promql = section.text("promql", d.promql) or d.promql
    try:
        names = {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(promql)} - {None}
    except ValueError:  # pragma: no cover - Template.pattern never raises on finditer
        names = set()
    if "node" not in names or not names <= {"node", "window"}:
        section.fail("promql", promql, "must use $node (and may use $window), no other placeholders")
    return ValidationPolicy(
        dcgm_diag_level=section.integer("dcgmDiagLevel", d.dcgm_diag_level, minimum=0, maximum=4),
        timeout=section.duration("timeout", d.timeout),
        quiet_period=section.duration("quietPeriod", d.quiet_period, allow_zero=True),
        prometheus_url=section.text("prometheusUrl", None, pattern=_URL, hint="must be an http(s) URL"),
        promql=promql,
        require_load_check=section.boolean("requireLoadCheck", d.require_load_check),
    )


def _read_notifications(section: _Section) -> NotificationPolicy:
    slack = section.child("slack", ("channel", "onCall"))
    jira = section.child("jira", ("project", "issueType", "labels", "doneTransition", "hardwareAssignee"))
    d = JiraPolicy()
    return NotificationPolicy(
        slack=SlackPolicy(
            channel=slack.text("channel", None, pattern=r"#[a-z0-9][a-z0-9_-]*|[CG][A-Z0-9]{6,}", hint=_CHANNEL_HINT),
            on_call=slack.text("onCall", None, pattern=r"@[\w.-]+|S[A-Z0-9]{6,}", hint=_ON_CALL_HINT),
        ),
        jira=JiraPolicy(
            project=jira.text("project", None, pattern=r"[A-Z][A-Z0-9_]+", hint="is not a Jira project key (e.g. OPS)"),
            issue_type=jira.text("issueType", d.issue_type) or d.issue_type,
            labels=jira.texts("labels", d.labels, pattern=r"\S+", hint="must be a list of labels without spaces"),
            done_transition=jira.text("doneTransition", d.done_transition) or d.done_transition,
            hardware_assignee=jira.text("hardwareAssignee", None),
        ),
    )


_CHANNEL_HINT = "must be a channel name like #gpu-repairs or a channel id"
_ON_CALL_HINT = "must be a handle like @gpu-oncall or a user-group id"


def _packaged(name: str) -> str:
    return resources.files("repairbot").joinpath(f"data/{name}").read_text(encoding="utf-8")


DEFAULT_POLICY_YAML = _packaged("policy-default.yaml")
"""The shipped default policy, every field spelled out (``repairbot/data/policy-default.yaml``)."""
SANDBOX_POLICY_YAML = _packaged("policy-sandbox.yaml")
"""The sandbox's policy: the defaults with every clock shortened for simulated time."""
