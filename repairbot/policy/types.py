"""The policy's shape: frozen dataclasses, one per section of the file, with defaults that explain themselves.

Apart from :mod:`repairbot.policy.parse` so the rules a fleet runs under read on one
screen, without the validation machinery in between. Defaults are written for a
fleet of about 2,000 GPU nodes; each class says why its values are what they are.
Import these through :mod:`repairbot.policy`; like it, this module imports nothing
of ours but :mod:`repairbot.model` and its sibling policy modules (DESIGN.md's rule).
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from repairbot.model import LABEL_FAILURE_DOMAIN, Action
from repairbot.policy.deferral import DeferralPolicy
from repairbot.policy.durations import format_duration
from repairbot.policy.escalation import EscalationRule
from repairbot.policy.silences import AlertmanagerPolicy, GrafanaPolicy
from repairbot.policy.slack_actions import SlackActionsPolicy
from repairbot.policy.slurm import SlurmPolicy
from repairbot.policy.xid_overrides import XidPolicy

LadderFallback = Callable[[str], Sequence[Action] | None]
"""Finding code → the catalog's default ladder, or None when the catalog has no opinion."""


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

    ``settle_time``: a repair cordons at once but waits this long after its
    fault before its first drain or action, so the breaker can see a storm
    *before* the first reboot — a leaf switch takes its nodes down within
    seconds of each other, and the first of them must not be rebooted alone.
    Thirty seconds is small beside a drain and a reboot (minutes).
    """

    max_faults: int = 10
    window: timedelta = timedelta(minutes=10)
    failure_domain_label: str = LABEL_FAILURE_DOMAIN
    max_per_domain: int = 2
    domain_window: timedelta = timedelta(minutes=5)
    half_open_canaries: int = 1
    settle_time: timedelta = timedelta(seconds=30)


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
    ``max_repairs_per_gpu`` does the same for one GPU, followed by its board serial:
    a board in that many earlier repairs within the window is quarantined for RMA
    on its next one, even while the node's other GPUs are fine.
    """

    max_repairs: int = 3
    window: timedelta = timedelta(days=7)
    max_repairs_per_gpu: int = 2


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """When finished GPURepairs are deleted, so the API server does not fill with years of history.

    A terminal repair goes once it is older than ``ttl`` *and* not among its
    node's ``keep_per_node`` newest: a node's recent story stays readable in
    ``kubectl get gpurepairs`` and the lemon rule's window stays whole (``ttl``
    may not be shorter than ``lemon.window``). A Quarantined repair stays until
    a human released the node (condition ``Released=True``): it is the
    hardware team's evidence. Slack threads and Jira tickets outlive it.
    """

    keep_per_node: int = 5
    ttl: timedelta = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """How a repaired node proves itself before it takes work again.

    ``dcgm_diag_level`` 2 (a few minutes) catches what NVML checks miss without
    the half hour of level 3; 0 skips DCGM. ``quiet_period`` is checked with
    ``promql`` only when ``prometheus_url`` is set. Idle checks pass too easily
    (NVSentinel #695), so ``require_load_check`` insists on a load test: the agent
    then runs DCGM's diagnostic at level 2 or more (real work on every GPU) and
    fails validation where DCGM is not installed, rather than pass on idle checks.
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
    actions: SlackActionsPolicy = field(default_factory=SlackActionsPolicy)


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
    retention: RetentionPolicy = RetentionPolicy()
    reboots_per_day: int = 2
    validation: ValidationPolicy = ValidationPolicy()
    notifications: NotificationPolicy = NotificationPolicy()
    runbook_base_url: str | None = None
    deferral: DeferralPolicy = field(default_factory=DeferralPolicy)
    xid: XidPolicy = field(default_factory=XidPolicy)
    escalations: tuple[EscalationRule, ...] = ()
    alertmanager: AlertmanagerPolicy = field(default_factory=AlertmanagerPolicy)
    grafana: GrafanaPolicy = field(default_factory=GrafanaPolicy)
    slurm: SlurmPolicy = field(default_factory=SlurmPolicy)

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
                "settleTime": format_duration(self.breaker.settle_time),
            },
            "drain": {
                "timeout": format_duration(self.drain.timeout),
                "gracePeriodSeconds": self.drain.grace_period_seconds,
                "allowForce": self.drain.allow_force,
                "rules": drain_rules,
            },
            "ladders": {code: [rung.to_dict() for rung in rungs] for code, rungs in self.ladders.items()},
            "actionTimeouts": {a.value: format_duration(t) for a, t in self.action_timeouts.items()},
            "lemon": {"maxRepairs": self.lemon.max_repairs, "window": format_duration(self.lemon.window),
                      "maxRepairsPerGpu": self.lemon.max_repairs_per_gpu},
            "retention": {"keepPerNode": self.retention.keep_per_node, "ttl": format_duration(self.retention.ttl)},
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
                "slack": {"channel": self.notifications.slack.channel, "onCall": self.notifications.slack.on_call,
                          "actions": self.notifications.slack.actions.to_dict()},
                "jira": {
                    "project": self.notifications.jira.project,
                    "issueType": self.notifications.jira.issue_type,
                    "labels": list(self.notifications.jira.labels),
                    "doneTransition": self.notifications.jira.done_transition,
                    "hardwareAssignee": self.notifications.jira.hardware_assignee,
                },
            },
            "runbookBaseUrl": self.runbook_base_url,
            "deferral": self.deferral.to_dict(),
            "xid": self.xid.to_dict(),
            "escalations": [rule.to_dict() for rule in self.escalations],
            "alertmanager": self.alertmanager.to_dict(),
            "grafana": self.grafana.to_dict(),
            "slurm": self.slurm.to_dict(),
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
