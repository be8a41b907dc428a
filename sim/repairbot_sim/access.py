"""Who is who in the sandbox: the chart's RBAC, one token and kubeconfig per component.

The sandbox installs the ServiceAccounts, Roles and bindings the Helm chart
renders (release ``repairbot`` in namespace ``repairbot``), from the snapshot
``sim/repairbot_sim/data/sandbox-rbac.yaml`` (helm's engine is a test dependency only;
``tests/chart/test_sandbox_rbac_snapshot.py`` fails when the snapshot is
stale). Each component then talks to the API server as its own
ServiceAccount, so a request the chart does not grant fails in the sandbox as
it would in a cluster:

* the operator as ``system:serviceaccount:repairbot:repairbot-operator``;
* the webhook as ``…:repairbot-webhook``;
* each node's agent as ``…:repairbot-agent`` with the pod's node in its
  token's ``authentication.kubernetes.io/node-name`` extra, as a projected
  pod token carries it.

The sandbox's own ``kubeconfig`` (humans, tests, the simulated kubelets)
stays cluster-admin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from repairbot_sim import fleet
from repairbot_sim.kube.identity import UserInfo, service_account
from repairbot_sim.kubeapi import KubeApiServer

__all__ = [
    "CHART_RELEASE",
    "SANDBOX_BREAKER_CONFIGMAP",
    "SANDBOX_CHART_VALUES",
    "SANDBOX_LEASE",
    "SANDBOX_RBAC",
    "SANDBOX_RBAC_KINDS",
    "ComponentAccess",
    "component_user",
    "install_sandbox_rbac",
    "load_sandbox_rbac",
]

SANDBOX_RBAC = Path(__file__).resolve().parent / "data" / "sandbox-rbac.yaml"
CHART_RELEASE = "repairbot"
SANDBOX_CHART_VALUES: dict[str, Any] = {
    # The operator may read exactly the Secret the nodes' repairbot.io/bmc-secret annotation names.
    "bmc": {"existingSecret": fleet.BMC_SECRET},
}
"""The chart values the sandbox stands for (policy-sandbox.yaml does not allow force-deleting pods)."""
SANDBOX_LEASE = f"{CHART_RELEASE}-operator"
"""The Lease the chart names for this release (repairbot.leaseName) and lets the operator get and update."""
SANDBOX_BREAKER_CONFIGMAP = f"{CHART_RELEASE}-breaker"
"""The breaker ConfigMap the chart names for this release (repairbot.breakerConfigMap)."""
SANDBOX_RBAC_KINDS = (
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)


def component_user(component: str, *, node: str | None = None) -> UserInfo:
    """The ServiceAccount user ``component`` (operator, webhook, agent) authenticates as."""
    return service_account(fleet.AGENT_NAMESPACE, f"{CHART_RELEASE}-{component}", node=node)


def load_sandbox_rbac(path: Path = SANDBOX_RBAC) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def install_sandbox_rbac(api: KubeApiServer, documents: list[dict[str, Any]] | None = None) -> None:
    """Apply the chart's access objects (in process, as ``helm install`` by a cluster-admin would)."""
    for document in load_sandbox_rbac() if documents is None else documents:
        api.apply_object(document)


@dataclass
class ComponentAccess:
    """Tokens and kubeconfigs of the sandbox's components, written into the state directory."""

    state_dir: Path
    tokens: dict[str, Any] = field(default_factory=dict)
    kubeconfigs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def issue(cls, api: KubeApiServer, state_dir: Path, nodes: list[str]) -> ComponentAccess:
        access = cls(state_dir)
        for component in ("operator", "webhook"):
            access.tokens[component] = api.issue_token(component_user(component))
            path = state_dir / f"kubeconfig-{component}"
            api.write_kubeconfig(path, token=access.tokens[component], context=f"repairbot-{component}")
            access.kubeconfigs[component] = str(path.resolve())
        access.tokens["agents"], access.kubeconfigs["agents"] = {}, {}
        for node in nodes:
            token = api.issue_token(component_user("agent", node=node))
            path = state_dir / f"kubeconfig-agent-{node}"
            api.write_kubeconfig(path, token=token, context=f"repairbot-agent-{node}")
            access.tokens["agents"][node] = token
            access.kubeconfigs["agents"][node] = str(path.resolve())
        return access

    def kubeconfig(self, component: str) -> str:
        return str(self.kubeconfigs[component])

    def agent_kubeconfig(self, node: str) -> str:
        return str(self.kubeconfigs["agents"][node])
