"""Just enough OpenAPI v3 for kubectl.

``kubectl apply``/``create`` validate by default. kubectl first asks
``/openapi/v3`` whether the PATCH operation of the object's group/version/kind
takes the ``fieldValidation`` query parameter; if it does, validation happens
on the server (``fieldValidation=Strict``), which this emulator implements.
With no OpenAPI at all kubectl refuses: "failed to download openapi". So the
documents below list, per group/version, a PATCH operation for every kind,
tagged ``x-kubernetes-group-version-kind``, with that parameter — and no
schemas, which kubectl then does not need.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from repairbot_sim.kube.resources import Registry, ResourceInfo

__all__ = ["group_version_document", "openapi_index"]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_index(registry: Registry) -> dict[str, Any]:
    """``/openapi/v3``: group/version → document URL (with a content hash, as real servers do)."""
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            digest = hashlib.sha256(json.dumps(group_version_document(registry, group, version) or {}).encode())
            url = f"/openapi/v3/{_gv_path(group, version)}?hash={digest.hexdigest()[:32].upper()}"
            paths[_gv_path(group, version)] = {"serverRelativeURL": url}
    return {"paths": paths}


def _parameters() -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for name in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]


def _item_path(info: ResourceInfo) -> str:
    prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    scope = "/namespaces/{namespace}" if info.namespaced else ""
    return f"{prefix}{scope}/{info.plural}/{{name}}"


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    infos = registry.resources_in(group, version)
    if not infos:
        return None
    paths = {}
    for info in infos:
        gvk = {"group": info.group, "version": info.version, "kind": info.kind}
        operation = {
            "operationId": f"patch{info.kind}",
            "parameters": _parameters(),
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
        }
        paths[_item_path(info)] = {"patch": operation}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }
