"""``repairbot status``: the fleet's repairs on one screen for the on-call, read from the cluster alone.

What an on-call asks first: what is being repaired and where it stands, is
the storm breaker open (fleet-wide or in which failure domain), how much of
the out-of-service budget is spent, which incidents are open, and what waits
for a human — with the command that moves it. Every answer comes from what
the operator already stores (the GPURepairs, the breaker ConfigMap, the
Lease, the policy ConfigMap the chart writes), read with ``get``/``list``
only: an SRE with read access to RepairBot's objects can run it, and running
it changes nothing.

:func:`read_cluster` does the reads; :func:`summarize` is pure (objects in,
:class:`FleetStatus` out) so the screen is tested without a cluster;
:mod:`repairbot.operator.status_text` draws the human screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import as_object, raw_call
from repairbot.kube.intake import is_held_quarantine
from repairbot.machine.breaker import Breaker, Breakers, BreakerState
from repairbot.machine.deferral import DEFERRED
from repairbot.model import GROUP, PLURAL, VERSION, Action, Phase, format_time, parse_time
from repairbot.operator.breaker_store import CONFIGMAP as BREAKER_CONFIGMAP
from repairbot.operator.breaker_store import KEY as BREAKER_KEY
from repairbot.operator.breaker_store import breakers_from_json
from repairbot.operator.facts import GPU_NODE_SELECTOR
from repairbot.operator.leader import LEASE_NAME
from repairbot.operator.metrics import OUT_OF_SERVICE_PHASES
from repairbot.policy import Policy, PolicyError, parse_policy

POLICY_KEY = "policy.yaml"
POLICY_SELECTOR = "app.kubernetes.io/component=operator"
"""The chart's policy ConfigMap: the operator component's ConfigMap holding ``policy.yaml``."""
WAITING_CONDITIONS = ("Blocked", DEFERRED, "ReconcileError")
"""Conditions whose message says what a repair waits for, most telling first."""


@dataclass(frozen=True, slots=True)
class ClusterRead:
    """Everything :func:`summarize` needs, as the API server returned it."""

    repairs: tuple[Mapping[str, Any], ...]
    nodes: tuple[Mapping[str, Any], ...]
    breakers: Breakers | None = None
    """None: the breaker ConfigMap is missing (no storm ever) or not readable."""
    lease: Mapping[str, Any] | None = None
    policy: Policy | None = None
    policy_source: str | None = None
    unreadable: tuple[str, ...] = ()
    """What could not be read (``configmaps repairbot/repairbot-breaker: Forbidden (403)``), shown, not hidden."""


@dataclass(frozen=True, slots=True)
class ActiveRepair:
    name: str
    node: str
    phase: str
    reason: str
    action: str | None
    attempt: int
    age_seconds: float
    in_phase_seconds: float
    waiting_for: str
    blocked_by: str | None = None
    incident: str | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class BreakerLine:
    scope: str  # "fleet" or "domain"
    domain: str | None
    state: str
    incident: str | None
    message: str
    opened_at: str | None
    canaries: tuple[str, ...] = ()
    canaries_passed: int = 0


@dataclass(frozen=True, slots=True)
class PoolBudget:
    pool: str
    size: int
    cordoned: int
    """GPU nodes of the pool marked unschedulable, by anyone: what the budget counts."""
    out_by_repairbot: int
    """Of those, nodes an unfinished repair or a held quarantine keeps out."""
    cap: int | None
    """How many may be out at once under the policy; None when no policy could be read."""


@dataclass(frozen=True, slots=True)
class Budget:
    max_unavailable: int | str | None
    policy_source: str | None
    pools: tuple[PoolBudget, ...]


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    repairs: tuple[str, ...]
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HumanWait:
    """Something nothing moves until a person acts, and the command that does."""

    what: str
    subject: str
    why: str
    commands: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FleetStatus:
    time: str
    leader: str | None
    leader_renewed: str | None
    repairs: tuple[ActiveRepair, ...]
    by_phase: Mapping[str, int]
    breakers: tuple[BreakerLine, ...]
    budget: Budget
    incidents: tuple[Incident, ...]
    waiting_for_human: tuple[HumanWait, ...]
    unreadable: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document: the same facts as the screen, field names in camelCase as the CRD's."""
        return _camel(asdict(self))


def read_cluster(api: client.ApiClient, *, namespace: str, policy: Policy | None, policy_source: str | None = None,
                 lease_name: str = LEASE_NAME, breaker_configmap: str = BREAKER_CONFIGMAP) -> ClusterRead:  # fmt: skip
    """One read of the GPURepairs and GPU nodes (required) and of the breaker, Lease and policy (if readable).

    ``lease_name`` and ``breaker_configmap`` are the release's (the chart derives them from the release name).
    """
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    repairs = as_object(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)).get("items") or []
    nodes = raw_call(core.list_node, label_selector=GPU_NODE_SELECTOR).get("items") or []
    unreadable: list[str] = []
    breakers = None
    try:
        stored = raw_call(core.read_namespaced_config_map, breaker_configmap, namespace)
        text = (stored.get("data") or {}).get(BREAKER_KEY)
        breakers = breakers_from_json(text) if text else None
    except ApiException as error:
        if error.status != 404:
            unreadable.append(_unread(f"configmaps {namespace}/{breaker_configmap}", error))
    lease = None
    try:
        lease = raw_call(client.CoordinationV1Api(api).read_namespaced_lease, lease_name, namespace)
    except ApiException as error:
        if error.status != 404:
            unreadable.append(_unread(f"leases {namespace}/{lease_name}", error))
    if policy is None:
        policy, policy_source = _policy_from_configmap(core, namespace, unreadable)
    return ClusterRead(tuple(repairs), tuple(nodes), breakers, lease, policy, policy_source, tuple(unreadable))


def _policy_from_configmap(core: client.CoreV1Api, namespace: str, unreadable: list[str]
                           ) -> tuple[Policy | None, str | None]:  # fmt: skip
    """The policy the chart stores for the operator; None (and why, in ``unreadable``) when there is none."""
    try:
        listing = raw_call(core.list_namespaced_config_map, namespace, label_selector=POLICY_SELECTOR)
    except ApiException as error:
        unreadable.append(_unread(f"configmaps {namespace} (the policy)", error))
        return None, None
    for item in listing.get("items") or []:
        text = (item.get("data") or {}).get(POLICY_KEY)
        if text is None:
            continue
        where = f"configmap {namespace}/{item['metadata']['name']}"
        try:
            return parse_policy(yaml.safe_load(text) or {}), where
        except (PolicyError, yaml.YAMLError) as error:
            unreadable.append(f"{where}: not a valid policy ({str(error).splitlines()[0]})")
            return None, None
    return None, None


def _unread(what: str, error: ApiException) -> str:
    return f"{what}: {error.reason} ({error.status})"


# --- the pure summary


def summarize(read: ClusterRead, now: datetime) -> FleetStatus:
    """What the screen shows, from one :class:`ClusterRead` as of ``now``."""
    active = [r for r in read.repairs if _is_active(r)]
    repairs = tuple(sorted((_active_repair(r, now) for r in active), key=lambda r: (-r.age_seconds, r.name)))
    by_phase: dict[str, int] = {}
    for repair in repairs:
        by_phase[repair.phase] = by_phase.get(repair.phase, 0) + 1
    breakers = _breaker_lines(read.breakers)
    holder = (read.lease or {}).get("spec") or {}
    return FleetStatus(
        time=format_time(now),
        leader=holder.get("holderIdentity"),
        leader_renewed=holder.get("renewTime"),
        repairs=repairs,
        by_phase=by_phase,
        breakers=breakers,
        budget=_budget(read, active),
        incidents=_incidents(active),
        waiting_for_human=_human_waits(repairs, breakers),
        unreadable=read.unreadable,
    )


def _is_active(repair: Mapping[str, Any]) -> bool:
    """Unfinished, or a quarantine still holding its node (Quarantined is final only once released)."""
    phase = str((repair.get("status") or {}).get("phase") or Phase.PENDING.value)
    return not Phase(phase).is_terminal or is_held_quarantine(repair)


def _active_repair(repair: Mapping[str, Any], now: datetime) -> ActiveRepair:
    spec, status, meta = repair.get("spec") or {}, repair.get("status") or {}, repair.get("metadata") or {}
    phase = str(status.get("phase") or Phase.PENDING.value)
    opened = status.get("detectedAt") or status.get("receivedAt") or meta.get("creationTimestamp")
    history = status.get("history") or []
    entered = history[-1].get("at") if history else None
    conditions = [c for c in status.get("conditions") or () if c.get("status") == "True"]
    blocked = next((c for c in conditions if c.get("type") == "Blocked"), None)
    return ActiveRepair(
        name=str(meta.get("name")),
        node=str(spec.get("nodeName") or ""),
        phase=phase,
        reason=str(status.get("reason") or spec.get("reason") or _first_finding(spec) or ""),
        action=status.get("action"),
        attempt=int(status.get("attempt") or 0),
        age_seconds=_seconds_since(opened, now),
        in_phase_seconds=_seconds_since(entered or opened, now),
        waiting_for=_waiting_for(phase, conditions, str(status.get("message") or "")),
        blocked_by=str(blocked.get("reason") or "") if blocked else None,
        incident=status.get("incident"),
        dry_run=bool(spec.get("dryRun")),
    )


def _first_finding(spec: Mapping[str, Any]) -> str | None:
    findings = spec.get("findings") or []
    return str(findings[0].get("code") or "") if findings else None


def _waiting_for(phase: str, conditions: Iterable[Mapping[str, Any]], message: str) -> str:
    """The operator's own words for what holds the repair: a waiting condition's message, else its last one."""
    by_type = {str(c.get("type")): c for c in conditions}
    for kind in WAITING_CONDITIONS:
        if kind in by_type and by_type[kind].get("message"):
            return f"{kind}: {by_type[kind]['message']}"
    if phase == Phase.QUARANTINED.value:
        return message or "a human: the node stays out until released"
    return message


def _seconds_since(text: str | None, now: datetime) -> float:
    if not text:
        return 0.0
    try:
        return max((now - parse_time(str(text))).total_seconds(), 0.0)
    except ValueError:
        return 0.0


def _breaker_lines(breakers: Breakers | None) -> tuple[BreakerLine, ...]:
    if breakers is None:
        return (BreakerLine("fleet", None, BreakerState.CLOSED.value, None, "", None),)
    fleet = [_breaker_line("fleet", None, breakers.fleet)]
    return tuple(fleet + [_breaker_line("domain", d, b) for d, b in sorted(breakers.domains.items())])


def _breaker_line(scope: str, domain: str | None, breaker: Breaker) -> BreakerLine:
    return BreakerLine(
        scope, domain, breaker.state.value, breaker.incident, breaker.message,
        format_time(breaker.opened_at) if breaker.opened_at else None, tuple(breaker.canaries),
        breaker.canaries_passed,
    )  # fmt: skip


def _budget(read: ClusterRead, active: list[Mapping[str, Any]]) -> Budget:
    """Per pool (the policy's ``budget.poolLabel``, else all GPU nodes): cordoned nodes against the cap."""
    label = read.policy.budget.pool_label if read.policy else None
    held = {
        str((r.get("spec") or {}).get("nodeName") or "")
        for r in active
        if str((r.get("status") or {}).get("phase") or "") in OUT_OF_SERVICE_PHASES
        and not (r.get("spec") or {}).get("dryRun")
    }
    pools: dict[str, list[Mapping[str, Any]]] = {}
    for node in read.nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        pools.setdefault(str(labels.get(label) or "gpu-nodes") if label else "gpu-nodes", []).append(node)
    lines = []
    for pool, members in sorted(pools.items()):
        cordoned = [n for n in members if (n.get("spec") or {}).get("unschedulable")]
        ours = sum(1 for n in cordoned if n["metadata"]["name"] in held)
        cap = read.policy.budget.max_unavailable.cap(len(members)) if read.policy else None
        lines.append(PoolBudget(pool, len(members), len(cordoned), ours, cap))
    limit = read.policy.budget.max_unavailable.to_yaml() if read.policy else None
    return Budget(limit, read.policy_source, tuple(lines))


def _incidents(active: list[Mapping[str, Any]]) -> tuple[Incident, ...]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for repair in active:
        incident = (repair.get("status") or {}).get("incident")
        if incident:
            grouped.setdefault(str(incident), []).append(repair)
    return tuple(
        Incident(
            key,
            tuple(sorted(str(r["metadata"]["name"]) for r in members)),
            tuple(sorted({str((r.get("spec") or {}).get("nodeName") or "") for r in members})),
        )
        for key, members in sorted(grouped.items())
    )


def _human_waits(repairs: Iterable[ActiveRepair], breakers: Iterable[BreakerLine]) -> tuple[HumanWait, ...]:
    """Blocked repairs, held quarantines and open breakers: each with the command that moves it on."""
    waits = []
    for line in breakers:
        if line.state == BreakerState.OPEN.value:
            where = f"failure domain {line.domain}" if line.domain else "the fleet"
            waits.append(HumanWait(
                "storm breaker open", where, line.message or "too many faults at once",
                ("repairbot resume --all",),
            ))  # fmt: skip
    for repair in repairs:
        if repair.phase == Phase.BLOCKED.value:
            waits.append(HumanWait(
                "blocked repair", repair.name, repair.waiting_for or (repair.blocked_by or "blocked"),
                (f"repairbot resume {repair.name}", f"repairbot repair {repair.node} --action quarantine"),
            ))  # fmt: skip
        elif repair.phase == Phase.REMEDIATING.value and repair.action == Action.NOTIFY.value:
            waits.append(HumanWait(
                "node held for a human", repair.name, repair.waiting_for or "kept cordoned, not drained",
                (f"repairbot resume {repair.name}", f"repairbot repair {repair.node} --action quarantine"),
            ))  # fmt: skip
        elif repair.phase == Phase.QUARANTINED.value:
            waits.append(HumanWait(
                "quarantined node", repair.node, f"{repair.name}: {repair.waiting_for or repair.reason}",
                (f"repairbot release {repair.node}",),
            ))  # fmt: skip
    return tuple(waits)


def _camel(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {_camel_word(str(k)) if "_" in str(k) else str(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_camel(item) for item in value]
    return value


def _camel_word(word: str) -> str:
    head, *rest = word.split("_")
    return head + "".join(part.capitalize() for part in rest)
