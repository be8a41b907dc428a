"""Read GPURepairs the way the operator's and agent's loops need them: one by name (gone is an answer, not an
error), or every repair of one node by its ``repairbot.io/node`` label."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import as_object
from repairbot.model import GROUP, LABEL_NODE, PLURAL, VERSION


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


def repairs_of_node(custom: client.CustomObjectsApi, node: str) -> list[dict[str, Any]]:
    """Every GPURepair of ``node``, finished ones included, in one list request."""
    listing = as_object(
        custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=f"{LABEL_NODE}={node}")
    )
    return list(listing.get("items") or [])
