"""The demo's views render without a terminal: the live dashboard into a recording Console, the plain lines as text."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from repairbot_sim import fleet
from repairbot_sim.crd import load_crd
from repairbot_sim.demo_feed import DemoEvent, EventKind, Frame, HistoryFeed, SlackFeed, slack_headline
from repairbot_sim.demo_live import LiveView, render_dashboard
from repairbot_sim.demo_plain import PlainView, event_line
from repairbot_sim.demo_tables import node_table, printer_columns, repair_table

NOW = datetime(2026, 11, 22, 10, 0, 30, tzinfo=UTC)


def repair(node: str, phase: str, *history: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{node}-20261122100000", "creationTimestamp": "2026-11-22T10:00:00Z"},
        "spec": {"nodeName": node, "source": "agent", "findings": [{"code": "xid-79"}]},
        "status": {"phase": phase, "reason": "xid-79", "action": "reboot", "attempt": 1, "jira": {"key": "OPS-1"},
                   "detectedAt": "2026-11-22T10:00:00.100Z", "history": list(history)},
    }  # fmt: skip


CORDON = {"step": "cordon", "outcome": "started", "message": "cordoned node gpu-node-002 for xid-79",
          "at": "2026-11-22T10:00:00.200Z"}  # fmt: skip
CORDONED = CORDON | {"outcome": "done"}
REQUEST = {"step": "request", "outcome": "started", "action": "reboot", "attempt": 1, "at": "2026-11-22T10:00:03Z",
           "message": "asked the agent on gpu-node-002 for reboot (rung 1)"}  # fmt: skip


def nodes(count: int = 16) -> list[dict[str, Any]]:
    out = [m for m in fleet.cluster_objects(count) if m["kind"] == "Node"]
    out[2]["spec"]["unschedulable"] = True
    out[2]["metadata"]["labels"]["repairbot.io/state"] = "repairing"
    return out


def test_repair_table_has_kubectls_columns_from_the_crd() -> None:
    version = next(v for v in load_crd()["spec"]["versions"] if v.get("storage"))
    names = [c["name"].upper() for c in version["additionalPrinterColumns"]]
    table = repair_table([repair("gpu-node-002", "Remediating")], now=NOW)
    assert table.headers == ("NAME", *names)
    assert [c.name.upper() for c in printer_columns()] == names
    row = dict(zip(table.headers, table.rows[0], strict=True))
    assert (row["NODE"], row["PHASE"], row["REASON"], row["ACTION"], row["ATTEMPT"], row["TICKET"], row["AGE"]) == (
        "gpu-node-002", "Remediating", "xid-79", "reboot", "1", "OPS-1", "30s",
    )  # fmt: skip


def test_node_table_shows_state_cordon_gpus_and_domain() -> None:
    table = node_table(nodes(8))
    row = dict(zip(table.headers, table.rows[2], strict=True))
    assert (row["NAME"], row["STATE"], row["CORDONED"], row["GPUS"], row["FAILURE DOMAIN"]) == (
        "gpu-node-002", "repairing", "yes", "8", "leaf-0",
    )  # fmt: skip
    assert table.lines()[0].split() == ["NAME", "READY", "STATE", "CORDONED", "GPUS", "GPU", "HEALTH", "FAILURE",
                                        "DOMAIN"]  # fmt: skip


def test_history_feed_tells_each_step_once_in_the_notifiers_words() -> None:
    feed = HistoryFeed()
    first = feed.update([repair("gpu-node-002", "Cordoned", CORDON, CORDONED)])
    assert [e.kind for e in first] == [EventKind.OPENED, EventKind.STEP]  # started+done twins told once
    assert first[1].text == "cordon: done — cordoned node gpu-node-002 for xid-79"
    second = feed.update([repair("gpu-node-002", "Remediating", CORDON, CORDONED, REQUEST)])
    assert [e.text for e in second] == [
        "request (reboot, attempt 1): started — asked the agent on gpu-node-002 for reboot (rung 1)"
    ]
    assert feed.update([repair("gpu-node-002", "Remediating", CORDON, CORDONED, REQUEST)]) == []


def test_slack_feed_and_headline() -> None:
    recorded = [{"path": "/api/chat.postMessage", "status": 200,
                 "body": {"text": "@gpu-oncall gpu-node-009: row-remap-failure on GPU 2 (GPU-ab-12, 0000:3a:00.0) — "
                          "Quarantined. The node stays cordoned. More."}}]  # fmt: skip
    feed = SlackFeed()
    (event,) = feed.update(recorded)
    headline = "gpu-node-009: row-remap-failure on GPU 2 — Quarantined. The node stays cordoned."
    assert event.text == f"Slack #gpu-repairs: {headline}"
    assert feed.update(recorded) == []
    assert slack_headline(":rotating_light: reboot: failed", sentences=1) == "reboot: failed"
    paged = "<!subteam^S0GPUONCALL> :rotating_light: quarantine: temp &gt; 90 &amp; rising, see <https://j/OPS-1|OPS-1>"
    assert slack_headline(paged, sentences=1) == "quarantine: temp > 90 & rising, see OPS-1"


def _events() -> list[DemoEvent]:
    return [
        DemoEvent(NOW, "gpu-node-002", "inject xid:79 into gpu-node-002 GPU 3", EventKind.INJECT),
        DemoEvent(NOW, "gpu-node-002", "reboot: failed — validate failed", EventKind.STEP, bad=True),
    ]


def _frame(count: int = 16) -> Frame:
    return Frame(tuple(nodes(count)), (repair("gpu-node-002", "Remediating", CORDONED),), "Act 1", 12.0)


def test_dashboard_renders_without_a_tty() -> None:
    console = Console(file=io.StringIO(), record=True, width=120, height=60)
    console.print(render_dashboard(_frame(), _events(), width=120, height=60))
    text = console.export_text()
    assert "RepairBot demo · 16 GPU nodes · GPURepairs: 1 · Act 1 · +12s" in text
    for header in ("NAME", "PHASE", "REASON", "ACTION", "ATTEMPT", "TICKET", "FAILURE DOMAIN", "CORDONED"):
        assert header in text
    assert all(f"gpu-node-{i:03d}" in text for i in range(16))
    assert "inject xid:79 into gpu-node-002 GPU 3" in text and "reboot: failed — validate failed" in text


def test_a_short_terminal_keeps_only_the_nodes_worth_seeing() -> None:
    console = Console(file=io.StringIO(), record=True, width=120, height=30)
    console.print(render_dashboard(_frame(), _events(), width=120, height=30))
    text = console.export_text()
    assert "gpu-node-002" in text and "gpu-node-007" not in text
    assert "and 15 more nodes: Ready, healthy, schedulable" in text


def test_a_wide_terminal_puts_the_tables_side_by_side() -> None:
    console = Console(file=io.StringIO(), record=True, width=240, height=60)
    console.print(render_dashboard(_frame(), _events(), width=240, height=60))
    header = next(line for line in console.export_text().splitlines() if "FAILURE DOMAIN" in line)
    assert "PHASE" in header


def test_live_view_starts_shows_and_stops_on_a_recording_console() -> None:
    console = Console(file=io.StringIO(), record=True, width=120, height=60)
    view = LiveView(console)
    view.start()
    for event in _events():
        view.event(event)
    view.show(_frame())
    view.stop()
    assert "reboot: failed — validate failed" in console.export_text()


def test_plain_view_prints_timestamped_lines_and_the_tables_at_the_end() -> None:
    out = io.StringIO()
    view = PlainView(out, NOW)
    view.start()
    for event in _events():
        view.event(event)
    view.show(_frame(8))
    view.stop()
    text = out.getvalue()
    assert "10:00:30.000    +0.0s >> gpu-node-002  inject xid:79 into gpu-node-002 GPU 3" in text
    assert "!! gpu-node-002  reboot: failed" in text
    assert "$ kubectl get gpurepairs" in text and "gpu-node-002-20261122100000  gpu-node-002  Remediating" in text
    assert event_line(DemoEvent(NOW, "", "note"), NOW) == "10:00:30.000    +0.0s ==               note"
