"""Which BMC a node has and how to log in to it: the Node's annotations and its one Secret.

Kept apart from the Redfish protocol (:mod:`repairbot.remediations.redfish`)
because this half is Kubernetes configuration, not HTTP, and its errors tell
an SRE which annotation or Secret key to fix. Reading the Node and the Secret
is the operator's (:class:`BmcCredentialsReader`, implemented with the
Kubernetes client in :mod:`repairbot.operator.bmc_credentials`); what they say
is interpreted here, as pure functions over the objects read, so this package
never imports the Kubernetes layer. :class:`RedfishError` lives here so that
both halves raise the one error the operator catches, without the two modules
importing each other.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

ANNOTATION_BMC_ADDRESS = "repairbot.io/bmc-address"
ANNOTATION_BMC_SECRET = "repairbot.io/bmc-secret"
ANNOTATION_BMC_SYSTEM = "repairbot.io/bmc-system"
ANNOTATION_BMC_INSECURE = "repairbot.io/bmc-insecure"


class RedfishError(RuntimeError):
    """A power cycle or a read that cannot go on; the message names the node, the BMC and what to fix."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class BmcTarget:
    """One node's BMC, as its annotations describe it."""

    node: str
    address: str
    secret_namespace: str
    secret_name: str
    system_id: str | None = None
    insecure: bool = False

    @property
    def secret_ref(self) -> str:
        return f"{self.secret_namespace}/{self.secret_name}"


def bmc_target(node: Mapping[str, Any]) -> BmcTarget:
    """Read a Node's BMC annotations; raises :class:`RedfishError` naming the annotation to fix."""
    metadata = node.get("metadata") or {}
    name = str(metadata.get("name", "?"))
    annotations = metadata.get("annotations") or {}
    address = str(annotations.get(ANNOTATION_BMC_ADDRESS, "")).strip().rstrip("/")
    if not address:
        raise RedfishError(
            f"node {name}: no BMC known; set annotation {ANNOTATION_BMC_ADDRESS} (e.g. https://10.0.0.5)"
        )
    if not address.startswith(("http://", "https://")):
        raise RedfishError(f"node {name}: annotation {ANNOTATION_BMC_ADDRESS}={address!r} is not an http(s) URL")
    secret = str(annotations.get(ANNOTATION_BMC_SECRET, "")).strip()
    namespace, _, secret_name = secret.partition("/")
    if not namespace or not secret_name or "/" in secret_name:
        raise RedfishError(
            f"node {name}: annotation {ANNOTATION_BMC_SECRET}={secret!r} must name the BMC Secret as namespace/name"
        )
    system = str(annotations.get(ANNOTATION_BMC_SYSTEM, "")).strip() or None
    insecure = str(annotations.get(ANNOTATION_BMC_INSECURE, "")).strip().lower() == "true"
    return BmcTarget(name, address, namespace, secret_name, system, insecure)


@dataclass(frozen=True, slots=True)
class BmcCredentials:
    username: str
    password: str = field(repr=False)


class BmcCredentialsReader(Protocol):
    """Where a node's BMC is and how to log in to it, read from the cluster.

    Both methods raise :class:`RedfishError` naming what to fix (the Node, an
    annotation, the Secret or the operator's RBAC on it).
    """

    def target(self, node: str) -> BmcTarget:
        """The node's BMC, from its annotations (see :func:`bmc_target`)."""
        ...

    def credentials(self, target: BmcTarget) -> BmcCredentials:
        """The username and password in the Secret ``target`` names (see :func:`credentials_from_secret`)."""
        ...


def credentials_from_secret(target: BmcTarget, data: Mapping[str, str] | None) -> BmcCredentials:
    """The BMC login in a Secret's ``data`` (base64 keys ``username``, ``password``); raises naming a missing key."""
    data = data or {}
    missing = [key for key in ("username", "password") if not data.get(key)]
    if missing:
        raise RedfishError(f"node {target.node}: BMC Secret {target.secret_ref} has no {' or '.join(missing)} key")
    username, password = (base64.b64decode(data[key]).decode("utf-8") for key in ("username", "password"))
    return BmcCredentials(username, password)
