"""Reading a policy file: YAML → :class:`~repairbot.policy.types.Policy`, strict, every error at once.

A typo here can reboot a fleet or silently disable a safety, so reading is
strict: unknown keys are errors (with a "did you mean"), durations must carry a
unit, and *every* error is reported at once, each naming its field path
(``policy.drain.rules[0].mode``) — an SRE fixing a ConfigMap should not discover
the problems one operator restart at a time. Apart from
:mod:`repairbot.policy.types` because validation is most of the code and none of
the meaning. Import through :mod:`repairbot.policy`; this module imports nothing
of ours but :mod:`repairbot.model` and its sibling policy modules.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from repairbot.model import Action
from repairbot.policy.deferral import DEFERRAL_KEYS, read_deferral
from repairbot.policy.durations import format_duration, parse_duration
from repairbot.policy.escalation import read_escalations
from repairbot.policy.oncall import on_call_mention
from repairbot.policy.silences import ALERTMANAGER_KEYS, GRAFANA_KEYS, read_alertmanager, read_grafana
from repairbot.policy.slack_actions import KEYS as SLACK_ACTION_KEYS
from repairbot.policy.slack_actions import read_slack_actions
from repairbot.policy.slurm import SLURM_KEYS, read_slurm
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
    LemonPolicy,
    NotificationPolicy,
    Policy,
    RetentionPolicy,
    Rung,
    SlackPolicy,
    UnavailableLimit,
    ValidationPolicy,
)
from repairbot.policy.xid_overrides import read_xid


class PolicyError(ValueError):
    """A policy that must not be used; ``errors`` holds one line per problem, each naming its field."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        plural = "" if len(self.errors) == 1 else "s"
        lines = "\n".join(f"  - {error}" for error in self.errors)
        super().__init__(f"invalid policy ({len(self.errors)} error{plural}):\n{lines}")


class PolicyFileError(PolicyError):
    """The file is not a policy at all (unreadable, not UTF-8, too large or deep, not a mapping): one line.

    ``str()`` is ``"<file>: <problem>"``, what ``repairbot policy check`` and the
    operator print before exiting 2; there are no field errors to list, since
    nothing in the file could be read as policy.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__([f"{path}: {problem}"])
        self.path, self.problem = str(path), problem

    def __str__(self) -> str:
        return self.errors[0]


MAX_POLICY_BYTES = 1024 * 1024
"""A ConfigMap holds at most 1 MiB; a policy file larger than that is not one anybody wrote."""
MAX_POLICY_DEPTH = 32
"""The deepest real policy nests five levels (policy.drain.rules[0].selector.matchLabels); 32 leaves room."""


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
    "dryRun", "budget", "breaker", "drain", "ladders", "actionTimeouts", "lemon", "retention",
    "rebootsPerDay", "validation", "notifications", "runbookBaseUrl", "deferral",
    "xid", "escalations",
    "alertmanager", "grafana", "slurm",
)  # fmt: skip
_LABEL_KEY = r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_URL = r"https?://[^\s]+"


def parse_policy(data: Mapping[str, Any] | None) -> Policy:
    """A policy from already-parsed YAML; missing keys take the defaults. Raises :class:`PolicyError`."""
    errors: list[str] = []
    top = _Section(data, "policy", _TOP_KEYS, errors)
    timeouts = _read_action_timeouts(top.child("actionTimeouts", [a.value for a in TIMED_ACTIONS]))
    lemon = _read_lemon(top.child("lemon", ("maxRepairs", "window", "maxRepairsPerGpu")))
    policy = Policy(
        dry_run=top.boolean("dryRun", False),
        budget=_read_budget(top.child("budget", ("maxUnavailable", "poolLabel"))),
        breaker=_read_breaker(top.child("breaker", _BREAKER_KEYS)),
        drain=_read_drain(top.child("drain", ("timeout", "gracePeriodSeconds", "allowForce", "rules"))),
        ladders=_read_ladders(top, timeouts),
        action_timeouts=timeouts,
        lemon=lemon,
        retention=_read_retention(top.child("retention", ("keepPerNode", "ttl")), lemon),
        reboots_per_day=top.integer("rebootsPerDay", 2),
        validation=_read_validation(top.child("validation", _VALIDATION_KEYS)),
        notifications=_read_notifications(top.child("notifications", ("slack", "jira"))),
        runbook_base_url=top.text("runbookBaseUrl", None, pattern=_URL, hint="must be an http(s) URL"),
        deferral=read_deferral(top.child("deferral", DEFERRAL_KEYS)),
        xid=read_xid(top.data.get("xid"), errors),
        escalations=read_escalations(top.data.get("escalations"), errors),
        alertmanager=read_alertmanager(top.child("alertmanager", ALERTMANAGER_KEYS)),
        grafana=read_grafana(top.child("grafana", GRAFANA_KEYS)),
        slurm=read_slurm(top.child("slurm", SLURM_KEYS)),
    )
    if errors:
        raise PolicyError(errors)
    return policy


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; YAML syntax errors become a :class:`PolicyError` too.

    A file that is no policy at all — unreadable, not UTF-8, over 1 MiB, nested
    deeper than any policy (YAML's parser recurses per level, so 5,000 levels
    would exhaust Python's stack), or not a mapping — is a
    :class:`PolicyFileError` naming the file and the problem in one line.
    """
    data = _read_yaml(Path(path))
    if data is not None and not isinstance(data, Mapping):
        raise PolicyFileError(path, f"must be a mapping of policy sections, not {_yaml_type(data)}")
    return parse_policy(data)


def _read_yaml(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as error:
        raise PolicyFileError(path, f"cannot be read: {error.strerror or error}") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyFileError(path, f"is larger than {MAX_POLICY_BYTES} bytes; a policy is a few KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        problem = f"is not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start})"
        raise PolicyFileError(path, problem) from None
    too_deep = f"nests deeper than {MAX_POLICY_DEPTH} levels; no policy field is that deep"
    if _nesting(text) > MAX_POLICY_DEPTH:
        raise PolicyFileError(path, too_deep)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError([f"policy: {path} is not valid YAML: {error}"]) from None
    except RecursionError:
        raise PolicyFileError(path, too_deep) from None
    return data


def _nesting(text: str) -> int:
    """An upper bound of the YAML's depth before parsing: open flow brackets, or block indentation steps.

    Cheap and conservative — checked first because the parser itself would
    recurse once per level.
    """
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    depth = deepest = 0
    for char in "\n".join(lines):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    indents = {len(line) - len(line.lstrip(" ")) for line in lines}
    return max(deepest, len(indents))


def _yaml_type(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


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


_BREAKER_KEYS = (
    "maxFaults", "window", "failureDomainLabel", "maxPerDomain", "domainWindow", "halfOpenCanaries", "settleTime",
)  # fmt: skip


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
        settle_time=section.duration("settleTime", d.settle_time, allow_zero=True),
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
    return LemonPolicy(
        section.integer("maxRepairs", d.max_repairs, minimum=1),
        section.duration("window", d.window),
        section.integer("maxRepairsPerGpu", d.max_repairs_per_gpu, minimum=1),
    )


def _read_retention(section: _Section, lemon: LemonPolicy) -> RetentionPolicy:
    """``ttl`` covers the lemon window (and a day, the reboot cap's): deleting younger repairs would blind both."""
    d = RetentionPolicy()
    keep = section.integer("keepPerNode", d.keep_per_node, minimum=1, maximum=1000)
    floor = max(lemon.window, timedelta(days=1))
    ttl = section.duration("ttl", max(d.ttl, floor))
    if ttl < floor:
        section.fail("ttl", section.data["ttl"], f"is shorter than {format_duration(floor)} (lemon.window, and at "
                     "least a day for rebootsPerDay): those rules count a node's recent repairs")  # fmt: skip
    return RetentionPolicy(keep, max(ttl, floor))


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
    slack = section.child("slack", ("channel", "onCall", "actions"))
    jira = section.child("jira", ("project", "issueType", "labels", "doneTransition", "hardwareAssignee"))
    d = JiraPolicy()
    return NotificationPolicy(
        slack=SlackPolicy(
            channel=slack.text("channel", None, pattern=r"#[a-z0-9][a-z0-9_-]*|[CG][A-Z0-9]{6,}", hint=_CHANNEL_HINT),
            on_call=_read_on_call(slack),
            actions=read_slack_actions(slack.child("actions", SLACK_ACTION_KEYS)),
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


def _read_on_call(section: _Section) -> str | None:
    """The on-call mention in Slack's syntax (see :mod:`repairbot.policy.oncall`); a plain handle is an error."""
    value = section.text("onCall", None)
    if value is None:
        return None
    try:
        return on_call_mention(value)
    except ValueError as error:
        section.fail("onCall", value, str(error))
        return None
