"""The resource registry: which kinds the emulated cluster serves, and how.

A real API server answers discovery (``/api/v1``, ``/apis/<g>/<v>``) from the
same table it routes requests with; so does this one. Built-in kinds are
declared here; a CustomResourceDefinition created through the API is turned
into :class:`ResourceInfo` entries (one per served version) the moment it is
stored, so ``kubectl apply -f crd.yaml`` followed by ``kubectl get <plural>``
works without a restart, as on a real cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ALL_VERBS", "Registry", "ResourceInfo", "Subresource"]

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Subresource:
    """A subresource beyond ``status`` (e.g. ``pods/eviction``, served by policy/v1)."""

    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""


@dataclass
class ResourceInfo:
    """One served group/version/resource."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status_subresource: bool = False
    subresources: list[Subresource] = field(default_factory=list)
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    schema: dict[str, Any] | None = None
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        """Objects are shared across versions of one group/resource (no conversion)."""
        return f"{self.group}/{self.plural}"

    @property
    def qualified(self) -> str:
        """How error messages name the resource: ``pods``, ``gpurepairs.repairbot.io``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """How Invalid messages name the kind: ``Pod``, ``GPURepair.repairbot.io``."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def discovery_entries(self) -> list[dict[str, Any]]:
        """This resource's rows in an ``APIResourceList``."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ALL_VERBS,
        }
        if self.short_names:
            entry["shortNames"] = self.short_names
        if self.categories:
            entry["categories"] = self.categories
        entries = [entry]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        for sub in self.subresources:
            row: dict[str, Any] = {
                "name": f"{self.plural}/{sub.name}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": sub.kind,
                "verbs": list(sub.verbs),
            }
            if sub.group:
                row["group"], row["version"] = sub.group, sub.version
            entries.append(row)
        return entries


def _builtin(
    group: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    all_category: bool = False,
    status: bool = False,
    version: str = "v1",
    subresources: tuple[Subresource, ...] = (),
) -> ResourceInfo:
    return ResourceInfo(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=list(short),
        categories=["all"] if all_category else [],
        status_subresource=status,
        subresources=list(subresources),
    )


_EVICTION = Subresource("eviction", "Eviction", ("create",), group="policy", version="v1")

BUILTINS: list[ResourceInfo] = [
    _builtin("", "namespaces", "Namespace", namespaced=False, short=("ns",), status=True),
    _builtin("", "nodes", "Node", namespaced=False, short=("no",), status=True),
    _builtin("", "pods", "Pod", short=("po",), all_category=True, status=True, subresources=(_EVICTION,)),
    _builtin("", "events", "Event", short=("ev",)),
    _builtin("", "configmaps", "ConfigMap", short=("cm",)),
    _builtin("", "secrets", "Secret"),
    _builtin("", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _builtin("", "services", "Service", short=("svc",), all_category=True, status=True),
    _builtin("apps", "daemonsets", "DaemonSet", short=("ds",), all_category=True, status=True),
    _builtin("apps", "deployments", "Deployment", short=("deploy",), all_category=True, status=True),
    _builtin("apps", "replicasets", "ReplicaSet", short=("rs",), all_category=True, status=True),
    _builtin("apps", "statefulsets", "StatefulSet", short=("sts",), all_category=True, status=True),
    _builtin("policy", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True),
    _builtin("coordination.k8s.io", "leases", "Lease"),
    _builtin("events.k8s.io", "events", "Event", short=("ev",)),
    # RBAC and admission policies: stored, never enforced; served so the chart's own can be applied and read back.
    _builtin("rbac.authorization.k8s.io", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", namespaced=False),
    _builtin("rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _builtin(
        "admissionregistration.k8s.io",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        namespaced=False,
        status=True,
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        namespaced=False,
    ),
    _builtin(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        status=True,
    ),
]
BUILTINS[-1].categories = ["api-extensions"]


class Registry:
    """Resources by group/version/plural and by apiVersion/kind."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        for info in BUILTINS:
            self.add(info)

    def add(self, info: ResourceInfo) -> None:
        self._by_gvr[(info.group, info.version, info.plural)] = info

    def lookup(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceInfo | None:
        group, _, version = api_version.rpartition("/")
        for info in self._by_gvr.values():
            if info.group == group and info.version == version and info.kind == kind:
                return info
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Groups (``""`` is core) → served versions, in registration order."""
        groups: dict[str, list[str]] = {}
        for info in self._by_gvr.values():
            versions = groups.setdefault(info.group, [])
            if info.version not in versions:
                versions.append(info.version)
        return groups

    def resources_in(self, group: str, version: str) -> list[ResourceInfo]:
        return [info for info in self._by_gvr.values() if info.group == group and info.version == version]

    def register_crd(self, crd: dict[str, Any]) -> list[ResourceInfo]:
        """Serve every ``served`` version of a CRD; replaces earlier registrations."""
        self.unregister_crd(crd)
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        added: list[ResourceInfo] = []
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            info = ResourceInfo(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=list(names.get("shortNames") or []),
                categories=list(names.get("categories") or []),
                status_subresource="status" in (version.get("subresources") or {}),
                printer_columns=list(version.get("additionalPrinterColumns") or []),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                custom=True,
            )
            self.add(info)
            added.append(info)
        return added

    def unregister_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec", {})
        plural = spec.get("names", {}).get("plural")
        for key in [k for k in self._by_gvr if k[0] == spec.get("group") and k[2] == plural]:
            del self._by_gvr[key]
