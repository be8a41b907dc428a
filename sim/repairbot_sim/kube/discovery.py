"""Discovery documents, built from the live registry.

Clients learn what the server serves before they touch a resource: kubectl
maps ``gpr`` to ``gpurepairs.repairbot.io`` through ``APIResourceList``
short names, kopf finds the plural and scope of every kind it watches, and
``kubectl drain`` looks for ``pods/eviction`` (with its policy/v1 group and
version) to decide whether to evict or delete. Aggregated discovery
(``apidiscovery.k8s.io/v2``) is deliberately *not* offered: answering plain
``application/json`` makes client-go fall back to the per-group documents
below, which real servers before 1.26 did too.
"""

from __future__ import annotations

from typing import Any

from repairbot_sim.kube.resources import Registry

__all__ = ["api_group", "api_group_list", "api_resource_list", "api_versions", "version_info"]

KUBERNETES_VERSION = ("1", "37", "v1.37.0")


def version_info() -> dict[str, Any]:
    major, minor, git = KUBERNETES_VERSION
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "gitVersion": git,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(group)
    if not group or not versions:
        return None
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [api_group(registry, name) for name in registry.group_versions() if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [g for g in groups if g]}


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    infos = registry.resources_in(group, version)
    if not infos:
        return None
    resources: list[dict[str, Any]] = []
    for info in infos:
        resources.extend(info.discovery_entries())
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
