"""Wire a node agent to the cluster: intake for findings, the node condition, the executor.

Used by ``repairbot agent`` on a real node and by the sandbox for every
simulated node, so both run exactly the same composition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from repairbot.agent.executor import ActionExecutor
from repairbot.agent.host import AgentHost
from repairbot.agent.recovery import CursorFile, read_recovery
from repairbot.agent.runner import NodeAgent
from repairbot.agent.signals import RepairSignalSink
from repairbot.kube.intake import Intake, IntakeRefused
from repairbot.kube.nodes import NodeCondition, set_node_condition
from repairbot.logs import step_fields
from repairbot.model import Finding, Source
from repairbot.remediations.action import ActionOutcome

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IntakeSink:
    """Findings from this node's agent go to intake as source ``agent``."""

    intake: Intake

    def report(self, node: str, findings: list[Finding]) -> None:
        try:
            result = self.intake.report(node, findings, source=Source.AGENT)
        except IntakeRefused as refused:  # opted out: not an error to retry, the node is not RepairBot's
            log.info("findings not taken node=%s findings=%d: %s", node, len(findings), refused)
            return
        log.info("findings reported node=%s repair=%s created=%s", node, result.name, result.created,
                 extra=step_fields(node=node, repair=result.name, opened=result.created, findings=len(findings)))


@dataclass(slots=True)
class ExecutorRecords:
    """Intake's reads on the agent: its own node's repairs from the executor's watch (no request per report).

    The node's labels (the opt-out check a create pays) are not watched by the agent: None sends intake
    to the API for them. Before the executor's first listing, the API too.
    """

    executor: ActionExecutor

    def repairs_of(self, node: str) -> list[dict[str, Any]] | None:
        return self.executor.listed_repairs() if node == self.executor.node else None

    def node_metadata(self, node: str) -> dict[str, Any] | None:
        return None


AGENT_SEND_SPACING = 1.0
"""Seconds between two of the agent's sends to intake: a burst is its first finding at once, then one write."""


@dataclass(slots=True)
class NodeConditionSink:
    api: client.ApiClient

    def set_condition(self, node: str, condition: NodeCondition) -> None:
        set_node_condition(self.api, node, condition)


def validate_node(
    agent: NodeAgent, host: AgentHost, diag_level: int = 0, require_load_check: bool = False
) -> ActionOutcome:
    """Re-run every detector from a clean slate, then DCGM's diagnostic if asked; pass only if all pass.

    Past events are cleared first: the question is whether the GPUs are
    healthy *now*, after the repair, not whether they once logged an Xid.
    Idle NVML checks pass too easily, which is why a DCGM level above 0 runs
    real work on every GPU where DCGM is installed.
    """
    agent.tracker.clear_events()
    report = agent.poll_once()
    if report.condition.status == "False":
        return ActionOutcome(False, f"validation failed: {report.condition.message}", details=_summary(report.active))
    unreadable = [s for s in report.reports if s.health is not None and s.health.state.value != "ok"]
    note = f" ({len(unreadable)} signal(s) unreadable)" if unreadable else ""
    verdict = f"validation passed: {len(report.reports)} detectors clean{note}"
    if diag_level <= 0:
        return ActionOutcome(True, verdict)
    diag = host.dcgm_diag(diag_level)
    if diag is None and require_load_check:
        return ActionOutcome(False, "validation failed: the policy requires a load check and dcgmi is not installed")
    if diag is None:
        return ActionOutcome(True, f"{verdict}; dcgmi not installed, diagnostic level {diag_level} skipped")
    if not diag.ok:
        return ActionOutcome(False, f"validation failed: {diag.message}", details=diag.details)
    return ActionOutcome(True, f"{verdict}; {diag.message}", details=diag.details)


def _summary(findings: list[Finding]) -> dict[str, str]:
    return {f"{f.code}@{f.gpu.identity() or 'node'}": f.message[:200] for f in findings[:20]}


@dataclass
class ConnectedAgent:
    """A running agent with its executor; ``stop()`` ends both."""

    agent: NodeAgent
    executor: ActionExecutor

    def start(self) -> None:
        self.agent.start()
        self.executor.start()

    def request_stop(self) -> None:
        self.executor.request_stop()
        self.agent.request_stop()

    def join(self) -> None:
        self.executor.join()
        self.agent.join()

    def stop(self) -> None:
        self.request_stop()
        self.join()


KMSG_CURSOR_FILE = "kmsg-cursor.json"


def connect_agent(
    agent: NodeAgent, api: client.ApiClient, host: AgentHost, state_dir: Path | None = None
) -> ConnectedAgent:
    """Give ``agent`` its sinks, its start-up recovery and an executor bound to the same node and API.

    ``state_dir`` (a hostPath on a real node) keeps the kernel-log cursor across agent restarts.
    """
    agent.conditions = NodeConditionSink(api)
    agent.recover = lambda: read_recovery(api, agent.node)
    if state_dir is not None:
        agent.cursor = CursorFile(state_dir / KMSG_CURSOR_FILE)
    executor = ActionExecutor(
        node=agent.node,
        api=api,
        host=host,
        validate=lambda level, load_check: validate_node(agent, host, level, load_check),
        on_repaired=agent.repaired,
        gate=agent.recovered_event,
    )
    agent.sink = IntakeSink(Intake(api, ExecutorRecords(executor)))
    agent.send_spacing = agent.send_spacing or AGENT_SEND_SPACING
    agent.signals = RepairSignalSink(api, executor.active_repairs)
    return ConnectedAgent(agent, executor)
