"""Who a request comes from: the emulated API server's ``user.Info``.

Authentication (bearer token → user) fills one of these in per request;
RBAC authorization and admission (ValidatingAdmissionPolicy's
``request.userInfo``) read it. In-process writes by the sandbox itself (the
simulated kubelet, seeding the cluster) run as :data:`SANDBOX_ADMIN`, a member
of ``system:masters`` as a real cluster-admin certificate would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ANONYMOUS", "MASTERS", "NODE_NAME_EXTRA", "SANDBOX_ADMIN", "UserInfo", "service_account"]

MASTERS = "system:masters"
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
"""The extra a pod-bound ServiceAccount token carries since Kubernetes 1.30: the pod's node."""


@dataclass(frozen=True)
class UserInfo:
    """``request.userInfo`` as kube-apiserver hands it to authorizers and admission."""

    username: str
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)
    uid: str = ""

    @property
    def is_master(self) -> bool:
        return MASTERS in self.groups

    def as_cel(self) -> dict[str, object]:
        """The shape CEL expressions see as ``request.userInfo``."""
        return {
            "username": self.username,
            "uid": self.uid,
            "groups": list(self.groups),
            "extra": {key: list(values) for key, values in self.extra.items()},
        }


ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))
SANDBOX_ADMIN = UserInfo("repairbot-sandbox-admin", (MASTERS, "system:authenticated"))


def service_account(namespace: str, name: str, *, node: str | None = None) -> UserInfo:
    """The user a ServiceAccount token authenticates as; ``node`` for a pod-bound token."""
    extra: dict[str, tuple[str, ...]] = {NODE_NAME_EXTRA: (node,)} if node else {}
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")
    return UserInfo(f"system:serviceaccount:{namespace}:{name}", groups, extra)
