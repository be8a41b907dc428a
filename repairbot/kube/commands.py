"""What a human asks of RepairBot by hand: open a repair, resume, quarantine, release, cancel.

The CLI (``repairbot repair|resume|release|cancel``) and the webhook's Slack
buttons call the same functions, so a click in Slack and a command in a
terminal take one path. Each talks to the cluster only through the
Kubernetes API — intake for a new finding, an annotation on the GPURepair
for everything else — and the operator does the rest and records it in the
history, so it works the same against a real cluster and the sandbox.
``by`` names who asked ("<@U123> from Slack", "alice (repairbot resume)");
the operator writes it into the history it keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from repairbot.kube.client import as_object
from repairbot.kube.intake import Intake, IntakeResult, is_held_quarantine
from repairbot.model import (
    ANNOTATION_CANCEL_REQUESTED_BY,
    ANNOTATION_RELEASED_BY,
    ANNOTATION_RESUME,
    ANNOTATION_RESUMED_BY,
    GROUP,
    PLURAL,
    VERSION,
    Action,
    Finding,
    Phase,
    Severity,
    Source,
)

ACTIVE = frozenset(p.value for p in Phase if not p.is_terminal)


def open_manual_repair(
    api: client.ApiClient,
    node: str,
    *,
    reason: str,
    action: Action | None = None,
    dry_run: bool = False,
    by: str = "repairbot repair",
) -> IntakeResult:
    """``repairbot repair NODE --reason TEXT [--action reboot]``: a human's finding, through intake.

    Intake refuses a node that does not exist (a typo) or is opted out, before
    anything is written (:class:`~repairbot.kube.intake.IntakeRefused`); on a
    quarantined node the finding is recorded on the quarantine and nothing runs.
    """
    finding = Finding(
        code="manual",
        message=f"node {node}: {reason}",
        action=action or Action.NOTIFY,
        severity=Severity.WARNING,
        source=Source.MANUAL,
        evidence={"requestedBy": by},
    )
    return Intake(api).report(
        node,
        [finding],
        source=Source.MANUAL,
        reason=reason,
        requested_action=action.value if action else None,
        dry_run=dry_run,
    )


@dataclass(frozen=True, slots=True)
class Resumed:
    name: str
    node: str
    was: str


def list_repairs(api: client.ApiClient) -> list[dict[str, Any]]:
    """Every GPURepair (one list call: what the webhook's RBAC grants, no per-name get)."""
    custom = client.CustomObjectsApi(api)
    return list(as_object(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)).get("items") or [])


def resume_repairs(
    api: client.ApiClient,
    names: Sequence[str],
    *,
    all_blocked: bool = False,
    by: str | None = None,
    repairs: Sequence[dict[str, Any]] | None = None,
) -> list[Resumed]:
    """Mark repairs for resumption (``repairbot.io/resume=true``); the operator does the rest.

    Resuming a storm (breaker open) half-opens the breaker: one canary goes
    first, the rest follow once it succeeded. ``repairs``: the list already
    read (the webhook judged the click on it).
    """
    custom = client.CustomObjectsApi(api)
    listed = list_repairs(api) if repairs is None else repairs
    chosen = []
    for repair in listed:
        phase = (repair.get("status") or {}).get("phase")
        wanted = repair["metadata"]["name"] in names or (all_blocked and phase == Phase.BLOCKED.value)
        if wanted and phase not in {p.value for p in Phase if p.is_terminal}:
            chosen.append(repair)
    missing = set(names) - {r["metadata"]["name"] for r in chosen}
    if missing:
        raise LookupError(f"no active GPURepair named {', '.join(sorted(missing))}")
    # Who asked, or no one named: a merge patch's null removes an earlier asker, who would be credited again.
    body = {"metadata": {"annotations": {ANNOTATION_RESUME: "true", ANNOTATION_RESUMED_BY: by or None}}}
    for repair in chosen:
        custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, repair["metadata"]["name"], body)
    return [
        Resumed(r["metadata"]["name"], r["spec"]["nodeName"], (r.get("status") or {}).get("phase", "Pending"))
        for r in chosen
    ]


@dataclass(frozen=True, slots=True)
class ReleaseAsked:
    name: str
    node: str


def release_quarantine(api: client.ApiClient, node: str, *, by: str) -> list[ReleaseAsked]:
    """``repairbot release NODE``: ask the operator to end the node's quarantine (annotation ``released-by``).

    The operator does the rest, in the same order as for a state label removed
    by hand: taint and label off, uncordon only if RepairBot cordoned the node,
    ``Released=True`` on the GPURepair. Raises LookupError when nothing holds it.
    """
    custom = client.CustomObjectsApi(api)
    held = [r for r in Intake(api).repairs_of(node) if is_held_quarantine(r)]
    if not held:
        raise LookupError(f"node {node} has no quarantine to release")
    body = {"metadata": {"annotations": {ANNOTATION_RELEASED_BY: by}}}
    for repair in held:
        custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, repair["metadata"]["name"], body)
    return [ReleaseAsked(r["metadata"]["name"], node) for r in held]


@dataclass(frozen=True, slots=True)
class CancelAsked:
    name: str
    node: str
    was: str


def cancel_repair(
    api: client.ApiClient, name: str, *, by: str, repairs: Sequence[dict[str, Any]] | None = None
) -> CancelAsked:
    """``repairbot cancel NAME``: stop a repair, leaving its node cordoned for a human.

    Written as the annotation ``repairbot.io/cancel-requested-by``; the
    operator ends the repair Cancelled (``CancelledByHuman``), takes its taint
    and label off and never uncordons, and records who asked in the history.
    Raises LookupError when no active repair has that name.
    """
    listed = list_repairs(api) if repairs is None else repairs
    repair = next((r for r in listed if r["metadata"]["name"] == name), None)
    phase = ((repair or {}).get("status") or {}).get("phase", Phase.PENDING.value)
    if repair is None or phase not in ACTIVE:
        raise LookupError(f"no active GPURepair named {name}")
    body = {"metadata": {"annotations": {ANNOTATION_CANCEL_REQUESTED_BY: by}}}
    client.CustomObjectsApi(api).patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, body)
    return CancelAsked(name, str(repair["spec"]["nodeName"]), phase)
