"""The operator's way to a node's BMC settings: its Node's annotations and its one Secret, read by name.

This is the Kubernetes half of :class:`~repairbot.remediations.bmc_access.BmcCredentialsReader`:
the power-cycle remediation asks it where the BMC is and how to log in, and
never touches the Kubernetes client itself. The Secret is read with ``get``,
never listed, so RBAC can grant exactly the Secrets the nodes name.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import describe_api_error, raw_call, retried
from repairbot.remediations.bmc_access import (
    BmcCredentials,
    BmcTarget,
    RedfishError,
    bmc_target,
    credentials_from_secret,
)


@dataclass(frozen=True, slots=True)
class KubeBmcCredentials:
    """Reads BMC settings through the API server, with the client's usual bounded retries."""

    api: client.ApiClient

    def target(self, node: str) -> BmcTarget:
        core = client.CoreV1Api(self.api)
        try:
            node_obj = retried(lambda: raw_call(core.read_node, node))
        except ApiException as error:
            raise RedfishError(f"node {node}: cannot read the Node ({describe_api_error(error)})") from None
        return bmc_target(node_obj)

    def credentials(self, target: BmcTarget) -> BmcCredentials:
        core = client.CoreV1Api(self.api)
        try:
            secret = retried(lambda: raw_call(core.read_namespaced_secret, target.secret_name, target.secret_namespace))
        except ApiException as error:
            # A 404 says all there is; otherwise the API server's sentence names who may not read what.
            why = {404: "does not exist", 403: "may not be read by the operator (RBAC: grant get on it)"}
            said = "" if error.status == 404 else f" ({describe_api_error(error)})"
            what = why.get(error.status, "could not be read")
            raise RedfishError(
                f"node {target.node}: BMC Secret {target.secret_ref} {what}{said}", status=error.status
            ) from None
        return credentials_from_secret(target, secret.get("data"))
