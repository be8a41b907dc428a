"""RBAC authorization over the Roles and bindings stored in the emulated cluster.

The rules are Kubernetes' own (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac):

* a ClusterRoleBinding grants its ClusterRole everywhere; a RoleBinding grants
  its Role, or a ClusterRole, only in the binding's namespace;
* subjects are Users (by name), Groups (by membership) and ServiceAccounts
  (``system:serviceaccount:<ns>:<name>``; a RoleBinding's subject without a
  namespace means the binding's own);
* a rule matches when its verbs, apiGroups and resources do ("*" matches all,
  "*/status" any resource's status) and, when it lists resourceNames, the
  request names one of them: a create or a list, which carry no name, never
  matches such a rule; non-resource requests match ``nonResourceURLs``
  ("/apis/*" is a prefix);
* members of ``system:masters`` are allowed everything without RBAC, as the
  privileged-group authorizer in front of RBAC does.

Nothing is allowed by default. A binding whose role does not exist is the
reason RBAC gives with a denial (``RBAC: clusterrole... "x" not found``).
Compiled rules are cached and dropped whenever an RBAC object is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from repairbot_sim.kube.attributes import RequestAttributes
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.identity import UserInfo
from repairbot_sim.kube.store import Store, WatchEvent

__all__ = [
    "BOOTSTRAP_POLICY",
    "RBAC_GROUP",
    "Authorizer",
    "Decision",
    "Grant",
    "forbidden",
    "rule_allows",
    "subject_matches",
    "validate_rbac_name",
]

RBAC_GROUP = "rbac.authorization.k8s.io"
_KEYS = {
    "roles": f"{RBAC_GROUP}/roles",
    "rolebindings": f"{RBAC_GROUP}/rolebindings",
    "clusterroles": f"{RBAC_GROUP}/clusterroles",
    "clusterrolebindings": f"{RBAC_GROUP}/clusterrolebindings",
}
_ALL = "*"


def _has(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and (wanted in values or _ALL in values)


def _resource_matches(resources: Any, combined: str, subresource: str) -> bool:
    for resource in resources if isinstance(resources, list) else []:
        if resource in (_ALL, combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def _url_matches(urls: Any, path: str) -> bool:
    for url in urls if isinstance(urls, list) else []:
        if url in (_ALL, path) or (url.endswith("*") and path.startswith(url.rstrip("*"))):
            return True
    return False


def rule_allows(rule: dict[str, Any], request: RequestAttributes) -> bool:
    """``RuleAllows``: does this PolicyRule cover the request?"""
    if not _has(rule.get("verbs"), request.verb):
        return False
    if not request.resource_request:
        return _url_matches(rule.get("nonResourceURLs"), request.path)
    names = rule.get("resourceNames") or []
    return (
        _has(rule.get("apiGroups"), request.group)
        and _resource_matches(rule.get("resources"), request.combined_resource, request.subresource)
        and (not names or request.name in names)
    )


def subject_matches(subject: dict[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    """``appliesToUser``: is ``user`` this binding subject?"""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user.username == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.username == f"system:serviceaccount:{namespace}:{name}"
    return False


@dataclass(frozen=True)
class Grant:
    """One rule that allows a request, and the binding that gave it to the user."""

    binding_kind: str
    binding: str
    binding_namespace: str
    role_kind: str
    role: str
    rule_index: int

    @property
    def rule_id(self) -> str:
        """``Role repairbot/repairbot-operator#2``: the rule, whatever binding carried it."""
        scope = f"{self.binding_namespace}/" if self.role_kind == "Role" else ""
        return f"{self.role_kind} {scope}{self.role}#{self.rule_index}"

    def describe(self) -> str:
        scope = f"{self.binding_namespace}/" if self.binding_kind == "RoleBinding" else ""
        return f"{self.binding_kind} {scope}{self.binding} of {self.rule_id}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    grants: tuple[Grant, ...] = ()
    """Every rule that allows the request (RBAC stops at the first; the audit log wants them all)."""
    by: str = ""
    """``system:masters`` or the first grant's description: the reason a real audit log records."""
    reason: str = ""
    """Why RBAC could not decide (a binding to a missing role), appended to a Forbidden message."""


@dataclass
class _Binding:
    kind: str
    name: str
    namespace: str
    subjects: list[dict[str, Any]]
    role_kind: str
    role: str


@dataclass
class _Compiled:
    cluster_bindings: list[_Binding] = field(default_factory=list)
    namespaced_bindings: dict[str, list[_Binding]] = field(default_factory=dict)
    cluster_roles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    roles: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)


def _binding(obj: dict[str, Any]) -> _Binding:
    ref = obj.get("roleRef") or {}
    return _Binding(
        obj["kind"],
        obj["metadata"]["name"],
        obj["metadata"].get("namespace") or "",
        list(obj.get("subjects") or []),
        str(ref.get("kind", "")),
        str(ref.get("name", "")),
    )


class Authorizer:
    """Decides requests from the RBAC objects in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._compiled: _Compiled | None = None
        store.listeners.append(self._on_write)

    def _on_write(self, event: WatchEvent) -> None:
        if event.key in _KEYS.values():
            self._compiled = None

    def _compile(self) -> _Compiled:
        if self._compiled is not None:
            return self._compiled
        compiled = _Compiled()
        for obj in self.store.list(_KEYS["clusterrolebindings"]):
            compiled.cluster_bindings.append(_binding({**obj, "kind": "ClusterRoleBinding"}))
        for obj in self.store.list(_KEYS["rolebindings"]):
            binding = _binding({**obj, "kind": "RoleBinding"})
            compiled.namespaced_bindings.setdefault(binding.namespace, []).append(binding)
        for obj in self.store.list(_KEYS["clusterroles"]):
            compiled.cluster_roles[obj["metadata"]["name"]] = list(obj.get("rules") or [])
        for obj in self.store.list(_KEYS["roles"]):
            compiled.roles[obj["metadata"].get("namespace") or "", obj["metadata"]["name"]] = list(
                obj.get("rules") or []
            )
        self._compiled = compiled
        return compiled

    def authorize(self, user: UserInfo, request: RequestAttributes) -> Decision:
        if user.is_master:
            return Decision(True, by="system:masters")
        compiled = self._compile()
        bindings = list(compiled.cluster_bindings)
        if request.resource_request and request.namespace:
            bindings += compiled.namespaced_bindings.get(request.namespace, [])
        grants: list[Grant] = []
        missing: list[str] = []
        for binding in bindings:
            if not any(subject_matches(s, user, binding.namespace) for s in binding.subjects):
                continue
            rules = self._rules_of(compiled, binding)
            if rules is None:
                missing.append(f'{binding.role_kind.lower()}.{RBAC_GROUP} "{binding.role}" not found')
                continue
            for index, rule in enumerate(rules):
                if rule_allows(rule, request):
                    grants.append(
                        Grant(binding.kind, binding.name, binding.namespace, binding.role_kind, binding.role, index)
                    )
        if grants:
            return Decision(True, tuple(grants), by=grants[0].describe())
        reason = ""
        if missing:
            reason = "RBAC: " + (missing[0] if len(missing) == 1 else "[" + ", ".join(missing) + "]")
        return Decision(False, reason=reason)

    @staticmethod
    def _rules_of(compiled: _Compiled, binding: _Binding) -> list[dict[str, Any]] | None:
        if binding.role_kind == "ClusterRole":
            return compiled.cluster_roles.get(binding.role)
        if binding.role_kind == "Role" and binding.kind == "RoleBinding":
            return compiled.roles.get((binding.namespace, binding.role))
        return None


def _bootstrap_metadata(name: str) -> dict[str, Any]:
    """How kube-apiserver marks the RBAC objects it seeds (and re-seeds on start)."""
    return {
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    }


def _bootstrap_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": _bootstrap_metadata(name),
        "rules": rules,
    }


def _bootstrap_binding(name: str, groups: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _bootstrap_metadata(name),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group} for group in groups],
    }


_PUBLIC_INFO = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
BOOTSTRAP_POLICY: list[dict[str, Any]] = [
    # kube-apiserver's bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go), the part
    # clients rely on: discovery and OpenAPI for everyone signed in, health and version for everyone at all.
    _bootstrap_role("cluster-admin", [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ]),
    _bootstrap_binding("cluster-admin", ["system:masters"]),
    _bootstrap_role("system:discovery", [
        {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", *_PUBLIC_INFO],
         "verbs": ["get"]},
    ]),
    _bootstrap_binding("system:discovery", ["system:authenticated"]),
    _bootstrap_role("system:basic-user", [
        {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
         "verbs": ["create"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
    ]),
    _bootstrap_binding("system:basic-user", ["system:authenticated"]),
    _bootstrap_role("system:public-info-viewer", [{"nonResourceURLs": _PUBLIC_INFO, "verbs": ["get"]}]),
    _bootstrap_binding("system:public-info-viewer", ["system:authenticated", "system:unauthenticated"]),
]  # fmt: skip


def forbidden(user: UserInfo, request: RequestAttributes, reason: str = "") -> ApiError:
    """kube-apiserver's 403 (``responsewriters.Forbidden`` + ``errors.NewForbidden``), word for word."""
    if request.resource_request:
        where = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
        message = (
            f'User "{user.username}" cannot {request.verb} resource "{request.combined_resource}" '
            f'in API group "{request.group}" {where}'
        )
    else:
        message = f'User "{user.username}" cannot {request.verb} path "{request.path}"'
    if reason:
        message = f"{message}: {reason}"
    details: dict[str, Any] = {}
    if request.resource_request:
        qualified = f"{request.resource}.{request.group}" if request.group else request.resource
        subject = f'{qualified} "{request.name}"' if request.name else qualified
        message = f"{subject} is forbidden: {message}"
        if request.name:
            details["name"] = request.name
        if request.group:
            details["group"] = request.group
        details["kind"] = request.resource
    else:
        message = f"forbidden: {message}"
    return _Forbidden(message, details)


class _Forbidden(ApiError):
    """A 403 always carries ``details``: ``{}`` for a path, as an all-empty ``metav1.StatusDetails`` renders."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(403, "Forbidden", message, details)

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["details"] = dict(self.details or {})
        return body


def validate_rbac_name(name: str) -> list[dict[str, str]]:
    """RBAC object names are path segments (``ValidateRBACName``), so ``system:discovery`` is valid."""
    problems = [f"may not be '{name}'"] if name in (".", "..") else []
    problems += [f"may not contain '{c}'" for c in ("/", "%") if c in name]
    return [
        {"reason": "FieldValueInvalid", "message": f'Invalid value: "{name}": {p}', "field": "metadata.name"}
        for p in problems
    ]
