"""Rendering the chart the way ``helm install`` would, and the value sets the tests install."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "repairbot"
RELEASE = "repairbot"
NAMESPACE = "gpu-ops"
NOTES = "NOTES.txt"

# The value sets an SRE would install with, beside the defaults.
NOTIFYING: dict[str, Any] = {
    "image": {"repository": "registry.example.com/sre/repairbot", "tag": "0.1.0"},
    "slack": {
        "enabled": True,
        "existingSecret": "repairbot-slack",
        "tokenKey": "bot-token",
        "channel": "C0123456789",
        "oncall": "S0123ABCD",
    },
    "jira": {
        "enabled": True,
        "url": "https://jira.example.com",
        "existingSecret": "repairbot-jira",
        "tokenKey": "",
        "userKey": "user",
        "passwordKey": "api-token",
        "project": "GPUOPS",
    },
    "runbookBaseUrl": "https://git.example.com/sre/repairbot/-/blob/main/runbooks",
    "bmc": {"existingSecret": "bmc-credentials"},
    "policy": {"budget": {"maxUnavailable": 8}, "drain": {"timeout": "45m"}},
}
EXPOSED: dict[str, Any] = {
    "webhook": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "repairbot.example.com",
            "tls": {"enabled": True, "secretName": "repairbot-tls"},
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        },
        "auth": {
            "existingSecret": "repairbot-webhook",
            "tokenKey": "",
            "basicAuthKey": "basic",
            "hmacSecretKey": "hmac",
            "hmacTimestampHeader": "X-Grafana-Alerting-Signature-Timestamp",
        },
        "alertMapping": {"NodeGpuFellOffBus": "gpu-lost", "TeamGpuHot": {"code": "thermal", "action": "notify"}},
    },
}
MONITORED: dict[str, Any] = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kube-prometheus"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus"}},
    },
    "grafana": {"dashboards": {"enabled": True}, "alerting": {"enabled": True}},
}
CA_BUNDLE_VOLUME: dict[str, Any] = {"name": "company-ca", "configMap": {"name": "company-ca-bundle"}}
CA_BUNDLE_MOUNT: dict[str, Any] = {"name": "company-ca", "mountPath": "/etc/repairbot/ca", "readOnly": True}
PROXY_ENV: list[dict[str, Any]] = [
    {"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"},
    {"name": "NO_PROXY", "value": ".svc,.cluster.local,10.0.0.0/8"},
    {"name": "REQUESTS_CA_BUNDLE", "value": "/etc/repairbot/ca/ca.crt"},
    {"name": "PROXY_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "proxy", "key": "password"}}},
]


def fitted_component(priority_class: str) -> dict[str, Any]:
    """What a real cluster asks of one component: its proxy, its CA bundle, its labels and placement."""
    return {
        "extraEnv": PROXY_ENV,
        "extraVolumes": [CA_BUNDLE_VOLUME],
        "extraVolumeMounts": [CA_BUNDLE_MOUNT],
        "podLabels": {"team": "sre", "cost-center": "gpu-fleet"},
        "podAnnotations": {"sidecar.istio.io/inject": "false"},
        "priorityClassName": priority_class,
        "nodeSelector": {"node-role.kubernetes.io/infra": ""},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
        "resources": {"requests": {"cpu": "200m", "memory": "300Mi"}, "limits": {"memory": "600Mi"}},
    }  # fmt: skip


DIGEST = "sha256:" + "ab" * 32
# A real cluster: a registry mirror, a pinned digest, JSON logs, an egress proxy and a company CA everywhere,
# a Prometheus behind TLS and a token.
REAL_CLUSTER: dict[str, Any] = {
    "global": {"imageRegistry": "mirror.example.com:5000"},
    "image": {"repository": "sre/repairbot", "digest": DIGEST},
    "imagePullSecrets": [{"name": "mirror-pull"}],
    "logFormat": "json",
    "operator": {
        **fitted_component("repairbot-control"),
        "prometheus": {
            "caFile": "/etc/repairbot/ca/ca.crt",
            "auth": {"existingSecret": "prometheus-reader", "tokenKey": "token", "basicAuthKey": ""},
        },
    },
    "agent": {**fitted_component("system-node-critical"), "nodeSelector": {"nvidia.com/gpu.present": "true"}},
    "webhook": fitted_component("repairbot-control"),
    "policy": {"validation": {"prometheusUrl": "https://prometheus.example.com"}},
}
NO_AGENT: dict[str, Any] = {"agent": {"enabled": False}}
FORCING: dict[str, Any] = {"policy": {"drain": {"allowForce": True, "rules": []}}}

SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "slack-and-jira": NOTIFYING,
    "ingress-and-auth": EXPOSED,
    "monitoring": MONITORED,
    "agent-disabled": NO_AGENT,
    "everything": {**NOTIFYING, **EXPOSED, **MONITORED},
    "real-cluster": REAL_CLUSTER,
}


@dataclass
class Rendered:
    """One rendering: every manifest as a dict, and the NOTES text."""

    objects: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        for obj in self.of_kind(kind):
            meta = obj["metadata"]
            if meta["name"] == name and (namespace is None or meta.get("namespace") == namespace):
                return obj
        names = [obj["metadata"]["name"] for obj in self.of_kind(kind)]
        raise AssertionError(f"no {kind} {name} rendered; {kind}s: {names}")

    def has(self, kind: str, name: str) -> bool:
        return any(obj["metadata"]["name"] == name for obj in self.of_kind(kind))


def render(
    chart: Any, values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE, release: str = RELEASE
) -> Rendered:
    """Render as a fresh install would (schema validated first, as Helm does)."""
    manifests: dict[str, str] = chart.render(values or {}, name=release, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith(NOTES):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(objects, notes)


def crds(chart: Any) -> list[dict[str, Any]]:
    return [yaml.safe_load(item["data"]) for item in chart.crds]


def name(component: str) -> str:
    return f"{RELEASE}-{component}"


def container(workload: dict[str, Any], container_name: str) -> dict[str, Any]:
    for item in workload["spec"]["template"]["spec"]["containers"]:
        if item["name"] == container_name:
            return dict(item)
    raise AssertionError(f"{workload['metadata']['name']} has no container {container_name}")


def env_of(item: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in item.get("env") or []}
