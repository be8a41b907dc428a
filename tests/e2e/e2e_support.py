"""Small readers and waiters shared by the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from kubernetes import client

from repairbot.kube.client import raw_call
from repairbot.model import GROUP, PLURAL, VERSION
from repairbot_sim.access import SANDBOX_BREAKER_CONFIGMAP, SANDBOX_LEASE
from repairbot_sim.background import BackgroundSandbox
from repairbot_sim.host import ActionTimes
from repairbot_sim.jira import JiraSim
from repairbot_sim.slack import SlackSim

T = TypeVar("T")

FAST = ActionTimes(gpu_reset=0.1, driver_reload=0.1, reboot=0.5)

# The sandbox policy with test-sized clocks; each test overrides what it studies.
TEST_POLICY: dict[str, Any] = {
    "budget": {"maxUnavailable": 4},
    "breaker": {"maxFaults": 50, "window": "10m", "maxPerDomain": 10, "domainWindow": "5m", "settleTime": "0s"},
    "drain": {"timeout": "20s", "gracePeriodSeconds": 1},
    "actionTimeouts": {"gpu-reset": "5s", "driver-reload": "5s", "reboot": "10s", "power-cycle": "10s"},
    "lemon": {"maxRepairs": 3, "window": "1h"},
    "rebootsPerDay": 5,
    "validation": {"dcgmDiagLevel": 0, "timeout": "5s", "quietPeriod": "0s"},
}

SandboxFactory = Callable[..., BackgroundSandbox]

ON_CALL_GROUP = "<!subteam^S0GPUONCALL>"
"""The fake workspace's on-call user group, in the syntax Slack pages on."""

# The sandbox's fake Slack and Jira as the policy's notification targets.
NOTIFYING: dict[str, Any] = {
    "notifications": {
        "slack": {"channel": "#gpu-repairs", "onCall": ON_CALL_GROUP},
        "jira": {"project": "OPS"},
    },
    "runbookBaseUrl": "https://runbooks.example/repairbot",
}


def merge_policy(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            merge_policy(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def eventually(probe: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or probe}")
        time.sleep(interval)


def repairs_of(kube: client.ApiClient, node: str) -> list[dict[str, Any]]:
    custom = client.CustomObjectsApi(kube)
    listing = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=f"repairbot.io/node={node}")
    return list(listing["items"])


def all_repairs(kube: client.ApiClient) -> list[dict[str, Any]]:
    return list(client.CustomObjectsApi(kube).list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])


def phase_of(repair: dict[str, Any]) -> str:
    return str((repair.get("status") or {}).get("phase") or "")


def finished_repair(kube: client.ApiClient, node: str, *, timeout: float = 30.0) -> dict[str, Any]:
    terminal = {"Succeeded", "Failed", "Quarantined", "Cancelled"}

    def probe() -> dict[str, Any] | None:
        return next((r for r in repairs_of(kube, node) if phase_of(r) in terminal), None)

    return eventually(probe, timeout, what=f"a finished repair of {node}")


def delivered(kube: client.ApiClient, node: str, *targets: str) -> dict[str, Any] | None:
    """The node's repair status once every one of ``targets`` has each step of its finished story, else None."""
    for repair in repairs_of(kube, node):
        status = repair.get("status") or {}
        history = status.get("history") or []
        cursors = [(status.get("deliveries") or {}).get(target) or {} for target in targets]
        caught_up = all(c.get("sent") == len(history) and c.get("phase") == "Succeeded" for c in cursors)
        if phase_of(repair) == "Succeeded" and caught_up:
            return dict(status)
    return None


def node(kube: client.ApiClient, name: str) -> dict[str, Any]:
    return raw_call(client.CoreV1Api(kube).read_node, name)


def gpu_condition(kube: client.ApiClient, name: str) -> dict[str, Any] | None:
    return next((c for c in node(kube, name)["status"]["conditions"] if c["type"] == "GPUHealthy"), None)


def steps(repair: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["step"], e["outcome"]) for e in (repair.get("status") or {}).get("history") or []]


def repairbot(sandbox: BackgroundSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``repairbot`` CLI as an SRE runs it against the sandbox's cluster: its own process, its own client."""
    return subprocess.run(
        [sys.executable, "-m", "repairbot.cli", *args, "--kubeconfig", sandbox.state["kubeconfig"]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def inject(sandbox: BackgroundSandbox, node_name: str, fault: str, gpu: int = 0) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "repairbot.cli", "inject", "--state-dir", str(sandbox.sandbox.config.state_dir),
         node_name, fault, "--gpu", str(gpu)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def inject_now(sandbox: BackgroundSandbox, faults: list[tuple[str, str, int]]) -> None:
    """Several faults within milliseconds, straight to the control endpoint (the CLI takes a second each)."""
    with httpx.Client(base_url=sandbox.state["control"], timeout=10) as control:
        for node_name, fault, gpu in faults:
            control.post(f"/nodes/{node_name}/faults", json={"fault": fault, "gpu": gpu}).raise_for_status()


def chats(sandbox: BackgroundSandbox) -> tuple[SlackSim, JiraSim]:
    """The sandbox's fake Slack and fake Jira, which a ``NOTIFYING`` sandbox always has."""
    slack, jira = sandbox.sandbox.slack, sandbox.sandbox.jira
    assert slack is not None and jira is not None
    return slack, jira


def simulated(sandbox: BackgroundSandbox, node_name: str) -> Any:
    agents = sandbox.sandbox.agents
    assert agents is not None
    return agents.members[node_name]


def start_operator(
    sandbox: BackgroundSandbox,
    policy_path: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    identity: str = "operator-test",
    leader_election: bool = False,
    health_port: int = 0,
    wrapper: tuple[str, ...] = (),
    options: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``repairbot operator`` as its own process, as it runs in a pod (``env`` adds e.g. Slack/Jira credentials),
    with the operator ServiceAccount's token: the chart's RBAC applies to it as in a cluster.

    ``wrapper`` runs it under another command, e.g. ``("faketime", "-f", "+12s")`` for a replica whose clock is off.
    ``options`` go after the sub-command's own, e.g. ``("--log-format", "json")``.
    """
    environment = {**os.environ, "POD_NAMESPACE": "repairbot", "POD_NAME": identity, **(env or {})}
    command = [
        *wrapper, sys.executable, "-m", "repairbot.cli", "--log-level", "INFO", "operator",
        "--kubeconfig", sandbox.state["kubeconfigs"]["operator"], "--policy", str(policy_path),
        "--metrics-port", "0", "--health-port", str(health_port),
        "--lease-name", SANDBOX_LEASE, "--breaker-configmap", SANDBOX_BREAKER_CONFIGMAP,  # as the chart passes them
    ]  # fmt: skip
    if not leader_election:
        command.append("--no-leader-election")
    command += options
    return subprocess.Popen(command, env=environment, stdout=log.open("ab"), stderr=subprocess.STDOUT)


COMPONENTS = "system:serviceaccount:repairbot:"


def component_denials(sandbox: BackgroundSandbox) -> list[str]:
    """Requests of RepairBot's own ServiceAccounts the sandbox's API server refused (its audit log)."""
    rows = sandbox.sandbox.api.audit.rows()
    return [
        f"{row['user']} {row['verb']} {row.get('resource') or row.get('path')}"
        + (f"/{row['subresource']}" if row.get("subresource") else "")
        + (f" ns={row['namespace']}" if row.get("namespace") else "")
        + (f" name={row['name']}" if row.get("name") else "")
        + f" (x{row['count']})"
        for row in rows
        if not row["allowed"] and row["user"].startswith(COMPONENTS)
    ]


def at_once(sends: Sequence[Callable[[], object]], timeout: float = 30.0) -> list[float]:
    """Call every ``sends`` on its own thread, released together by a barrier; their start times (monotonic)."""
    barrier = threading.Barrier(len(sends))
    started: list[float] = []

    def send_when_all_ready(send: Callable[[], object]) -> None:
        barrier.wait()
        started.append(time.monotonic())
        send()

    threads = [threading.Thread(target=send_when_all_ready, args=(send,)) for send in sends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return started
