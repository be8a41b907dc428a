"""Intake: every entry point's findings become one active GPURepair per node.

The agent, the alert webhook and a human with ``repairbot repair`` all call
:meth:`Intake.report`. It finds the node's active repair (label
``repairbot.io/node``, phase not terminal) and merges the new findings into it
— counting repeats up and keeping ``firstSeen`` — or creates a new one named
``<node>-<yyyymmddhhmmss>``. Merges are optimistic-concurrency updates,
retried on 409 so two reporters never lose each other's findings.

Two reporters creating the first repair of a node in the same instant can, in
rare cases, both create one; the operator resolves such twins by keeping the
oldest. Intake does not lock, because a lock would make every report pay for
a race that almost never happens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.bounds import FINDINGS_MAX, bound_finding, cap_findings, truncate
from repairbot.kube.client import api_retrying, as_object, is_too_large
from repairbot.model import (
    EVIDENCE_FINGERPRINT,
    EVIDENCE_RESOLVED_AT,
    GROUP,
    KIND,
    LABEL_NODE,
    PLURAL,
    VERSION,
    Finding,
    Phase,
    Source,
    format_time,
    repair_name,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """Which repair took the findings, and whether it was opened just now."""

    name: str
    node: str
    created: bool
    findings: int


def merge_findings(
    existing: list[dict[str, Any]], new: Iterable[Finding], *, limit: int = FINDINGS_MAX
) -> list[dict[str, Any]]:
    """Fold ``new`` findings into a repair's ``spec.findings`` (pure), within the size bounds.

    The same finding class on the same GPU is one item: its count grows, its
    ``firstSeen`` stays, its action becomes the stronger of the two. Messages
    and evidence are cut to :mod:`repairbot.bounds`' caps, and past ``limit``
    items the weakest and oldest fold into one counted item.
    """
    merged = [bound_finding(Finding.from_dict(item)) for item in existing]
    by_key = {finding.key(): finding for finding in merged}
    for finding in new:
        known = by_key.get(finding.key())
        if known is None:
            copy = bound_finding(finding)
            merged.append(copy)
            by_key[copy.key()] = copy
        else:
            known.merge(bound_finding(finding))
    return [finding.to_dict() for finding in cap_findings(merged, limit)]


SHRUNK_FINDINGS_MAX = 4
"""Findings kept when the API server refused a repair as too large: the strongest few, and the tally."""


class IntakeTooLarge(ValueError):
    """The API server refused the repair for its size even after shrinking: retrying the same report cannot help."""


def is_active(repair: dict[str, Any]) -> bool:
    phase = (repair.get("status") or {}).get("phase")
    return phase is None or not Phase(phase).is_terminal


def oldest_active(repairs: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The node's active repair; if twins exist, the oldest is the one that counts."""
    active = [r for r in repairs if is_active(r) and not r["metadata"].get("deletionTimestamp")]
    active.sort(key=lambda r: (r["metadata"].get("creationTimestamp", ""), r["metadata"]["name"]))
    return active[0] if active else None


@dataclass(frozen=True, slots=True)
class _Report:
    """One call of :meth:`Intake.report`, carried through its retries."""

    node: str
    findings: tuple[Finding, ...]
    source: Source
    reason: str | None
    requested_action: str | None
    dry_run: bool

    def spec(self, limit: int = FINDINGS_MAX) -> dict[str, Any]:
        """The spec of a new repair opened by this report (at most ``limit`` findings)."""
        spec: dict[str, Any] = {
            "nodeName": self.node,
            "source": self.source.value,
            "findings": merge_findings([], self.findings, limit=limit),
        }
        if self.dry_run:
            spec["dryRun"] = True
        if self.reason:
            spec["reason"] = truncate(self.reason)
        if self.requested_action:
            spec["requestedAction"] = self.requested_action
        return spec


class Intake:
    """Creates or merges GPURepairs through the Kubernetes API."""

    def __init__(self, api: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api)

    def active_repair(self, node: str) -> dict[str, Any] | None:
        listing = as_object(
            self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=f"{LABEL_NODE}={node}")
        )
        return oldest_active(listing.get("items", []))

    def report(
        self,
        node: str,
        findings: list[Finding],
        *,
        source: Source = Source.AGENT,
        reason: str | None = None,
        requested_action: str | None = None,
        dry_run: bool = False,
    ) -> IntakeResult:
        """Hand ``findings`` for ``node`` to its active repair, opening one if needed."""
        if not findings:
            raise ValueError(f"node {node}: intake needs at least one finding")
        wanted = _Report(node, tuple(findings), source, reason, requested_action, dry_run)
        for attempt in api_retrying():
            with attempt:
                return self._report_once(wanted)
        raise AssertionError("unreachable: api_retrying re-raises")  # pragma: no cover

    def note_resolved(self, node: str, fingerprint: str, at: datetime) -> str | None:
        """Mark the active repair's findings from alert ``fingerprint`` as resolved at ``at``.

        Returns the repair's name, or None when the node has no active repair or
        none of its findings came from that alert. The repair itself goes on: an
        alert that stops firing is evidence, not proof, that the node is well —
        the operator writes it into the repair's history for the humans.
        """
        for attempt in api_retrying():
            with attempt:
                return self._note_resolved_once(node, fingerprint, format_time(at))
        raise AssertionError("unreachable: api_retrying re-raises")  # pragma: no cover

    def _note_resolved_once(self, node: str, fingerprint: str, at: str) -> str | None:
        current = self.active_repair(node)
        if current is None:
            return None
        findings = (current.get("spec") or {}).get("findings") or []
        marked = False
        for item in findings:
            evidence = item.get("evidence") or {}
            if evidence.get(EVIDENCE_FINGERPRINT) == fingerprint and EVIDENCE_RESOLVED_AT not in evidence:
                item["evidence"] = {**evidence, EVIDENCE_RESOLVED_AT: at}
                marked = True
        if not marked:
            return None
        name = current["metadata"]["name"]
        # resourceVersion travels with ``current``: a concurrent intake merge makes this 409 and we re-read.
        self._custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, name, current)
        log.info("intake noted resolved node=%s repair=%s fingerprint=%s", node, name, fingerprint)
        return str(name)

    def _report_once(self, wanted: _Report) -> IntakeResult:
        return self._shrinking(wanted, self.active_repair(wanted.node))

    def _shrinking(self, wanted: _Report, current: dict[str, Any] | None) -> IntakeResult:
        """One write; if the API server refuses it for its size, once more with the findings shrunk.

        A refusal for size is never retried as it was (it can only fail again):
        the second try keeps the strongest few findings and the tally of the
        rest; a second refusal is :class:`IntakeTooLarge`, for the caller to
        record and drop rather than re-send forever.
        """
        try:
            return self._create(wanted) if current is None else self._merge(wanted, deepcopy(current), FINDINGS_MAX)
        except ApiException as error:
            if not is_too_large(error):
                raise
            log.warning("intake refused as too large node=%s; retrying with findings shrunk", wanted.node)
        try:
            if current is None:
                return self._create(wanted, limit=SHRUNK_FINDINGS_MAX)
            return self._merge(wanted, current, SHRUNK_FINDINGS_MAX)
        except ApiException as error:
            if not is_too_large(error):
                raise
            raise IntakeTooLarge(f"node {wanted.node}: the API server refused the repair as too large "
                                 f"even with its findings shrunk ({error.status})") from None  # fmt: skip

    def _merge(self, wanted: _Report, current: dict[str, Any], limit: int) -> IntakeResult:
        spec = current.setdefault("spec", {})
        spec["findings"] = merge_findings(spec.get("findings") or [], wanted.findings, limit=limit)
        if wanted.requested_action and not spec.get("requestedAction"):
            spec["requestedAction"] = wanted.requested_action
        # replace_* sends metadata.resourceVersion: a concurrent writer makes this 409 and we re-read.
        name = current["metadata"]["name"]
        updated = as_object(self._custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, name, current))
        log.info("intake merged node=%s repair=%s findings=%d", wanted.node, name, len(wanted.findings))
        return IntakeResult(updated["metadata"]["name"], wanted.node, False, len(spec["findings"]))

    def _create(self, wanted: _Report, *, limit: int = FINDINGS_MAX) -> IntakeResult:
        now = datetime.now(UTC)
        spec = wanted.spec(limit)
        metadata: dict[str, Any] = {"name": repair_name(wanted.node, now), "labels": {LABEL_NODE: wanted.node}}
        body: dict[str, Any] = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}
        try:
            created = as_object(self._custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body))
        except ApiException as error:
            if error.status != 409:
                raise
            # A repair of this node was opened in the same second (or a finished one
            # holds the name): retrying re-reads and merges, or picks a fresh name.
            metadata["name"] = f"{repair_name(wanted.node, now)}-{now.microsecond // 1000:03d}"
            created = as_object(self._custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body))
        name = created["metadata"]["name"]
        log.info("intake created node=%s repair=%s findings=%d", wanted.node, name, len(wanted.findings))
        return IntakeResult(name, wanted.node, True, len(spec["findings"]))
