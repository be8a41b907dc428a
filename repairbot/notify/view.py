"""What a notification needs to know about one repair, read once from the GPURepair.

Slack and Jira are told from this view rather than from the raw resource so
the words in :mod:`repairbot.notify.messages` stay pure functions of plain
data, testable without a cluster, and so the operator can build a view from
whatever it holds (the resource, or its own state) without notify importing
the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from repairbot import runbooks
from repairbot.model import Action, Finding, GpuRef, HistoryEntry, Phase, parse_time

GRAFANA_EVIDENCE_KEYS = ("dashboardURL", "panelURL", "generatorURL", "silenceURL")
"""Evidence keys that carry links an SRE clicks: Grafana dashboard/panel, the alert rule, a silence."""


@dataclass(frozen=True, slots=True)
class RepairView:
    """One GPURepair as Slack and Jira see it. Times are aware datetimes in UTC."""

    name: str
    node: str
    phase: Phase
    reason: str
    findings: tuple[Finding, ...] = ()
    action: Action | None = None
    attempt: int | None = None
    history: tuple[HistoryEntry, ...] = ()
    detected_at: datetime | None = None
    received_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    jira_key: str | None = None
    jira_url: str | None = None
    runbook_base_url: str | None = None
    dry_run: bool = False
    extra_links: Mapping[str, str] = field(default_factory=dict)

    @property
    def started_at(self) -> datetime | None:
        """Where MTTA and MTTR start: the operator's receive time (its own clock), else the detection.

        The sources' clocks can be off (an agent 60 s ahead would show a negative MTTA).
        """
        return self.received_at or self.detected_at

    @property
    def mtta(self) -> timedelta | None:
        """Receipt to cordon: how fast the fleet stopped scheduling onto a bad node."""
        if self.started_at is None or self.acknowledged_at is None:
            return None
        return self.acknowledged_at - self.started_at

    @property
    def mttr(self) -> timedelta | None:
        """Receipt to resolution (back in service, or handed to hardware)."""
        if self.started_at is None or self.resolved_at is None:
            return None
        return self.resolved_at - self.started_at

    @property
    def runbook_url(self) -> str | None:
        """The runbook for this repair's finding class under ``runbook_base_url`` (see :mod:`repairbot.runbooks`)."""
        return runbooks.runbook_url(self.runbook_base_url, self.reason)

    @property
    def gpus(self) -> tuple[GpuRef, ...]:
        """Distinct GPUs named by the findings, in finding order."""
        seen: dict[str, GpuRef] = {}
        for finding in self.findings:
            ident = finding.gpu.identity()
            if ident and ident not in seen:
                seen[ident] = finding.gpu
        return tuple(seen.values())

    @property
    def serials(self) -> tuple[str, ...]:
        """Board serials (the GPU's, else the evidence's): what hardware needs to find the part in the rack."""
        found = [f.gpu.serial or f.evidence.get("serial") for f in self.findings]
        return tuple(dict.fromkeys(s for s in found if s))

    def links(self) -> dict[str, str]:
        """Alert and dashboard links from the findings' evidence, first one of each kind wins, plus ``extra_links``."""
        out: dict[str, str] = {}
        for finding in self.findings:
            for key in GRAFANA_EVIDENCE_KEYS:
                url = finding.evidence.get(key)
                if url and key not in out:
                    out[key] = url
        out.update(self.extra_links)
        return out

    @classmethod
    def from_resource(
        cls, obj: Mapping[str, Any], *, runbook_base_url: str | None = None, jira_browse_base: str | None = None
    ) -> RepairView:
        """Read a GPURepair object (as the Kubernetes API returns it) into a view."""
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        findings = tuple(Finding.from_dict(f) for f in spec.get("findings") or [])
        ticket = status.get("jira") or {}
        key = ticket.get("key")
        derived = f"{jira_browse_base.rstrip('/')}/browse/{key}" if key and jira_browse_base else None
        url = ticket.get("url") or derived
        reason = status.get("reason") or (findings[0].code if findings else "unknown")
        return cls(
            name=obj["metadata"]["name"],
            node=spec.get("nodeName", ""),
            phase=Phase(status.get("phase", Phase.PENDING.value)),
            reason=reason,
            findings=findings,
            action=Action(status["action"]) if status.get("action") else None,
            attempt=status.get("attempt"),
            history=tuple(_history_entry(h) for h in status.get("history") or []),
            detected_at=_time(status.get("detectedAt")),
            received_at=_time(status.get("receivedAt")),
            acknowledged_at=_time(status.get("acknowledgedAt")),
            resolved_at=_time(status.get("resolvedAt")),
            jira_key=key,
            jira_url=url if key else None,  # the ticket the dispatcher stored, linked from Slack
            runbook_base_url=runbook_base_url,
            dry_run=bool(spec.get("dryRun", False)),
        )


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


def _history_entry(data: Mapping[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        step=data.get("step", ""),
        outcome=data.get("outcome", ""),
        message=data.get("message", ""),
        at=parse_time(data["at"]) if data.get("at") else parse_time("1970-01-01T00:00:00Z"),
        action=Action(data["action"]) if data.get("action") else None,
        attempt=data.get("attempt"),
    )
