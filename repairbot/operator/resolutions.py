"""Alerts that stopped firing during a repair, written into its history (pure).

The webhook marks a finding's evidence ``resolvedAt`` when the alert behind it
resolves (DESIGN: detection never writes the repair's status). The operator
owns ``status.history``, so it is the one that turns the mark into a history
line — which the notification dispatcher then posts to the Slack thread and
the Jira ticket like any other step. The repair does not change course: a
resolved alert is a clue for the humans, not a validation of the node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from repairbot.model import EVIDENCE_FINGERPRINT, EVIDENCE_RESOLVED_AT, Finding, HistoryEntry, parse_time

STEP_ALERT_RESOLVED = "alert-resolved"
OUTCOME_NOTED = "noted"


def _recorded_fingerprints(history: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(entry.get("fingerprint", "")) for entry in history if entry.get("step") == STEP_ALERT_RESOLVED}


def resolution_entries(
    findings: Iterable[Finding], history: Iterable[Mapping[str, Any]], *, attempt: int | None = None
) -> list[dict[str, Any]]:
    """History entries for resolved alerts the history does not mention yet, oldest first.

    Each entry carries the alert's ``fingerprint`` so it is written once, however
    often the repair is reconciled; a re-fire clears ``resolvedAt`` (see
    :meth:`Finding.merge`), and its next resolution is a new entry only if the
    fingerprint differs — one line per alert is what a reader of the thread wants.
    """
    recorded = _recorded_fingerprints(history)
    entries: list[tuple[datetime, dict[str, Any]]] = []
    for finding in findings:
        fingerprint = finding.evidence.get(EVIDENCE_FINGERPRINT, "")
        resolved_at = finding.evidence.get(EVIDENCE_RESOLVED_AT)
        if not fingerprint or not resolved_at or fingerprint in recorded:
            continue
        try:
            when = parse_time(resolved_at)
        except ValueError:
            continue  # not a time the webhook wrote; nothing a human could read from it
        name = finding.evidence.get("alertname") or finding.code
        message = f"alert {name} resolved at the source; the repair carries on until validation passes"
        entry = HistoryEntry(STEP_ALERT_RESOLVED, OUTCOME_NOTED, message, when, attempt=attempt).to_dict()
        entry["fingerprint"] = fingerprint
        entries.append((when, entry))
        recorded.add(fingerprint)
    return [entry for _, entry in sorted(entries, key=lambda pair: pair[0])]
