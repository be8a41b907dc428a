"""The chart's CRD, ServiceAccounts, RBAC and admission policy applied with the real kubectl, then read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from chart_support import NAMESPACE, crds, name, render

from repairbot_sim.access import SANDBOX_RBAC_KINDS

# What the emulated API server can hold of a rendering: identity and authorization objects.
APPLIED_KINDS = {*SANDBOX_RBAC_KINDS, "ConfigMap"}


def _write(objects: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False), encoding="utf-8")
    return path


def _get(kubectl: Any, *args: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", *args, "-o", "json").stdout))


def test_crd_rbac_and_accounts_apply_and_read_back(kubectl: Any, chart: Any, tmp_path: Path) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kubectl("apply", "-f", str(_write([namespace], tmp_path / "namespace.yaml")))
    kubectl("apply", "-f", str(_write(crds(chart), tmp_path / "crds.yaml")))
    rendered = render(chart)
    objects = [obj for obj in rendered.objects if obj["kind"] in APPLIED_KINDS]
    applied = kubectl("apply", "-f", str(_write(objects, tmp_path / "rbac.yaml"))).stdout
    for obj in objects:
        assert obj["metadata"]["name"] in applied

    accounts = _get(kubectl, "serviceaccounts", "-n", NAMESPACE)["items"]
    assert {a["metadata"]["name"] for a in accounts} >= {name("operator"), name("agent"), name("webhook")}

    for component in ("operator", "agent", "webhook"):
        stored = _get(kubectl, "clusterrole", name(component))
        assert stored["rules"] == rendered.get("ClusterRole", name(component))["rules"]
        binding = _get(kubectl, "clusterrolebinding", name(component))
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name(component), "namespace": NAMESPACE}]

    role = _get(kubectl, "role", name("operator"), "-n", NAMESPACE)
    secrets = [rule for rule in role["rules"] if "secrets" in rule["resources"]]
    assert [rule["verbs"] for rule in secrets] == [["get"]]
    events = _get(kubectl, "role", f"{name('operator')}-events", "-n", "default")
    assert events["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]

    policy = _get(kubectl, "validatingadmissionpolicy", name("agent-own-node"))
    assert policy["spec"]["failurePolicy"] == "Fail"
    binding = _get(kubectl, "validatingadmissionpolicybinding", name("agent-own-node"))
    assert binding["spec"]["policyName"] == name("agent-own-node")

    configmap = _get(kubectl, "configmap", name("policy"), "-n", NAMESPACE)
    assert "policy.yaml" in configmap["data"]


def test_the_installed_crd_serves_gpurepairs_to_kubectl(kubectl: Any, chart: Any, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(_write(crds(chart), tmp_path / "crds.yaml")))
    crd = _get(kubectl, "crd", "gpurepairs.repairbot.io")
    assert crd["spec"]["names"]["shortNames"] == ["gpr"]
    listing = kubectl("get", "gpurepairs").stdout + kubectl("get", "gpurepairs").stderr
    assert "No resources found" in listing
