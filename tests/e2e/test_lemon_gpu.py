"""A repeat-offender GPU is quarantined for RMA even while the node's other GPUs are fine (issue 14).

The node-level lemon rule counts a node's repairs; a board that keeps failing
on an otherwise healthy node is caught by the per-GPU rule, which follows the
GPU by its board serial across repairs. The sandbox's agents report the same
GPU's Xid three times; the first two repairs fix it, the third hands it to
hardware with the board's serial in the Jira ticket, the Slack thread and the
repair's history.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import NOTIFYING, SandboxFactory, chats, eventually, inject_now, phase_of, repairs_of, simulated

from repairbot.kube.client import api_client

TARGET = "gpu-node-001"
LEMON_GPU = 3


def told_everyone(repair: dict[str, Any]) -> bool:
    """Slack and Jira have every history entry of this repair, and its phase."""
    status = repair.get("status") or {}
    history = status.get("history") or []
    cursors = [(status.get("deliveries") or {}).get(target) or {} for target in ("slack", "jira")]
    return all(c.get("sent") == len(history) and c.get("phase") == status.get("phase") for c in cursors)


@pytest.mark.timeout(300)  # three whole repairs, each with a reboot, one after another
def test_the_same_gpu_failing_in_three_repairs_is_quarantined_naming_its_serial_for_the_rma(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(policy={**NOTIFYING, "lemon": {"maxRepairs": 5, "maxRepairsPerGpu": 2, "window": "1h"}})
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    board = simulated(sandbox, TARGET).node.backend.device(LEMON_GPU)

    finished: list[dict[str, Any]] = []
    for round_ in range(3):
        inject_now(sandbox, [(TARGET, "xid:79", LEMON_GPU)])

        def settled(seen: int = round_) -> dict[str, Any] | None:
            repairs = sorted(repairs_of(kube, TARGET), key=lambda r: r["metadata"]["name"])
            fresh = [r for r in repairs if r["metadata"]["name"] not in {f["metadata"]["name"] for f in finished}]
            done = [r for r in fresh if phase_of(r) in ("Succeeded", "Quarantined", "Failed") and told_everyone(r)]
            return done[0] if len(repairs) == seen + 1 and done else None

        finished.append(eventually(settled, 60, interval=0.2, what=f"repair {round_ + 1} of {TARGET} finished"))

    assert [phase_of(r) for r in finished] == ["Succeeded", "Succeeded", "Quarantined"], [
        (phase_of(r), r["status"].get("message")) for r in finished
    ]
    third = finished[2]
    status = third["status"]
    reasons = [c.get("reason") for c in status.get("conditions") or [] if c["type"] == "Quarantined"]
    assert reasons == ["LemonGpu"], status.get("conditions")
    assert {f["gpu"].get("serial") for f in third["spec"]["findings"]} == {board.serial}

    [quarantine] = [e for e in status["history"] if e["step"] == "quarantine" and e["outcome"] == "started"]
    for name in (board.serial, board.uuid, board.pci, f"GPU {LEMON_GPU}"):
        assert name in quarantine["message"], quarantine["message"]

    issue = jira.issues[status["jira"]["key"]]
    comments = jira.comments_of(issue.key)
    assert board.serial in issue.fields["description"]
    rma = [c for c in comments if "is quarantined" in c]
    assert rma and f"serial {board.serial}" in rma[-1], comments

    replies = [m.text or "" for m in slack.thread(status["slack"]["channel"], status["slack"]["ts"])]
    assert any(board.serial in text and "quarantine" in text for text in replies), replies
