"""A second Pending GPURepair for a node that already has a record is folded into it, never admitted.

Intake keeps one record per node: a 409 on create re-reads and merges. Two
reporters racing across a second boundary pick different names, though, and
can both create — and a repair opened before quarantines were sticky may sit
Pending beside a quarantine. Before the reconciler admits a Pending repair
(under its admission lock, so before anything touches the node) it asks
:func:`fold_twin`: when the node's record (:func:`repairbot.kube.intake.node_record`:
the unreleased quarantine, else the active repair admitted first, else the
oldest) is another repair, this one's findings go through intake into the
record and this one is deleted. Nothing is lost: the delete carries the
resourceVersion that was merged, so a finding that arrived meanwhile makes it
fail and the next reconcile folds again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.intake import Intake, node_record
from repairbot.kube.repairs import read_repair
from repairbot.model import GROUP, PLURAL, VERSION, Finding, Source

log = logging.getLogger(__name__)


def fold_twin(
    api: client.ApiClient,
    obj: Mapping[str, Any],
    intake: Intake | None = None,
    *,
    repairs: Iterable[Mapping[str, Any]] | None = None,
) -> str | None:
    """Fold Pending repair ``obj`` into its node's record if that is another repair; the record's name, or None.

    ``repairs`` are the node's repairs as a watch cache holds them (free); without them one list is made.
    Only when the record is another repair is it read whole from the API server, since the merge
    rewrites its findings (a cache may keep only a summary of them).
    """
    intake = intake or Intake(api)
    metadata, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    name, node = str(metadata.get("name")), str(spec.get("nodeName") or "")
    known = intake.repairs_of(node) if repairs is None else [dict(r) for r in repairs]
    record = node_record(known)
    if record is None or record["metadata"]["name"] == name:
        return None
    if repairs is not None:
        record = read_repair(client.CustomObjectsApi(api), str(record["metadata"]["name"]))
        if record is None:
            return None  # gone meanwhile: this repair may well be the record now; decided next time
    findings = [Finding.from_dict(item) for item in spec.get("findings") or ()]
    if findings:
        source = Source(spec.get("source") or Source.AGENT.value)
        result = intake.merge_into(record, findings, source=source, requested_action=spec.get("requestedAction"))
        if result.name == name:
            return None
    merged_version = client.V1Preconditions(resource_version=metadata.get("resourceVersion"))
    options = client.V1DeleteOptions(preconditions=merged_version)
    try:
        client.CustomObjectsApi(api).delete_cluster_custom_object(GROUP, VERSION, PLURAL, name, body=options)
    except ApiException as error:
        if error.status == 404:
            return str(record["metadata"]["name"])
        if error.status == 409:
            log.info("twin changed while folding repair=%s; folding again next time", name)
            return None
        raise
    log.info("twin folded repair=%s into=%s node=%s findings=%d", name, record["metadata"]["name"], node, len(findings))
    return str(record["metadata"]["name"])
