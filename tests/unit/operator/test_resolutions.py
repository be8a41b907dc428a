"""Resolved alerts become one history line each, once, in time order; a re-fire clears the mark."""

from __future__ import annotations

from datetime import UTC, datetime

from repairbot.model import Action, Finding, Severity, Source
from repairbot.operator.resolutions import STEP_ALERT_RESOLVED, resolution_entries

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def alert_finding(fingerprint: str, resolved_at: str | None = None, code: str = "xid-79") -> Finding:
    evidence = {"alertname": "GpuXid", "fingerprint": fingerprint}
    if resolved_at:
        evidence["resolvedAt"] = resolved_at
    return Finding(code=code, message="m", action=Action.REBOOT, severity=Severity.CRITICAL,
                   source=Source.GRAFANA, first_seen=T0, evidence=evidence)  # fmt: skip


def test_each_resolved_alert_is_one_entry_in_time_order() -> None:
    findings = [
        alert_finding("b", "2026-11-22T10:05:00.000Z"),
        alert_finding("a", "2026-11-22T10:01:00.000Z", code="ecc-dbe"),
        alert_finding("c"),  # still firing
    ]
    entries = resolution_entries(findings, [], attempt=1)
    assert [(e["step"], e["fingerprint"], e["at"]) for e in entries] == [
        (STEP_ALERT_RESOLVED, "a", "2026-11-22T10:01:00.000Z"),
        (STEP_ALERT_RESOLVED, "b", "2026-11-22T10:05:00.000Z"),
    ]
    assert "GpuXid resolved" in entries[0]["message"] and entries[0]["attempt"] == 1


def test_an_alert_already_in_the_history_is_not_written_again() -> None:
    findings = [alert_finding("a", "2026-11-22T10:01:00.000Z")]
    first = resolution_entries(findings, [])
    assert resolution_entries(findings, first) == []


def test_agent_findings_and_unreadable_marks_write_nothing() -> None:
    agent = Finding(code="xid-79", message="m", action=Action.REBOOT, severity=Severity.CRITICAL,
                    source=Source.AGENT, first_seen=T0)  # fmt: skip
    assert resolution_entries([agent, alert_finding("a", "yesterday-ish")], []) == []


def test_a_refire_clears_the_resolved_mark() -> None:
    resolved = alert_finding("a", "2026-11-22T10:01:00.000Z")
    resolved.merge(alert_finding("a"))
    assert "resolvedAt" not in resolved.evidence
    again = alert_finding("a")
    again.merge(alert_finding("a", "2026-11-22T10:09:00.000Z"))
    assert again.evidence["resolvedAt"] == "2026-11-22T10:09:00.000Z"
