"""A repair's history stays capped through the state machine, and the notifiers' cursors move with each fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from repairbot.bounds import HISTORY_FOLDED_STEP, HISTORY_MAX
from repairbot.machine import Facts, PoolUsage, RepairView, decide
from repairbot.model import format_time
from repairbot.policy import parse_policy

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
POLICY = parse_policy({"breaker": {"settleTime": "0s"}})


def long_lived(entries: int, sent: dict[str, int]) -> dict[str, Any]:
    """A Pending repair with ``entries`` history lines (a budget queue that flapped for days)."""
    history = [{"step": "queue", "outcome": "BudgetExhausted" if i % 2 else "Breaker", "message": f"waited {i}",
                "at": format_time(T0 + timedelta(minutes=i))} for i in range(entries)]  # fmt: skip
    finding = {"code": "xid-79", "firstSeen": format_time(T0), "gpu": {"index": 3}, "action": "reboot"}
    return {"metadata": {"name": "gpu-1-20261122030000"},
            "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [finding]},
            "status": {"phase": "Pending", "message": "old", "detectedAt": format_time(T0), "reason": "xid-79",
                       "history": history,
                       "deliveries": {t: {"sent": n, "phase": "Pending"} for t, n in sent.items()}}}  # fmt: skip


def step(obj: dict[str, Any]) -> dict[str, Any]:
    now = T0 + timedelta(days=3)
    decision = decide(RepairView.from_object(obj), Facts(pool=PoolUsage(size=100)), POLICY, now)
    return decision.patch


def test_a_repair_with_a_full_history_folds_its_oldest_delivered_steps_and_moves_the_cursors() -> None:
    obj = long_lived(HISTORY_MAX, {"slack": HISTORY_MAX, "jira": HISTORY_MAX})
    patch = step(obj)
    history = patch["history"]
    assert len(history) < HISTORY_MAX
    assert history[0]["step"] == HISTORY_FOLDED_STEP and "earlier steps folded" in history[0]["message"]
    assert history[0]["folded"] + len(history) - 1 == HISTORY_MAX + 1
    new_index = len(history) - 1  # the step this write records: the next thing each notifier owes
    assert patch["deliveries"] == {"slack": {"sent": new_index}, "jira": {"sent": new_index}}


def test_a_full_history_waits_for_a_lagging_notifier_before_it_folds() -> None:
    patch = step(long_lived(HISTORY_MAX, {"slack": HISTORY_MAX, "jira": HISTORY_MAX - 5}))
    assert len(patch["history"]) == HISTORY_MAX + 1 and "deliveries" not in patch


def test_a_tally_of_folded_findings_never_drives_a_repair() -> None:
    from repairbot.bounds import FOLDED_FINDINGS_CODE, cap_findings
    from repairbot.machine import driving_finding
    from repairbot.model import Action, Finding, GpuRef

    alerts = [Finding(f"alert-{i}", "x", Action.NOTIFY, gpu=GpuRef(index=i % 8), first_seen=T0 + timedelta(seconds=i))
              for i in range(100)]  # fmt: skip
    capped = tuple(cap_findings(alerts))
    assert capped[-1].code == FOLDED_FINDINGS_CODE
    assert driving_finding(capped, POLICY, None) != FOLDED_FINDINGS_CODE
