"""The words Slack and Jira get: what an SRE needs is in them, and failures ping on-call."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from repairbot.model import Action, Finding, GpuRef, HistoryEntry, Phase, Severity
from repairbot.notify.jira import dedupe_jql, sanitize_label, ticket_labels
from repairbot.notify.messages import (
    StormView,
    format_duration,
    jira_comment,
    jira_description,
    jira_incident_description,
    jira_incident_summary,
    jira_quarantine,
    jira_resolution,
    jira_summary,
)
from repairbot.notify.slack_messages import SlackMessage, plain_form, slack_parent, slack_reply, slack_storm
from repairbot.notify.view import RepairView

T0 = datetime(2026, 1, 5, 3, 14, 0, tzinfo=UTC)
ON_CALL = "<!subteam^S0ONCALL>"


def make_view(**changes: object) -> RepairView:
    finding = Finding(
        code="xid-79", message="GPU has fallen off the bus", action=Action.REBOOT, severity=Severity.FATAL,
        gpu=GpuRef(index=3, uuid="GPU-8f2c", pci="0000:3b:00.0"), xid=79, first_seen=T0,
        evidence={"serial": "1654321098765", "dashboardURL": "https://grafana.example/d/gpu",
                  "generatorURL": "https://grafana.example/alerting/rule/1"},
    )
    view = RepairView(
        name="gpu-17-20260105031400", node="gpu-17", phase=Phase.DRAINING, reason="xid-79", findings=(finding,),
        action=Action.REBOOT, attempt=1, detected_at=T0, acknowledged_at=T0 + timedelta(milliseconds=850),
        runbook_base_url="https://runbooks.example/gpu/", jira_key="OPS-7", jira_url="https://jira.example/browse/OPS-7",
    )
    return dataclasses.replace(view, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "needle",
    ["gpu-17", "xid-79", "GPU 3", "GPU-8f2c", "0000:3b:00.0", "Draining", "reboot (attempt 1)", "MTTA 850ms",
     "gpu-17-20260105031400", "OPS-7", "https://runbooks.example/gpu/xid-79.md"],
)
def test_parent_fallback_text_has_what_an_sre_needs(needle: str) -> None:
    assert needle in slack_parent(make_view()).text


def test_parent_blocks_carry_meaning_and_links() -> None:
    blocks = str(slack_parent(make_view()).blocks)
    assert "fallen off the PCIe bus" in blocks  # the catalog's meaning of Xid 79
    assert "<https://grafana.example/d/gpu|Grafana dashboard>" in blocks
    assert "<https://runbooks.example/gpu/xid-79.md|Runbook>" in blocks
    assert "Jira <https://jira.example/browse/OPS-7|OPS-7>" in blocks


@pytest.mark.parametrize(
    ("phase", "pings", "phrase"),
    [
        (Phase.DRAINING, False, "current action reboot"),
        (Phase.SUCCEEDED, False, "Back in service after 14m"),
        (Phase.FAILED, True, "Repair failed"),
        (Phase.QUARANTINED, True, "hardware for replacement"),
        (Phase.BLOCKED, True, "waiting for a human"),
    ],
)
def test_parent_status_per_phase(phase: Phase, pings: bool, phrase: str) -> None:
    view = make_view(phase=phase, resolved_at=T0 + timedelta(minutes=14))
    text = slack_parent(view, on_call=ON_CALL).text
    assert phrase in text
    assert (ON_CALL in text) is pings


@pytest.mark.parametrize(
    ("entry", "pings"),
    [
        (HistoryEntry("cordon", "done", "node cordoned"), False),
        (HistoryEntry("drain", "blocked", "PDB ml/train allows 0 disruptions"), True),
        (HistoryEntry("validate", "failed", "dcgmi diag level 2 failed on GPU 3"), True),
        (HistoryEntry("quarantine", "done", "ladder exhausted"), True),
        (HistoryEntry("reboot", "requested", "via agent", action=Action.REBOOT, attempt=2), False),
    ],
)
def test_reply_pings_on_call_only_when_a_human_is_needed(entry: HistoryEntry, pings: bool) -> None:
    message = slack_reply(make_view(), entry, on_call=ON_CALL)
    assert (ON_CALL in message.text) is pings
    assert entry.message in message.text and entry.step in message.text


def test_success_reply_says_how_long() -> None:
    view = make_view(phase=Phase.SUCCEEDED, resolved_at=T0 + timedelta(minutes=12, seconds=5))
    text = slack_reply(view, HistoryEntry("uncordon", "returned", "validation passed")).text
    assert "Returned to service in 12m 5s" in text


def test_storm_is_one_message_and_caps_the_list() -> None:
    nodes = [f"gpu-{i:03d}" for i in range(100)] + ["gpu-000"]
    storm = StormView.of("leaf switch ls-4", [(n, "Blocked") for n in nodes], jira_key="OPS-99")
    message = slack_storm(storm, on_call=ON_CALL)
    assert "100 nodes" in message.text and "and 60 more" in message.text and "OPS-99" in message.text
    assert ON_CALL in message.text and "Blocked" in message.text
    assert all(len(b["text"]["text"]) <= 3000 for b in message.blocks if b["type"] != "actions")


def test_jira_summary_and_description_hold_the_evidence() -> None:
    view = make_view()
    assert jira_summary(view) == "gpu-17: xid-79 on GPU 3 (GPU-8f2c, 0000:3b:00.0) [gpu-17-20260105031400]"
    description = jira_description(view)
    for needle in ["Xid 79", "fallen off the PCIe bus", "RESTART_BM", "RepairBot's ladder: reboot",
                   "Serial: 1654321098765",
                   "0000:3b:00.0", "[Runbook|https://runbooks.example/gpu/xid-79.md]",
                   "[Alert rule|https://grafana.example/alerting/rule/1]", "MTTA 850ms"]:
        assert needle in description, needle


def test_jira_comments_resolution_and_quarantine() -> None:
    view = make_view(phase=Phase.SUCCEEDED, resolved_at=T0 + timedelta(minutes=14))
    entry = HistoryEntry("reboot", "done", "node back after 6m", at=T0 + timedelta(minutes=9))
    assert jira_comment(view, entry) == "2026-01-05 03:23:00 UTC — reboot: done — node back after 6m"
    assert "MTTR 14m" in jira_resolution(view) and "reboot (attempt 1)" in jira_resolution(view)
    history = (HistoryEntry("reboot", "failed", "", action=Action.REBOOT),
               HistoryEntry("power-cycle", "failed", "", action=Action.POWER_CYCLE))
    text = jira_quarantine(make_view(phase=Phase.QUARANTINED, history=history))
    assert "Tried: reboot, power-cycle" in text and "replace GPU 3" in text and "serial 1654321098765" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.85, "850ms"), (42, "42s"), (60, "1m"), (725, "12m 5s"), (3 * 3600 + 240, "3h 4m"), (7200, "2h")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def test_labels_are_sanitised_and_the_jql_finds_one_repair() -> None:
    assert sanitize_label("node-gpu 17/a:b") == "node-gpu_17_a_b"
    labels = ticket_labels(["repairbot", "gpu fleet"], "gpu-17", "gpu-17-20260105031400")
    assert labels == ["repairbot", "gpu_fleet", "node-gpu-17", "repair-gpu-17-20260105031400"]
    jql = dedupe_jql("OPS", "gpu-17", "gpu-17-20260105031400")
    assert 'labels = "node-gpu-17"' in jql and 'labels = "repair-gpu-17-20260105031400"' in jql


def test_view_from_resource() -> None:
    obj = {
        "metadata": {"name": "gpu-17-20260105031400"},
        "spec": {"nodeName": "gpu-17", "findings": [make_view().findings[0].to_dict()]},
        "status": {"phase": "Validating", "action": "reboot", "attempt": 1, "detectedAt": "2026-01-05T03:14:00.000Z",
                   "acknowledgedAt": "2026-01-05T03:14:00.850Z", "jira": {"key": "OPS-7"},
                   "history": [{"step": "cordon", "outcome": "done", "message": "m", "at": "2026-01-05T03:14:01Z"}]},
    }
    view = RepairView.from_resource(obj, runbook_base_url="https://rb", jira_browse_base="https://jira.example")
    assert view.phase is Phase.VALIDATING and view.reason == "xid-79"
    assert view.mtta == timedelta(milliseconds=850) and view.jira_url == "https://jira.example/browse/OPS-7"
    assert view.runbook_url == "https://rb/xid-79.md" and view.history[0].step == "cordon"


def test_a_storm_of_a_thousand_nodes_fits_slack_and_jira() -> None:
    members = [(f"gpu-node-{i:04d}", "Blocked" if i % 3 else "Succeeded") for i in range(1000)]
    storm = StormView.of("storm-20261201", members, detail="x" * 10_000, jira_key="OPS-7")
    message = slack_storm(storm, on_call=ON_CALL)
    assert "Fault storm: 1000 nodes" in message.text and "and 960 more" in message.text
    assert len(message.text) <= 3000 and len(message.blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in message.blocks if b["type"] != "actions")
    assert "666 Blocked" in message.text and "334 Succeeded" in message.text
    description = jira_incident_description(storm)
    assert len(description) <= 32_767 and "*Nodes (1000):*" in description and "and 600 more" in description
    assert len(jira_incident_summary(storm)) <= 255


def test_a_plain_form_is_the_text_alone_cut_to_the_limit() -> None:
    message = slack_storm(StormView.of("s", [("gpu-1", "Blocked")]))
    plain = plain_form(SlackMessage(text="y" * 5000, blocks=message.blocks), 3000)
    assert plain.blocks == () and len(plain.text) == 3000 and plain.text.endswith("… (truncated)")


LEMON_BOARD = GpuRef(index=3, uuid="GPU-8f2c", pci="0000:3b:00.0", serial="1650123012345")
LEMON_WHY = ("GPU 3 (serial 1650123012345, GPU-8f2c, 0000:3b:00.0) of node gpu-17 was in 3 repairs within 7d "
             "(limit 2 per GPU): quarantined for RMA of the board")  # fmt: skip


def lemon_view() -> RepairView:
    finding = Finding("xid-79", "GPU has fallen off the bus", Action.REBOOT, gpu=LEMON_BOARD, xid=79, first_seen=T0)
    history = (HistoryEntry("quarantine", "started", LEMON_WHY, action=Action.QUARANTINE, at=T0),
               HistoryEntry("quarantine", "done", LEMON_WHY, action=Action.QUARANTINE, at=T0))  # fmt: skip
    return make_view(phase=Phase.QUARANTINED, findings=(finding,), history=history, action=Action.QUARANTINE)


def test_a_lemon_gpus_rma_comment_names_the_board_serial_uuid_pci_and_index_once() -> None:
    text = jira_quarantine(lemon_view())
    assert "replace GPU 3 (serial 1650123012345, GPU-8f2c, 0000:3b:00.0) (xid-79)" in text, text
    assert text.count("1650123012345") == 2, text  # once in why it was quarantined, once in what to replace
    assert LEMON_WHY in text


def test_a_lemon_gpus_ticket_lists_the_serial_nvml_gave_among_the_hardware_identifiers() -> None:
    description = jira_description(lemon_view())
    assert "* GPU 3 (serial 1650123012345, GPU-8f2c, 0000:3b:00.0)" in description
    assert "Serial: 1650123012345" not in description  # said once, on the GPU it belongs to


def test_a_lemon_gpus_quarantine_reply_in_the_slack_thread_names_its_serial_and_pages() -> None:
    view = lemon_view()
    text = slack_reply(view, view.history[0], on_call=ON_CALL).text
    assert "1650123012345" in text and ON_CALL in text and "OPS-7" in text
