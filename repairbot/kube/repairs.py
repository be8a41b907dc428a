"""Read one GPURepair by name, the way the operator's loops all need it: gone is an answer, not an error."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import as_object
from repairbot.model import GROUP, PLURAL, VERSION


def read_repair(custom: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    """The GPURepair ``name`` as the API server holds it now, or None when it was deleted.

    A repair deleted between a list and the next read is ordinary (a human,
    retention GC, a folded twin); every other API error is the caller's to
    handle or retry.
    """
    try:
        return as_object(custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name))
    except ApiException as error:
        if error.status == 404:
            return None
        raise
