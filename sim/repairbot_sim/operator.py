"""The operator inside the sandbox: the production build, run on a thread with the sandbox policy."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from repairbot.kube.client import api_client
from repairbot.operator.dispatcher import ChatEndpoints
from repairbot.operator.main import OperatorParts, build_operator, run_kopf
from repairbot.policy import load_policy
from repairbot_sim import fleet
from repairbot_sim.access import SANDBOX_BREAKER_CONFIGMAP

log = logging.getLogger(__name__)

SANDBOX_POLICY = Path(__file__).resolve().parent / "data" / "policy-sandbox.yaml"


@dataclass
class SandboxOperator:
    parts: OperatorParts
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        kubeconfig: Path,
        policy_path: Path | None = None,
        *,
        chat: ChatEndpoints | None = None,
        alertmanager_url: str | None = None,
        grafana: tuple[str, str] | None = None,
    ) -> SandboxOperator:
        """Build the operator exactly as ``repairbot operator`` does and run kopf on a thread.

        ``chat`` points Slack and Jira at the sandbox's fakes; they are used when the policy
        names a channel or a project (the sandbox policy does). ``alertmanager_url`` (``repairbot
        sandbox --alertmanager URL``) holds repairs' silences in that Alertmanager; ``grafana``
        (URL, token) annotates every step there: both as the policy's ``url`` would.
        """
        policy = load_policy(policy_path or SANDBOX_POLICY)
        if alertmanager_url:
            policy = replace(policy, alertmanager=replace(policy.alertmanager, url=alertmanager_url))
        if grafana is not None:
            policy = replace(policy, grafana=replace(policy.grafana, url=grafana[0]))
        api = api_client(str(kubeconfig))
        parts = build_operator(
            api, policy, namespace=fleet.AGENT_NAMESPACE, chat=chat or ChatEndpoints(),
            breaker_configmap=SANDBOX_BREAKER_CONFIGMAP,  # the name the chart renders for the sandbox's release
            grafana_token=grafana[1] if grafana is not None else None,
        )  # fmt: skip
        running = cls(parts)
        running._thread = threading.Thread(
            target=run_kopf, args=(parts, running._stop, running._ready), name="sandbox-operator", daemon=True
        )
        running._thread.start()
        return running

    def wait_ready(self, timeout: float = 30.0) -> None:
        if not self._ready.wait(timeout):
            raise TimeoutError("the sandbox operator did not start within 30 s")

    def stop(self, timeout: float = 20.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
