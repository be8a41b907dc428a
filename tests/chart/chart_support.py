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
NO_AGENT: dict[str, Any] = {"agent": {"enabled": False}}
FORCING: dict[str, Any] = {"policy": {"drain": {"allowForce": True, "rules": []}}}

SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "slack-and-jira": NOTIFYING,
    "ingress-and-auth": EXPOSED,
    "monitoring": MONITORED,
    "agent-disabled": NO_AGENT,
    "everything": {**NOTIFYING, **EXPOSED, **MONITORED},
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


def render(chart: Any, values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE) -> Rendered:
    """Render as a fresh install would (schema validated first, as Helm does)."""
    manifests: dict[str, str] = chart.render(values or {}, name=RELEASE, namespace=namespace, is_install=True)
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
