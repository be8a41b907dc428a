"""What a request asks to do, in the terms authorizers decide on.

kube-apiserver turns every request into ``authorizer.Attributes`` before any
handler runs (``RequestInfoFactory`` in k8s.io/apiserver): a *resource*
request has a verb, API group, resource, subresource, namespace and name; any
other path (``/version``, ``/apis``, ``/openapi/v3``) is a *non-resource*
request whose verb is the lowercased HTTP method. This module does the same
split from the path, method and query alone, so RBAC, the audit log and the
Forbidden message all see the request the way a real server would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RequestAttributes", "request_attributes"]

_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_TRUE = ("1", "true", "True")


@dataclass(frozen=True)
class RequestAttributes:
    """``authorizer.Attributes`` of one request."""

    verb: str
    path: str
    resource_request: bool = False
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def combined_resource(self) -> str:
        """``pods/eviction``: what RBAC rules name and what Forbidden messages quote."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def as_dict(self) -> dict[str, str]:
        if not self.resource_request:
            return {"verb": self.verb, "path": self.path}
        return {
            "verb": self.verb,
            "group": self.group,
            "resource": self.resource,
            "subresource": self.subresource,
            "namespace": self.namespace,
            "name": self.name,
        }


def _field_selector_name(selector: str) -> str:
    """The name a ``metadata.name=<x>`` field selector pins a list or watch to ("" if none)."""
    for term in selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and key.strip() == "metadata.name" and not key.strip().endswith("!"):
            return value.strip()
    return ""


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> RequestAttributes:
    """The attributes kube-apiserver's ``RequestInfoFactory`` derives from ``method path?query``."""
    parts = [part for part in path.split("/") if part]
    non_resource = RequestAttributes(verb=method.lower(), path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    group = ""
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    verb = _METHOD_VERBS.get(method.upper(), "")
    if rest and rest[0] == "watch":  # the legacy /watch/ prefix
        if len(rest) < 2:
            return non_resource
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "") in _TRUE else "list"
        name = _field_selector_name(query.get("fieldSelector", ""))
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestAttributes(
        verb=verb,
        path=path,
        resource_request=True,
        group=group,
        version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )
