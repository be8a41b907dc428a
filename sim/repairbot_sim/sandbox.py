"""``repairbot sandbox``: a small GPU cluster on 127.0.0.1 that real tools can talk to.

The sandbox starts the emulated Kubernetes API server, installs the chart's
GPURepair CRD, seeds GPU nodes with workloads and a PodDisruptionBudget, and
writes a kubeconfig plus ``state.json`` (every URL it serves) into a state
directory. ``kubectl``, the kubernetes client and kopf then work against it as
against a real cluster. Later parts (agents, operator, webhook, Slack and Jira
fakes) join the same sandbox and add their URLs to ``state.json``.

The API server authenticates and authorizes like a real one: the chart's
ServiceAccounts and RBAC are installed, and the operator, the webhook and
every agent use their own ServiceAccount's token (``state.json`` ``tokens``,
``kubeconfigs``; see :mod:`repairbot_sim.access`). The ``kubeconfig`` file is
cluster-admin, for humans and for the parts that stand for the cluster itself
(the simulated kubelets).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from repairbot.kube.client import api_client
from repairbot.operator.dispatcher import ChatEndpoints
from repairbot.policy import Policy, counted_codes, load_policy
from repairbot.webhook import SlackBot, WebhookOptions, start_webhook
from repairbot.webhook.auth import WebhookAuth
from repairbot.webhook.slack_actions import SLACK_ACTIONS_PATH
from repairbot_sim import fleet, workloads
from repairbot_sim.access import ComponentAccess, install_sandbox_rbac
from repairbot_sim.agents import SimulatedFleet
from repairbot_sim.control import control_app
from repairbot_sim.crd import load_crd
from repairbot_sim.grafana import GrafanaSim
from repairbot_sim.host import ActionTimes
from repairbot_sim.jira import JiraSim
from repairbot_sim.kubeapi import KubeApiServer
from repairbot_sim.operator import SANDBOX_POLICY, SandboxOperator
from repairbot_sim.redfish import RedfishSim
from repairbot_sim.sandbox_slurm import label_slurm_nodes, slurm_policy, start_slurm
from repairbot_sim.serving import serve
from repairbot_sim.slack import SlackSim
from repairbot_sim.slurm import SlurmWorld

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
KUBECONFIG_FILE = "kubeconfig"


def agent_report_codes(policy: Policy) -> tuple[str, ...]:
    """What the chart passes the agent as ``--report-codes`` for this policy: the classes the escalation
    rules count and the Xids the policy's catalog overrides change."""
    return tuple(dict.fromkeys((*counted_codes(policy.escalations), *policy.xid.finding_codes())))


@dataclass(slots=True)
class SandboxConfig:
    state_dir: Path
    nodes: int = 8
    host: str = "127.0.0.1"
    api_port: int = 0
    control_port: int = 0
    pod_termination_seconds: int | None = None
    agents: bool = True
    agent_interval: float = 1.0
    action_times: ActionTimes = field(default_factory=ActionTimes)
    agent_kmsg_report_interval: float = 60.0  # how often a kernel-log burst's repeats reach intake (the agent's)
    agent_clock_offset: float = 0.0  # seconds every simulated node's clock is ahead (negative: behind)
    operator: bool = True
    policy_path: Path | None = None
    rbac: list[dict[str, Any]] | None = None
    """The ServiceAccounts/RBAC to install instead of the chart's snapshot (a test removing one rule)."""
    alertmanager_url: str | None = None
    """An Alertmanager (``--alertmanager URL``) the operator holds repairs' silences in; None: no silences."""
    grafana: bool = False
    """Start a fake Grafana (``--grafana``) and annotate every repair step there."""
    slurm: bool = False
    """Start a real Slurm beside the cluster (``--slurm``) and make every simulated node a Slurm node."""


@dataclass(slots=True)
class Sandbox:
    """One running sandbox. ``start()`` then ``stop()``; both idempotent enough for tests."""

    config: SandboxConfig
    api: KubeApiServer = field(default_factory=KubeApiServer)
    state: dict[str, Any] = field(default_factory=dict)
    agents: SimulatedFleet | None = None
    operator: SandboxOperator | None = None
    bmc: RedfishSim | None = None
    slack: SlackSim | None = None
    _webhook: web.AppRunner | None = None
    _webhook_token: str = ""
    jira: JiraSim | None = None
    grafana: GrafanaSim | None = None
    _control: web.AppRunner | None = None
    access: ComponentAccess | None = None
    slurm: SlurmWorld | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.config.state_dir / KUBECONFIG_FILE

    async def start(self) -> dict[str, Any]:
        """Bring the cluster up and return the state written to ``state.json``."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        api_url = await self.api.start(host=self.config.host, port=self.config.api_port)
        self.api.create_object(load_crd())
        names = [fleet.node_name(i) for i in range(self.config.nodes)]
        self.bmc = RedfishSim(names, username=fleet.BMC_USERNAME, password=fleet.BMC_PASSWORD, on_reset=self._bmc_reset)
        bmc_url = await self.bmc.start(self.config.host)
        objects = fleet.cluster_objects(
            self.config.nodes, termination_seconds=self.config.pod_termination_seconds, bmc_url=bmc_url
        )
        if self.config.slurm:
            self.slurm = await asyncio.get_running_loop().run_in_executor(
                None, start_slurm, self.config.state_dir, names
            )
            objects = label_slurm_nodes(objects)
            self.config.policy_path = slurm_policy(
                self.config.policy_path or SANDBOX_POLICY, self.slurm.conf, self.config.state_dir / "policy-slurm.yaml"
            )
        # Owners before their pods, each pod carrying its created owner's uid (the API server has default, …).
        workloads.seed(self.api, objects)
        install_sandbox_rbac(self.api, self.config.rbac)
        self.api.write_kubeconfig(self.kubeconfig)
        access = self.access = ComponentAccess.issue(self.api, self.config.state_dir, names)
        if self.config.agents:
            self.agents = SimulatedFleet.build(
                names,
                self.config.state_dir / "nodes",
                lambda node: api_client(access.agent_kubeconfig(node)),
                kubelet=lambda node: api_client(str(self.kubeconfig)),
                interval=self.config.agent_interval,
                times=self.config.action_times,
                clock_offset=timedelta(seconds=self.config.agent_clock_offset),
                kmsg_report_interval=self.config.agent_kmsg_report_interval,
                report_codes=agent_report_codes(load_policy(self.config.policy_path or SANDBOX_POLICY)),
            )
            self.agents.start()
        # Fake Slack and Jira over real HTTP, answering the real slack-sdk and jira clients.
        self.slack, self.jira = SlackSim(), JiraSim()
        await self.slack.start(self.config.host)
        jira_url = await self.jira.start(self.config.host)
        grafana_url = None
        if self.config.grafana:
            self.grafana = GrafanaSim()
            grafana_url = await self.grafana.start(self.config.host)
        if self.config.operator:
            chat = ChatEndpoints(
                slack_token=self.slack.token,
                slack_api_url=self.slack.api_url,
                jira_url=jira_url,
                jira_user=self.jira.user,
                jira_password=self.jira.password,
            )
            self.operator = SandboxOperator.start(
                Path(access.kubeconfig("operator")),
                self.config.policy_path,
                chat=chat,
                alertmanager_url=self.config.alertmanager_url,
                grafana=(grafana_url, self.grafana.token) if self.grafana is not None and grafana_url else None,
            )
            await asyncio.get_running_loop().run_in_executor(None, self.operator.wait_ready)
        control_url = await self._start_control()
        self._webhook_token = secrets.token_urlsafe(24)
        # The Slack app's signing secret: the fake Slack signs its button clicks with it, the webhook checks them.
        signing_secret = self.slack.signing_secret = secrets.token_hex(16)
        self._webhook, webhook_url = await start_webhook(
            api_client(access.kubeconfig("webhook")),
            WebhookOptions(host=self.config.host, port=0, policy=self.config.policy_path or SANDBOX_POLICY),
            auth=WebhookAuth(bearer_token=self._webhook_token),
            slack_signing_secret=signing_secret,
            slack_bot=SlackBot(self.slack.token, self.slack.api_url),  # asks the fake Slack who is in a group
        )
        self.slack.request_url = f"{webhook_url}{SLACK_ACTIONS_PATH}"  # the Slack app's interactivity Request URL
        self.state = {
            "ready": True,
            "api": api_url,
            "kubeconfig": str(self.kubeconfig.resolve()),
            "kubeconfigs": access.kubeconfigs,
            "tokens": {"admin": self.api.admin_token, **access.tokens},
            "control": control_url,
            "kubeFaults": f"{api_url}/_sim/faults",
            "apiCA": self.api.ca_file,  # HTTPS only: verify raw calls to "api" with this file
            "bmc": bmc_url,
            "webhook": webhook_url,
            "webhookToken": self._webhook_token,
            "slack": self.slack.api_url,  # the base_url for slack-sdk's WebClient; GET {slack url}/_recorded
            "slackToken": self.slack.token,
            "slackSigningSecret": signing_secret,  # sign a click as Slack does (v0 HMAC-SHA256)
            "slackActions": self.slack.request_url,  # POST a signed block_actions payload here
            "jira": jira_url,
            "nodes": names,
        }
        if self.config.alertmanager_url:
            self.state["alertmanager"] = self.config.alertmanager_url  # where repairs' silences are held
        if self.grafana is not None:
            self.state["grafana"], self.state["grafanaToken"] = grafana_url, self.grafana.token
        if self.slurm is not None:
            self.state["slurmConf"] = str(self.slurm.conf)  # export as SLURM_CONF for sinfo, squeue, sbatch
        self._write_state()
        log.info("sandbox ready api=%s nodes=%d", api_url, self.config.nodes)
        return self.state

    def _bmc_reset(self, system_id: str, reset_type: str) -> None:
        """The simulated BMC got a reset: the node loses power and cold-boots."""
        member = self.agents.members.get(system_id) if self.agents else None
        if member is not None and reset_type not in ("ForceOff", "GracefulShutdown", "Nmi"):
            # Off the event loop: the simulated kubelet talks to the API server this loop serves.
            asyncio.get_running_loop().run_in_executor(None, member.host.power_cycle)

    async def _start_control(self) -> str:
        app = control_app(self.agents.handles() if self.agents else {})
        served = await serve(app, self.config.host, self.config.control_port)
        self._control = served.runner
        return served.url

    async def stop(self) -> None:
        if self.operator:
            await asyncio.get_running_loop().run_in_executor(None, self.operator.stop)
            self.operator = None
        if self.agents:
            # Agents block in threads (NVML-style waits); stop them off the event loop.
            await asyncio.get_running_loop().run_in_executor(None, self.agents.stop)
            self.agents = None
        if self._control:
            await self._control.cleanup()
            self._control = None
        if self.bmc:
            await self.bmc.stop()
            self.bmc = None
        if self.grafana:
            await self.grafana.stop()
            self.grafana = None
        if self._webhook:
            await self._webhook.cleanup()
            self._webhook = None
        for chat in (self.slack, self.jira):
            if chat is not None:
                await chat.stop()
        self.slack = self.jira = None
        await self.api.stop()
        if self.slurm is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.slurm.stop)
            self.slurm = None
        state_file = self.config.state_dir / STATE_FILE
        if state_file.exists():
            self.state["ready"] = False
            self._write_state()

    def _write_state(self) -> None:
        path = self.config.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)


async def run_until_signalled(config: SandboxConfig) -> None:
    """Serve until SIGINT/SIGTERM, printing one ``{"ready": true, ...}`` line when up."""
    sandbox = Sandbox(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    state = await sandbox.start()
    print(json.dumps(state), flush=True)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()
        log.info("sandbox stopped")


def read_state(state_dir: Path) -> dict[str, Any]:
    """What a running sandbox wrote; a clear error if none runs there."""
    path = state_dir / STATE_FILE
    if not path.exists():
        hint = f"start one with `repairbot sandbox --state-dir {state_dir}`"
        raise FileNotFoundError(f"no sandbox state at {path}: {hint}")
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return state
