"""The demo's closing screen: one row per repair an SRE would paste in a hand-over, and the ✓/✗ table."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from repairbot_sim.demo_expectations import Verdict
from repairbot_sim.demo_scenarios import demo_scenarios
from repairbot_sim.demo_summary import between, explore_commands, render_summary, slack_excerpt, summary_rows

REPAIR: dict[str, Any] = {
    "metadata": {"name": "gpu-node-002-20261122100000"},
    "spec": {"nodeName": "gpu-node-002"},
    "status": {
        "phase": "Succeeded",
        "reason": "xid-79",
        "detectedAt": "2026-11-22T10:00:00.000Z",
        "acknowledgedAt": "2026-11-22T10:00:00.017Z",
        "resolvedAt": "2026-11-22T10:00:04.100Z",
        "slack": {"channel": "C0GPUREPAIR", "ts": "1700000001.000001"},
        "jira": {"key": "OPS-1"},
        "history": [
            {"step": "cordon", "outcome": "done", "at": "2026-11-22T10:00:00.017Z"},
            {"step": "request", "outcome": "started", "action": "reboot", "at": "2026-11-22T10:00:02Z"},
        ],
    },
}
RECORDED = [
    {"path": "/api/chat.postMessage", "status": 200,
     "body": {"text": "gpu-node-002: xid-79 on GPU 3 (GPU-6c20-19, 0000:5d:00.0) — Cordoned. MTTA 17ms."}},
    {"path": "/api/chat.postMessage", "status": 200, "body": {"text": "cordon", "thread_ts": "1700000001.000001"}},
    {"path": "/api/chat.postMessage", "status": 200, "body": {"text": "reboot", "thread_ts": "1700000001.000001"}},
    {"path": "/api/chat.update", "status": 200,
     "body": {"ts": "1700000001.000001", "text": "gpu-node-002: xid-79 on GPU 3 (GPU-6c20-19, 0000:5d:00.0) — "
              "Succeeded. Back in service after 4s."}},
]  # fmt: skip


def test_mtta_and_mttr_in_ms_below_a_second_else_seconds() -> None:
    status = REPAIR["status"]
    assert between(status, "detectedAt", "acknowledgedAt") == "17 ms"
    assert between(status, "detectedAt", "resolvedAt") == "4.1 s"
    assert between({}, "detectedAt", "resolvedAt") == "-"


def test_slack_excerpt_is_the_parent_as_last_edited_without_gpu_ids() -> None:
    assert slack_excerpt(REPAIR, RECORDED) == "gpu-node-002: xid-79 on GPU 3 — Succeeded. [2 in thread]"
    assert slack_excerpt({"status": {}}, RECORDED) == "-"


def test_a_storm_repair_shows_the_one_storm_message() -> None:
    storm = {"status": {"phase": "Blocked", "incident": "storm-7", "slack": {"ts": "9.9"}}}
    text = "@gpu-oncall :thunder_cloud_and_rain: Fault storm: 4 nodes at once (storm-7). Stop."
    recorded = [{"path": "/api/chat.postMessage", "status": 200, "body": {"text": text}}]
    assert slack_excerpt(storm, recorded) == "Fault storm: 4 nodes at once (storm-7). [0 in thread]"


def test_summary_row_names_rungs_times_outcome_thread_and_ticket() -> None:
    (row,) = summary_rows([REPAIR], RECORDED, {"OPS-1": "Done"})
    assert (row.node, row.reason, row.actions, row.mtta, row.mttr, row.outcome, row.jira) == (
        "gpu-node-002", "xid-79", "reboot", "17 ms", "4.1 s", "Succeeded", "OPS-1 (Done)",
    )  # fmt: skip


def test_summary_of_an_unfinished_repair() -> None:
    (row,) = summary_rows([{"metadata": {"name": "n-1"}, "spec": {"nodeName": "n"}, "status": {}}], [], {})
    assert (row.reason, row.actions, row.mtta, row.mttr, row.outcome, row.slack, row.jira) == (
        "?", "none", "-", "-", "Pending", "-", "-",
    )  # fmt: skip


def _render(verdicts: list[Verdict]) -> str:
    console = Console(file=io.StringIO(), record=True, width=200)
    rows = summary_rows([REPAIR], RECORDED, {"OPS-1": "Done"})
    render_summary(console, rows, verdicts, ["kubectl get gpurepairs"], kept=False)
    return console.export_text()


def test_render_lists_every_scenario_with_its_mark() -> None:
    scenarios = demo_scenarios()
    text = _render([Verdict(s, s.key != "storm", f"saw {s.key}") for s in scenarios])
    for scenario in scenarios:
        assert scenario.title in text and f"saw {scenario.key}" in text
    assert text.count("✓") == len(scenarios) - 1 and "✗" in text
    assert "1 of 8 scenarios did not end as expected" in text
    assert "gpu-node-002" in text and "OPS-1 (Done)" in text and "kubectl get gpurepairs" in text


def test_render_all_good() -> None:
    text = _render([Verdict(s, True, "ok") for s in demo_scenarios()])
    assert "all 8 scenarios ended as expected" in text


def test_explore_commands_point_kubectl_at_the_state_dir() -> None:
    from pathlib import Path

    lines = explore_commands(Path("rb-state"), kept=True, slack_url="http://127.0.0.1:1", quarantined="q-1")
    assert any("--kubeconfig rb-state/kubeconfig get gpurepairs" in line for line in lines)
    assert any("get gpurepair q-1 -o yaml" in line for line in lines)
    assert any(line.startswith("curl -s http://127.0.0.1:1/_recorded") for line in lines)
