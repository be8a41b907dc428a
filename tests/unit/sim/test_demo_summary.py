"""The demo's closing line per repair: what an SRE would paste in a hand-over."""

from __future__ import annotations

from repairbot.sim.demo import repair_summary


def test_summary_names_rungs_mtta_mttr_and_outcome() -> None:
    repair = {
        "spec": {"nodeName": "gpu-node-002"},
        "status": {
            "phase": "Succeeded",
            "reason": "xid-79",
            "detectedAt": "2026-11-22T10:00:00.000Z",
            "acknowledgedAt": "2026-11-22T10:00:00.017Z",
            "resolvedAt": "2026-11-22T10:00:04.100Z",
            "history": [
                {"step": "cordon", "outcome": "done", "at": "2026-11-22T10:00:00.017Z"},
                {"step": "request", "outcome": "started", "action": "reboot", "at": "2026-11-22T10:00:02Z"},
            ],
        },
    }
    assert repair_summary(repair) == "gpu-node-002: xid-79 → reboot; MTTA 17 ms, MTTR 4.1 s; Succeeded"


def test_summary_of_an_unfinished_repair() -> None:
    assert repair_summary({"spec": {"nodeName": "n"}, "status": {}}) == "n: ? → no action; MTTA -, MTTR -; Pending"
