"""The webhook's watch caches: nodes and GPURepairs, so a notification costs its writes and no reads.

A :class:`WebhookCache` is the :class:`~repairbot.kube.intake.RecordSource` intake reads repairs from in
the webhook, and the node list the alert mapping resolves names against (the opt-out check of a new
repair still reads its node from the API: see :meth:`WebhookCache.node_metadata`). It keeps of each object only what
those readers need (a node's name, labels, resourceVersion and addresses; a repair that can still be a
node's record, without its history), so memory stays bounded at fleet scale. Until a cache has
synced, and for a node it does not hold, intake asks the API instead (see ``Intake``).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from repairbot.kube.informer import Informer
from repairbot.kube.intake import is_held_quarantine
from repairbot.model import GROUP, LABEL_NODE, PLURAL, VERSION, Phase

_KEPT_STATUS = ("phase", "conditions")
"""What of a repair's status intake decides on (which repair is the record); the history stays out."""


def trim_node(node: dict[str, Any]) -> dict[str, Any]:
    metadata = node.get("metadata") or {}
    return {
        "metadata": {k: metadata[k] for k in ("name", "labels", "resourceVersion") if k in metadata},
        "status": {"addresses": list((node.get("status") or {}).get("addresses") or [])},
    }


def trim_repair(repair: dict[str, Any]) -> dict[str, Any] | None:
    """A repair that can take findings (active, or a held quarantine), without its history; None otherwise."""
    status = repair.get("status") or {}
    phase = status.get("phase")
    if phase is not None and Phase(phase).is_terminal and not is_held_quarantine(repair):
        return None
    # All of metadata but managedFields: intake's merge is a replace (PUT), which would drop any
    # annotation or finalizer left out here. Status is the subresource's: a PUT of the object ignores it.
    metadata = {k: v for k, v in (repair.get("metadata") or {}).items() if k != "managedFields"}
    return {
        "apiVersion": repair.get("apiVersion"),
        "kind": repair.get("kind"),
        "metadata": metadata,
        "spec": repair.get("spec") or {},
        "status": {k: status[k] for k in _KEPT_STATUS if k in status},
    }


def _node_of(repair: dict[str, Any]) -> str | None:
    return ((repair.get("metadata") or {}).get("labels") or {}).get(LABEL_NODE)


class WebhookCache:
    """Nodes and GPURepairs by list + watch (two long-lived requests instead of several per alert)."""

    def __init__(self, api: client.ApiClient) -> None:
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        self.nodes = Informer("nodes", core.list_node, trim=trim_node)
        self.repairs = Informer(
            "gpurepairs", custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, trim=trim_repair, index=_node_of
        )

    def start(self) -> WebhookCache:
        self.nodes.start()
        self.repairs.start()
        return self

    def stop(self) -> None:
        self.nodes.stop()
        self.repairs.stop()

    def wait_synced(self, timeout: float) -> bool:
        return self.nodes.wait_synced(timeout) and self.repairs.wait_synced(timeout)

    # RecordSource
    def repairs_of(self, node: str) -> list[dict[str, Any]] | None:
        return self.repairs.by_index(node) if self.repairs.synced else None

    def node_metadata(self, node: str) -> dict[str, Any] | None:
        """None: the opt-out check a new repair pays reads the node from the API (one GET per repair opened).

        A human's ``repairbot.io/disabled=true`` set a moment ago must hold even if the watch has not shown
        it yet; the same read then tells the ``faulty`` label's check the node's state. A merge reads nothing.
        """
        return None

    def list_nodes(self) -> list[dict[str, Any]] | None:
        """Every node as cached (name, labels, addresses); None until the first list landed."""
        return self.nodes.items() if self.nodes.synced else None
