"""Publish, on the node's active GPURepairs, since when each polled signal has been clean.

The operator may clear a finding only on positive evidence: a complete, clean
poll of the very signal that raised it, after the finding was last seen. The
agent keeps that per signal (:meth:`~repairbot.agent.tracker.FindingTracker.clean_signals`)
and writes it to ``status.agent.signals`` of each active repair of its node —
the object the operator reconciles anyway, so judging a finding costs the
operator no extra request. Only the signals behind a repair's own polled agent
findings are written, and only when one of their streaks starts or ends: a
repair opened by an Xid event or an alert gets no write at all (nothing there
can clear by a poll). The executor's watch already says which repairs are
active and what they hold, so deciding costs no request either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes import client

from repairbot.model import GROUP, PLURAL, VERSION, Finding, SignalKind, Source, format_time

log = logging.getLogger(__name__)


def evidence_for(repair: Mapping[str, Any], clean: Mapping[str, datetime]) -> dict[str, str]:
    """Pure: the ``status.agent.signals`` this repair should hold — its polled agent findings' signals only."""
    signals = set()
    for item in (repair.get("spec") or {}).get("findings") or ():
        finding = Finding.from_dict(item)
        if finding.source is Source.AGENT and finding.signal_kind is SignalKind.POLLED and finding.signal:
            signals.add(finding.signal)
    return {signal: format_time(clean[signal]) for signal in sorted(signals) if signal in clean}


@dataclass
class RepairSignalSink:
    """Writes the clean-since evidence where it differs from what each active repair already holds."""

    api: client.ApiClient
    active: Callable[[], Sequence[Mapping[str, Any]]]  # the node's active GPURepairs, as last listed
    _written: dict[str, dict[str, str]] = field(default_factory=dict)

    def publish(self, node: str, clean: Mapping[str, datetime]) -> None:
        active = {str(r["metadata"]["name"]): r for r in self.active()}
        for name in [n for n in self._written if n not in active]:
            del self._written[name]  # a finished repair: forget it (bounded by the node's active repairs)
        for name, repair in active.items():
            wanted = evidence_for(repair, clean)
            stored = dict(((repair.get("status") or {}).get("agent") or {}).get("signals") or {})
            held = self._written.get(name, stored)
            if held == wanted:
                continue
            body = {"status": {"agent": {"signals": {**{k: None for k in held if k not in wanted}, **wanted}}}}
            try:
                client.CustomObjectsApi(self.api).patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, body)
            except Exception as error:  # the next poll tries again: nothing is cleared without it
                log.warning("signals not published node=%s repair=%s error=%s", node, name, error)
                continue
            self._written[name] = wanted
