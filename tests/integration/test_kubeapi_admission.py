"""Admission policies and CRD rules as the real kubectl and kubernetes client see them, over a socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "repairbot.io", "v1alpha1", "gpurepairs"

POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: labelled-nodes}
spec:
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: ["v1"], operations: ["UPDATE"], resources: ["nodes"]}
  validations:
    - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
      message: every node needs a team label
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: labelled-nodes-warn}
spec:
  policyName: labelled-nodes
  validationActions: [Warn]
"""


def _apply(kubectl: Any, tmp_path: Path, text: str) -> Any:
    path = tmp_path / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    return kubectl("apply", "-f", str(path), check=False)


def test_a_warn_binding_reaches_kubectl_as_a_warning(
    apiserver: Any, kubectl: Any, kube_objects: Any, tmp_path: Path
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    assert _apply(kubectl, tmp_path, POLICY).returncode == 0
    result = kubectl("label", "node", "gpu-1", "zone=a")
    assert "node/gpu-1 labeled" in result.stdout
    assert (
        "Warning: Validation failed for ValidatingAdmissionPolicy 'labelled-nodes' with binding "
        "'labelled-nodes-warn': every node needs a team label"
    ) in result.stderr


def test_a_deny_binding_is_a_status_the_kubernetes_client_raises(
    apiserver: Any, kube_api: client.ApiClient, kube_objects: Any
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    for doc in yaml.safe_load_all(POLICY.replace("[Warn]", "[Deny]")):
        apiserver.server.create_object(doc)
    core = client.CoreV1Api(kube_api)
    with pytest.raises(ApiException) as caught:
        core.patch_node("gpu-1", {"spec": {"unschedulable": True}})
    status = json.loads(caught.value.body)
    denied = (
        "ValidatingAdmissionPolicy 'labelled-nodes' with binding 'labelled-nodes-warn' denied request: "
        "every node needs a team label"
    )
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    assert status["message"] == f'nodes "gpu-1" is forbidden: {denied}'
    assert status["details"]["causes"] == [{"message": denied}]
    assert not core.read_node("gpu-1").spec.unschedulable


def test_kubectl_apply_of_a_policy_that_does_not_compile_is_refused(kubectl: Any, tmp_path: Path) -> None:
    result = _apply(kubectl, tmp_path, POLICY.replace("'team' in", "'team' on"))
    assert result.returncode != 0
    assert "spec.validations[0].expression: Invalid value" in result.stderr
    assert "compilation failed: ERROR: <input>:1:" in result.stderr
    assert "No resources found" in kubectl("get", "validatingadmissionpolicies", check=False).stderr


def test_moving_a_repair_to_another_node_is_refused_with_the_crd_rule(kube_api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPURepair",
        "metadata": {"name": "gpu-1-xid-79"},
        "spec": {"nodeName": "gpu-1", "source": "agent"},
    }
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    with pytest.raises(ApiException) as caught:
        custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "gpu-1-xid-79", {"spec": {"nodeName": "gpu-2"}})
    status = json.loads(caught.value.body)
    assert caught.value.status == 422
    assert status["message"] == (
        'GPURepair.repairbot.io "gpu-1-xid-79" is invalid: spec.nodeName: Invalid value: "gpu-2": '
        "spec.nodeName is immutable"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.nodeName",
            "message": 'Invalid value: "gpu-2": spec.nodeName is immutable',
        }
    ]
