"""The objects a small GPU cluster starts with: nodes, workloads, budgets.

Pure functions returning Kubernetes manifests as dicts, so the sandbox, the
tests and the benchmarks build the same cluster and a test can read exactly
what a node looks like without starting anything.
"""

from __future__ import annotations

import base64
from typing import Any

from repairbot.model import LABEL_FAILURE_DOMAIN
from repairbot_sim import workloads

NODE_PREFIX = "gpu-node-"
GPUS_PER_NODE = 8
NODES_PER_LEAF = 4
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
AGENT_NAMESPACE = "repairbot"
AGENT_DAEMONSET = "repairbot-agent"
TRAINING_NAMESPACE = "train"
INFERENCE_NAMESPACE = "inference"
TRAINING_PDB = "llama"


def node_name(index: int) -> str:
    """``gpu-node-000``, ``gpu-node-001`` …: zero-padded so they sort like the rack."""
    return f"{NODE_PREFIX}{index:03d}"


def failure_domain(index: int) -> str:
    """The leaf switch a node hangs off: four nodes share one, as in a small HGX pod."""
    return f"leaf-{index // NODES_PER_LEAF}"


BMC_SECRET = "bmc-credentials"
BMC_USERNAME = "admin"
BMC_PASSWORD = "redfish"


def bmc_annotations(name: str, bmc_url: str | None) -> dict[str, str]:
    """Where the node's BMC answers: the annotations RepairBot's power-cycle action reads."""
    if not bmc_url:
        return {}
    return {
        "repairbot.io/bmc-address": bmc_url,
        "repairbot.io/bmc-secret": f"{AGENT_NAMESPACE}/{BMC_SECRET}",
        "repairbot.io/bmc-system": name,
    }


def bmc_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": BMC_SECRET, "namespace": AGENT_NAMESPACE},
        "type": "Opaque",
        "data": {
            "username": base64.b64encode(BMC_USERNAME.encode()).decode(),
            "password": base64.b64encode(BMC_PASSWORD.encode()).decode(),
        },
    }


def gpu_node(
    index: int, *, gpus: int = GPUS_PER_NODE, zone_count: int = 2, bmc_url: str | None = None
) -> dict[str, Any]:
    """A Ready GPU node with the labels NVIDIA's GPU feature discovery would put on it."""
    name = node_name(index)
    gpu_count = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": bmc_annotations(name, bmc_url),
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "p5.48xlarge",
                "topology.kubernetes.io/zone": f"zone-{chr(ord('a') + index % zone_count)}",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": GPU_PRODUCT,
                "nvidia.com/gpu.count": gpu_count,
                LABEL_FAILURE_DOMAIN: failure_domain(index),
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24"},
        "status": {
            "capacity": {"cpu": "192", "memory": "2063937Mi", "pods": "110", "nvidia.com/gpu": gpu_count},
            "allocatable": {"cpu": "190", "memory": "2000000Mi", "pods": "110", "nvidia.com/gpu": gpu_count},
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.{index // 250}.{index % 250 + 1}"},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                },
            ],
            "nodeInfo": {
                "machineID": f"{index:032x}",
                "systemUUID": f"4c4c4544-0000-1000-8000-{index:012x}",
                "kubeletVersion": "v1.31.4",
                "kubeProxyVersion": "v1.31.4",
                "kernelVersion": "6.8.0-1015-nvidia",
                "osImage": "Ubuntu 24.04.1 LTS",
                "containerRuntimeVersion": "containerd://1.7.24",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "bootID": f"boot-{index:04d}-0",
            },
        },
    }


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def agent_daemonset() -> dict[str, Any]:
    """RepairBot's own agent DaemonSet: its pods are what ``drain --ignore-daemonsets`` skips."""
    labels = {"app.kubernetes.io/name": "repairbot", "app.kubernetes.io/component": "agent"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": AGENT_DAEMONSET, "namespace": AGENT_NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "agent", "image": "repairbot:0.1.0"}]},
            },
        },
    }


def _pod(
    name: str,
    ns: str,
    node: str,
    labels: dict[str, str],
    *,
    owner: dict[str, Any] | None,
    image: str = workloads.TRAINING_IMAGE,
    container_name: str = "main",
    gpus: int = 0,
    termination_seconds: int | None = None,
) -> dict[str, Any]:
    """A Running pod bound to ``node``; ``owner`` is its controller's reference (None: a bare pod)."""
    container: dict[str, Any] = {"name": container_name, "image": image}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    metadata: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels}
    if owner:
        metadata["ownerReferences"] = [owner]
    if termination_seconds is not None:
        metadata["annotations"] = {"sim.repairbot.io/termination-seconds": str(termination_seconds)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": node, "containers": [container], "terminationGracePeriodSeconds": 30},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": container_name,
                    "ready": True,
                    "restartCount": 0,
                    "image": container["image"],
                    "imageID": f"{container['image']}@sha256:{'0' * 64}",
                    "started": True,
                }
            ],
        },
    }


def bare_pod(name: str, ns: str, node: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod no controller owns (someone's ``kubectl run`` debug shell): nothing recreates it once evicted."""
    return _pod(name, ns, node, labels or {"run": name}, owner=None, image="busybox:1.36", container_name=name)


def training_worker(index: int) -> str:
    """The name of the training worker pod on node ``index`` (in :data:`TRAINING_NAMESPACE`)."""
    return f"llama-worker-{index:03d}"


def node_pods(index: int, *, termination_seconds: int | None = None) -> list[dict[str, Any]]:
    """The workloads on one node: a training worker (PDB-guarded), an inference replica, the agent.

    Each is owned by its controller (PyTorchJob, ReplicaSet, DaemonSet); the
    references carry no uid yet: :func:`repairbot_sim.workloads.seed` fills it in.
    """
    node = node_name(index)
    return [
        _pod(
            training_worker(index),
            TRAINING_NAMESPACE,
            node,
            workloads.training_labels(index),
            owner=workloads.controller_ref(workloads.PYTORCHJOB_API_VERSION, "PyTorchJob", workloads.TRAINING_JOB),
            container_name="pytorch",
            gpus=GPUS_PER_NODE,
            termination_seconds=termination_seconds,
        ),
        _pod(
            workloads.inference_pod_name(index),
            INFERENCE_NAMESPACE,
            node,
            workloads.inference_labels(),
            owner=workloads.controller_ref("apps/v1", "ReplicaSet", workloads.INFERENCE_REPLICASET),
            image=workloads.INFERENCE_IMAGE,
            container_name="vllm",
        ),
        _pod(
            f"repairbot-agent-{index:03d}",
            AGENT_NAMESPACE,
            node,
            {"app.kubernetes.io/name": "repairbot", "app.kubernetes.io/component": "agent"},
            owner=workloads.controller_ref("apps/v1", "DaemonSet", AGENT_DAEMONSET),
            image="repairbot:0.1.0",
            container_name="agent",
        ),
    ]


def training_pdb(max_unavailable: int = 1) -> dict[str, Any]:
    """The budget a training team sets: lose at most one worker at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": TRAINING_PDB, "namespace": TRAINING_NAMESPACE},
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": {"app": "llama-train"}}},
    }


def cluster_objects(
    node_count: int, *, termination_seconds: int | None = None, bmc_url: str | None = None
) -> list[dict[str, Any]]:
    """Everything a fresh sandbox holds besides the GPURepair CRD, in creation order (owners before pods).

    Create them with :func:`repairbot_sim.workloads.seed`, which gives each
    pod's owner reference the uid of the owner created before it.
    """
    objects: list[dict[str, Any]] = [
        namespace(ns) for ns in ("default", "kube-system", AGENT_NAMESPACE, TRAINING_NAMESPACE, INFERENCE_NAMESPACE)
    ]
    objects.append(workloads.pytorchjob_crd())
    objects.append(agent_daemonset())
    objects.append(workloads.training_job(TRAINING_NAMESPACE, node_count, GPUS_PER_NODE))
    objects.append(workloads.inference_deployment(INFERENCE_NAMESPACE, node_count))
    objects.append(workloads.inference_replicaset(INFERENCE_NAMESPACE, node_count))
    objects.append(training_pdb())
    if bmc_url:
        objects.append(bmc_secret())
    for index in range(node_count):
        objects.append(gpu_node(index, bmc_url=bmc_url))
        objects.extend(node_pods(index, termination_seconds=termination_seconds))
    return objects
