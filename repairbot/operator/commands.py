"""What an SRE does by hand: open a repair, resume blocked ones, release a quarantine, check a policy file.

Each command talks to the cluster only through the Kubernetes API (the same
intake the agent and the webhook use, annotations the operator watches), so
it works the same against a real cluster and the sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml
from kubernetes import client

from repairbot.kube.client import as_object
from repairbot.kube.intake import Intake, IntakeResult, is_held_quarantine
from repairbot.model import (
    ANNOTATION_RELEASED_BY,
    ANNOTATION_RESUME,
    GROUP,
    PLURAL,
    VERSION,
    Action,
    Finding,
    Phase,
    Severity,
    Source,
)
from repairbot.policy import PolicyError, PolicyFileError, load_policy


def open_manual_repair(
    api: client.ApiClient, node: str, *, reason: str, action: Action | None = None, dry_run: bool = False
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
        evidence={"requestedBy": "repairbot repair"},
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


def resume_repairs(api: client.ApiClient, names: Sequence[str], *, all_blocked: bool = False) -> list[Resumed]:
    """Mark repairs for resumption (``repairbot.io/resume=true``); the operator does the rest.

    Resuming a storm (breaker open) half-opens the breaker: one canary goes
    first, the rest follow once it succeeded.
    """
    custom = client.CustomObjectsApi(api)
    repairs = as_object(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)).get("items") or []
    chosen = []
    for repair in repairs:
        phase = (repair.get("status") or {}).get("phase")
        wanted = repair["metadata"]["name"] in names or (all_blocked and phase == Phase.BLOCKED.value)
        if wanted and phase not in {p.value for p in Phase if p.is_terminal}:
            chosen.append(repair)
    missing = set(names) - {r["metadata"]["name"] for r in chosen}
    if missing:
        raise LookupError(f"no active GPURepair named {', '.join(sorted(missing))}")
    body = {"metadata": {"annotations": {ANNOTATION_RESUME: "true"}}}
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


def check_policy(path: Path, out: TextIO) -> int:
    """``repairbot policy check FILE``: the effective policy as YAML, or every error by field (exit 2)."""
    try:
        policy = load_policy(path)
    except PolicyFileError as error:  # not a policy at all: one line, the file and the problem
        out.write(f"{error}\n")
        return 2
    except PolicyError as error:
        out.write(f"{path}: invalid policy\n{error}\n")
        return 2
    out.write(f"# effective policy from {path}\n")
    out.write(yaml.safe_dump(policy.to_dict(), sort_keys=False))
    return 0
