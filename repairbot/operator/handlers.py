"""kopf handlers: thin. They only tell the scheduler *which* repair to look at.

Everything a handler learns from a watch event is a hint; the reconciler
re-reads the GPURepair and its node before it decides anything, so a missed
or repeated event never changes an outcome, only its timing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes import client

from repairbot.kube.intake import Intake
from repairbot.model import GROUP, LABEL_STATE, PLURAL, VERSION, Action, Finding, NodeState, Severity, Source
from repairbot.operator.scheduler import RepairScheduler

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
    on_startup: Callable[[kopf.OperatorSettings], None] = lambda settings: None,
) -> None:
    """Attach RepairBot's handlers to ``registry`` (a fresh one per operator, so tests can run several)."""
    repairs_of_node: dict[str, set[str]] = {}

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # RepairBot posts its own events, in its own words
        settings.watching.server_timeout = 60
        settings.watching.client_timeout = 90
        on_startup(settings)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(api)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def repair_changed(type: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        node = body.get("spec", {}).get("nodeName", "")
        if type == "DELETED":
            scheduler.forget(name)
            repairs_of_node.get(node, set()).discard(name)
            return
        phase = (body.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed", "Quarantined", "Cancelled"):
            if name in repairs_of_node.get(node, set()):
                repairs_of_node[node].discard(name)
                # A node came back (or left for good): queued repairs may now fit in the budget.
                for waiting in sorted(n for names in repairs_of_node.values() for n in names):
                    scheduler.poke(waiting)
            return
        repairs_of_node.setdefault(node, set()).add(name)
        scheduler.poke(name)

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_changed(name: str, labels: kopf.Labels, annotations: kopf.Annotations, **_: Any) -> None:
        for repair in sorted(repairs_of_node.get(name, ())):
            scheduler.poke(repair)  # an uncordon by hand or a reboot ending is news for the repair
        if labels.get(LABEL_STATE) == NodeState.FAULTY.value and not repairs_of_node.get(name):
            finding = manual_finding(name, dict(annotations))
            asyncio.get_running_loop().run_in_executor(None, _open_manual, intake, name, finding)


def _open_manual(intake: Intake, node: str, finding: Finding) -> None:
    try:
        result = intake.report(node, [finding], source=Source.MANUAL, reason=finding.message)
        log.info("manual repair node=%s repair=%s created=%s", node, result.name, result.created)
    except Exception as error:
        log.warning("could not open a manual repair for node=%s: %s", node, error)
