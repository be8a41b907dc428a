"""kopf handlers: thin. They only tell the scheduler *which* repair to look at.

Everything a handler learns from a watch event is a hint; the reconciler
re-reads the GPURepair and its node before it decides anything, so a missed
or repeated event never changes an outcome, only its timing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf
from kubernetes import client

from repairbot.contract import is_terminal
from repairbot.kube.client import describe_error
from repairbot.kube.intake import Intake, IntakeRefused, is_held_quarantine
from repairbot.logs import step_fields
from repairbot.model import (
    GROUP,
    LABEL_DISABLED,
    LABEL_STATE,
    PLURAL,
    VERSION,
    Action,
    Finding,
    NodeState,
    Severity,
    Source,
    parse_time,
)
from repairbot.operator.fleet_cache import FleetCache
from repairbot.operator.metrics import OperatorMetrics, RepairGauges
from repairbot.operator.quarantine import QuarantineKeeper
from repairbot.operator.scheduler import RepairScheduler
from repairbot.operator.slurm_step import slurm_step_pending

log = logging.getLogger(__name__)

ANNOTATION_REASON = "repairbot.io/reason"
ANNOTATION_ACTION = "repairbot.io/action"


def connection_info(api: client.ApiClient) -> kopf.ConnectionInfo:
    """kopf logs in with exactly the credentials the kubernetes client uses (kubeconfig or in-cluster)."""
    config = api.configuration
    token = (config.api_key or {}).get("authorization") or (config.api_key or {}).get("BearerToken")
    scheme = None
    if token and " " in token:
        scheme, token = token.split(" ", 1)
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        token=token,
        scheme=scheme,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        username=config.username or None,
        password=config.password or None,
        default_namespace="default",
    )


def manual_finding(node: str, annotations: dict[str, str]) -> Finding:
    """A human's ``repairbot.io/state=faulty`` label as a finding (reason and action from annotations)."""
    reason = annotations.get(ANNOTATION_REASON) or "labelled faulty by hand"
    wanted = annotations.get(ANNOTATION_ACTION)
    action = Action(wanted) if wanted in {a.value for a in Action} else Action.NOTIFY
    return Finding(
        code="manual",
        message=f"node {node}: {reason}",
        action=action,
        severity=Severity.WARNING,
        source=Source.MANUAL,
        evidence={"label": f"{LABEL_STATE}={NodeState.FAULTY.value}"},
    )


def register(
    registry: kopf.OperatorRegistry,
    *,
    api: client.ApiClient,
    scheduler: RepairScheduler,
    intake: Intake,
    metrics: OperatorMetrics | None = None,
    fleet_cache: FleetCache | None = None,
    on_startup: Callable[[kopf.OperatorSettings], None] = lambda settings: None,
) -> None:
    """Attach RepairBot's handlers to ``registry`` (a fresh one per operator, so tests can run several)."""
    repairs_of_node: dict[str, set[str]] = {}
    # Quarantines still holding their node: new findings are recorded on them; a label change may release them.
    quarantines_of_node: dict[str, set[str]] = {}
    keeper = QuarantineKeeper(api)
    gauges = RepairGauges(metrics) if metrics is not None else None

    def count_phases(name: str, node: str, body: Mapping[str, Any] | None) -> None:
        """Keep the phase gauges (repairs by phase, stuck repairs, nodes out) that the dashboard and alerts read."""
        if gauges is None:
            return
        if body is None:
            gauges.seen(name, node, None, since=time.time())
            return
        status = body.get("status") or {}
        history = status.get("history") or []
        since = parse_time(str(history[-1]["at"])).timestamp() if history and history[-1].get("at") else time.time()
        gauges.seen(name, node, str(status.get("phase") or "Pending"), since=since)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # RepairBot posts its own events, in its own words
        settings.watching.server_timeout = 60
        settings.watching.client_timeout = 90
        if fleet_cache is not None:
            fleet_cache.prime(api)  # before the first reconcile: a half-filled cache would under-count the budget
        on_startup(settings)

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        keeper.stop()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(api)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def repair_changed(type: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        node = body.get("spec", {}).get("nodeName", "")
        if fleet_cache is not None and type == "DELETED":
            fleet_cache.repair_gone(name)
        elif fleet_cache is not None:
            fleet_cache.repair_seen(body)
        if type == "DELETED":
            scheduler.forget(name)
            repairs_of_node.get(node, set()).discard(name)
            quarantines_of_node.get(node, set()).discard(name)
            count_phases(name, node, None)
            return
        phase = (body.get("status") or {}).get("phase")
        count_phases(name, node, body)
        if is_held_quarantine(body):
            quarantines_of_node.setdefault(node, set()).add(name)
            keeper.poke(name)  # findings merged into it are recorded; a release asked for is carried out
        else:
            quarantines_of_node.get(node, set()).discard(name)
        if is_terminal(phase):
            if slurm_step_pending(body):
                scheduler.poke(name)  # finished, but Slurm was down for its resume: the reconciler retries it
            if name in repairs_of_node.get(node, set()):
                repairs_of_node[node].discard(name)
                # A node came back (or left for good): queued repairs may now fit in the budget.
                for waiting in sorted(n for names in repairs_of_node.values() for n in names):
                    scheduler.poke(waiting)
            return
        repairs_of_node.setdefault(node, set()).add(name)
        scheduler.poke(name, str(body.get("metadata", {}).get("resourceVersion", "")))

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_changed(
        type: str | None, name: str, body: kopf.Body, labels: kopf.Labels, annotations: kopf.Annotations, **_: Any
    ) -> None:
        if fleet_cache is not None and type == "DELETED":
            fleet_cache.node_gone(name)
        elif fleet_cache is not None:
            fleet_cache.node_seen(body)
        for repair in sorted(repairs_of_node.get(name, ())):
            scheduler.poke(repair)  # an uncordon by hand or a reboot ending is news for the repair
        if labels.get(LABEL_STATE) != NodeState.QUARANTINED.value:
            for quarantine in sorted(quarantines_of_node.get(name, ())):
                keeper.poke(quarantine)  # the label taken off by hand releases it (the keeper re-reads the node)
        opted_out = labels.get(LABEL_DISABLED) == "true"  # intake would refuse it: spare it the calls on every event
        if labels.get(LABEL_STATE) == NodeState.FAULTY.value and not repairs_of_node.get(name) and not opted_out:
            finding = manual_finding(name, dict(annotations))
            asyncio.get_running_loop().run_in_executor(None, _open_manual, intake, name, finding)


def _open_manual(intake: Intake, node: str, finding: Finding) -> None:
    """Open the repair a human's label asks for; a ``repairbot.io/action`` annotation picks its first rung."""
    wanted = finding.action.value if finding.action not in (Action.NONE, Action.NOTIFY) else None
    try:
        result = intake.report(node, [finding], source=Source.MANUAL, reason=finding.message, requested_action=wanted)
        log.info("manual repair node=%s repair=%s created=%s", node, result.name, result.created,
                 extra=step_fields(node=node, repair=result.name, action=wanted, opened=result.created))
    except IntakeRefused as refused:
        log.info("manual label not taken: %s", refused)
    except Exception as error:
        log.warning("could not open a manual repair for node=%s: %s", node, describe_error(error))
