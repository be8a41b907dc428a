"""``repairbot status``'s summary and human screen, from objects as the API server returns them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from repairbot.machine.breaker import Breaker, Breakers, BreakerState
from repairbot.model import format_time
from repairbot.operator.status import ClusterRead, summarize
from repairbot.operator.status_text import duration, render
from repairbot.policy import parse_policy

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return format_time(NOW - timedelta(**delta))


def repair(name: str, node: str, phase: str, *, opened: str, entered: str, message: str = "", action: str = "reboot",
           conditions: list[dict[str, Any]] | None = None, incident: str | None = None) -> dict[str, Any]:  # fmt: skip
    status: dict[str, Any] = {"phase": phase, "reason": "xid-79", "action": action, "attempt": 1,
                              "detectedAt": opened, "message": message,
                              "history": [{"step": "intake", "outcome": "opened", "at": entered}],
                              "conditions": conditions or []}  # fmt: skip
    if incident:
        status["incident"] = incident
    return {"metadata": {"name": name, "creationTimestamp": opened}, "spec": {"nodeName": node}, "status": status}


def gpu_node(name: str, *, cordoned: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"nvidia.com/gpu.present": "true"}},
            "spec": {"unschedulable": True} if cordoned else {}}  # fmt: skip


STORM_MESSAGE = "storm in failure domain leaf-0: 4 faults in 5m (maxPerDomain 4)"
INCIDENT = "storm-20261202-0830-leaf-0"
READ = ClusterRead(
    repairs=(
        repair("gpu-001-a", "gpu-001", "Remediating", opened=ago(minutes=12), entered=ago(minutes=3),
               message="asked the agent on gpu-001 for reboot (rung 1)"),
        repair("gpu-004-b", "gpu-004", "Blocked", opened=ago(minutes=30), entered=ago(minutes=29),
               message=STORM_MESSAGE, incident=INCIDENT,
               conditions=[{"type": "Blocked", "status": "True", "reason": "BreakerOpen", "message": STORM_MESSAGE}]),
        repair("gpu-006-c", "gpu-006", "Quarantined", opened=ago(days=2, hours=3), entered=ago(days=2),
               message="lemon: 3 repairs in 1h; quarantined for a human", action="quarantine"),
        repair("gpu-002-old", "gpu-002", "Succeeded", opened=ago(days=1), entered=ago(hours=20)),
    ),
    nodes=(gpu_node("gpu-001", cordoned=True), gpu_node("gpu-002"), gpu_node("gpu-004", cordoned=True),
           gpu_node("gpu-006", cordoned=True), gpu_node("gpu-007", cordoned=True)),
    breakers=Breakers(Breaker(), {"leaf-0": Breaker(BreakerState.OPEN, INCIDENT, STORM_MESSAGE,
                                                     NOW - timedelta(minutes=30), domain="leaf-0")}),
    lease={"spec": {"holderIdentity": "repairbot-operator-7d9-x2", "renewTime": "2026-12-02T08:59:58.000000Z"}},
    policy=parse_policy({"budget": {"maxUnavailable": 4}}),
    policy_source="configmap repairbot/repairbot-policy",
)  # fmt: skip

SCREEN = (Path(__file__).parent / "data" / "status_screen.txt").read_text(encoding="utf-8")
"""The screen as an on-call sees it in a leaf storm: review a change to it as a change to the product."""


def test_the_on_call_screen_during_a_leaf_storm() -> None:
    assert render(summarize(READ, NOW)) == SCREEN


def test_the_json_document_has_the_same_facts_in_camel_case() -> None:
    document = summarize(READ, NOW).to_json()
    assert document["byPhase"] == {"Remediating": 1, "Blocked": 1, "Quarantined": 1}
    blocked = next(r for r in document["repairs"] if r["phase"] == "Blocked")
    assert blocked["blockedBy"] == "BreakerOpen" and blocked["incident"] == INCIDENT
    assert blocked["inPhaseSeconds"] == 29 * 60 and blocked["ageSeconds"] == 30 * 60
    assert document["budget"]["pools"] == [
        {"pool": "gpu-nodes", "size": 5, "cordoned": 4, "outByRepairbot": 3, "cap": 4}
    ]


def test_a_quiet_fleet_with_no_policy_shows_counts_and_nothing_to_do() -> None:
    quiet = ClusterRead(repairs=(), nodes=(gpu_node("gpu-001"),), unreadable=("leases repairbot/x: Forbidden (403)",))
    screen = render(summarize(quiet, NOW))
    assert "REPAIRS: none active" in screen and "WAITING FOR A HUMAN: nothing" in screen
    assert "BUDGET (no policy read: counts only; pass --policy FILE for the cap)" in screen
    assert "  gpu-nodes  1          0         0             ?    ?" in screen
    assert "operator leader: none (no Lease)" in screen
    assert screen.rstrip().endswith("leases repairbot/x: Forbidden (403)")


def test_a_notify_hold_offers_resume_and_quarantine() -> None:
    hold = repair("gpu-003-h", "gpu-003", "Remediating", opened=ago(hours=1), entered=ago(minutes=50),
                  message="xid-48: node gpu-003 kept cordoned (not drained) for a human", action="notify")  # fmt: skip
    (wait,) = summarize(ClusterRead(repairs=(hold,), nodes=()), NOW).waiting_for_human
    assert wait.what == "node held for a human"
    assert wait.commands == ("repairbot resume gpu-003-h", "repairbot repair gpu-003 --action quarantine")


def test_ages_read_at_a_glance() -> None:
    assert [duration(s) for s in (0, 59, 60, 3599, 3600, 7500, 86400, 90000)] == [
        "0s", "59s", "1m", "59m", "1h00m", "2h05m", "1d00h", "1d01h"]  # fmt: skip
