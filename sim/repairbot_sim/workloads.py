"""The sandbox's workloads as a real cluster would hold them: every pod has the controller that made it.

``kubectl drain`` refuses a pod that declares no controller ("cannot delete
Pods that declare no controller", unless ``--force``), because nothing would
bring it back; a real GPU cluster's pods come from Jobs, PyTorchJobs,
Deployments and DaemonSets. So the sandbox seeds the owners first and gives
each pod an ``ownerReferences`` entry carrying the *created* owner's uid, as
the controllers do:

* training: a ``kubeflow.org/v1`` PyTorchJob ``train/llama-70b`` (a minimal
  CRD of the Kubeflow training operator's kind, with its ``scale``
  subresource, which is what lets the disruption controller honour the
  training team's ``maxUnavailable`` budget over its workers);
* inference: a Deployment ``inference/vllm`` → ReplicaSet → pods;
* RepairBot's agent: the DaemonSet ``repairbot/repairbot-agent``.

The manifests here are pure (owner references name their owner without a
uid); :func:`seed` creates them in order and fills each uid in from the
object the API server created.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Protocol

TRAINING_JOB = "llama-70b"
INFERENCE_DEPLOYMENT = "vllm"
INFERENCE_TEMPLATE_HASH = "6c8f7d9b54"
"""``pod-template-hash`` of the vLLM Deployment's one ReplicaSet (the Deployment controller's hash of the template)."""
INFERENCE_REPLICASET = f"{INFERENCE_DEPLOYMENT}-{INFERENCE_TEMPLATE_HASH}"
TRAINING_IMAGE = "nvcr.io/nvidia/pytorch:24.12-py3"
INFERENCE_IMAGE = "vllm/vllm-openai:v0.6.6"

PYTORCHJOB_API_VERSION = "kubeflow.org/v1"


def controller_ref(api_version: str, kind: str, name: str) -> dict[str, Any]:
    """An ``ownerReferences`` entry as a controller writes it; :func:`seed` adds the owner's uid."""
    return {"apiVersion": api_version, "kind": kind, "name": name, "controller": True, "blockOwnerDeletion": True}


def pytorchjob_crd() -> dict[str, Any]:
    """The Kubeflow training operator's PyTorchJob kind, cut to what the sandbox uses.

    Like the real CRD it serves ``status`` and ``scale`` (workers are the
    scalable replicas) and prints STATE and AGE.
    """
    replica = {
        "type": "object",
        "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "restartPolicy": {"type": "string", "enum": ["Always", "OnFailure", "Never", "ExitCode"]},
            "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["pytorchReplicaSpecs"],
                "properties": {
                    "pytorchReplicaSpecs": {"type": "object", "additionalProperties": replica},
                    "nprocPerNode": {"type": "string"},
                    "runPolicy": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "pytorchjobs.kubeflow.org"},
        "spec": {
            "group": "kubeflow.org",
            "names": {
                "kind": "PyTorchJob",
                "listKind": "PyTorchJobList",
                "plural": "pytorchjobs",
                "singular": "pytorchjob",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.pytorchReplicaSpecs.Worker.replicas",
                            "statusReplicasPath": ".status.replicaStatuses.Active",
                            "labelSelectorPath": ".status.labelSelector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "State", "type": "string", "jsonPath": ".status.conditions[-1:].type"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def training_labels(index: int) -> dict[str, str]:
    """What the training operator puts on a worker pod, plus the team's own ``app`` (the PDB selects it)."""
    return {
        "app": "llama-train",
        "job": TRAINING_JOB,
        "training.kubeflow.org/job-name": TRAINING_JOB,
        "training.kubeflow.org/operator-name": "pytorchjob-controller",
        "training.kubeflow.org/replica-type": "worker",
        "training.kubeflow.org/replica-index": str(index),
    }


def training_job(namespace: str, workers: int, gpus: int) -> dict[str, Any]:
    """``llama-70b``: one worker per node, each holding all of its node's GPUs."""
    container = {"name": "pytorch", "image": TRAINING_IMAGE, "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
    return {
        "apiVersion": PYTORCHJOB_API_VERSION,
        "kind": "PyTorchJob",
        "metadata": {"name": TRAINING_JOB, "namespace": namespace, "labels": {"app": "llama-train"}},
        "spec": {
            "nprocPerNode": str(gpus),
            "pytorchReplicaSpecs": {
                "Worker": {
                    "replicas": workers,
                    "restartPolicy": "OnFailure",
                    "template": {"metadata": {"labels": {"app": "llama-train"}}, "spec": {"containers": [container]}},
                }
            },
        },
        "status": {
            "conditions": [{"type": "Running", "status": "True", "reason": "PyTorchJobRunning"}],
            "replicaStatuses": {"Worker": {"active": workers}},
        },
    }


def _inference_template() -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": INFERENCE_DEPLOYMENT}},
        "spec": {"containers": [{"name": "vllm", "image": INFERENCE_IMAGE}]},
    }


def inference_deployment(namespace: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": INFERENCE_DEPLOYMENT, "namespace": namespace, "labels": {"app": INFERENCE_DEPLOYMENT}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": INFERENCE_DEPLOYMENT}},
            "template": _inference_template(),
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


def inference_replicaset(namespace: str, replicas: int) -> dict[str, Any]:
    """The Deployment's current ReplicaSet, owned by it as the Deployment controller makes it."""
    labels = {"app": INFERENCE_DEPLOYMENT, "pod-template-hash": INFERENCE_TEMPLATE_HASH}
    template = _inference_template()
    template["metadata"]["labels"] = dict(labels)
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": INFERENCE_REPLICASET,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "ownerReferences": [controller_ref("apps/v1", "Deployment", INFERENCE_DEPLOYMENT)],
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


def inference_pod_name(index: int) -> str:
    """``vllm-6c8f7d9b54-00003``: the ReplicaSet's name and a suffix, as the ReplicaSet controller names pods."""
    return f"{INFERENCE_REPLICASET}-{index:05d}"


def inference_labels() -> dict[str, str]:
    return {"app": INFERENCE_DEPLOYMENT, "pod-template-hash": INFERENCE_TEMPLATE_HASH}


# --------------------------------------------------------------------------- seeding


class ObjectServer(Protocol):
    """What :func:`seed` needs of :class:`repairbot_sim.kubeapi.KubeApiServer`."""

    def create_object(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None: ...


OwnerKey = tuple[str, str, str, str]
"""(apiVersion, kind, namespace, name) of a possible owner."""


def seed(server: ObjectServer, manifests: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create ``manifests`` in order, each owner reference given the uid of the owner created before it.

    An object that already exists (the API server's own namespaces) is kept,
    and its uid serves its dependents. An owner reference to an object not
    created earlier is a bug in the manifests: :class:`LookupError`.
    Returns the objects as stored.
    """
    uids: dict[OwnerKey, str] = {}
    stored: list[dict[str, Any]] = []
    for manifest in manifests:
        meta = manifest["metadata"]
        namespace = meta.get("namespace") or ""
        existing = server.get_object(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
        created = existing if existing is not None else server.create_object(with_owner_uids(manifest, uids))
        uids[(manifest["apiVersion"], manifest["kind"], namespace, meta["name"])] = created["metadata"]["uid"]
        stored.append(created)
    return stored


def with_owner_uids(manifest: dict[str, Any], uids: dict[OwnerKey, str]) -> dict[str, Any]:
    """A copy of ``manifest`` whose owner references carry their owners' uids."""
    refs = manifest["metadata"].get("ownerReferences")
    if not refs:
        return manifest
    out = copy.deepcopy(manifest)
    namespace = out["metadata"].get("namespace") or ""
    for ref in out["metadata"]["ownerReferences"]:
        if ref.get("uid"):
            continue
        key = (ref["apiVersion"], ref["kind"], namespace, ref["name"])
        if key not in uids:
            raise LookupError(
                f"{manifest['kind']} {namespace}/{manifest['metadata']['name']} names owner "
                f"{ref['kind']} {ref['name']} ({ref['apiVersion']}), which was not created before it"
            )
        ref["uid"] = uids[key]
    return out
