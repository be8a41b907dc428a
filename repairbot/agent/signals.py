"""Publish, on the node's active GPURepairs, since when each polled signal has been clean.

The operator may clear a finding only on positive evidence: a complete, clean
poll of the very signal that raised it, after the finding was last seen. The
agent keeps that per signal (:meth:`~repairbot.agent.tracker.FindingTracker.clean_signals`)
and writes it to ``status.agent.signals`` of each active repair of its node —
the object the operator reconciles anyway, so judging a finding costs the
operator no extra request, and the agent only writes when a streak starts or
ends (the executor's watch already tells it which repairs are active and what
they hold).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from kubernetes import client

from repairbot.model import GROUP, PLURAL, VERSION, format_time

log = logging.getLogger(__name__)


@dataclass
class RepairSignalSink:
    """Writes the clean-since map where it differs from what each active repair already holds."""

    api: client.ApiClient
    active: Callable[[], Mapping[str, Mapping[str, str]]]  # repair name → its status.agent.signals
    _written: dict[str, dict[str, str]] = field(default_factory=dict)

    def publish(self, node: str, clean: Mapping[str, datetime]) -> None:
        wanted = {signal: format_time(since) for signal, since in sorted(clean.items())}
        active = self.active()
        for name in [n for n in self._written if n not in active]:
            del self._written[name]  # a finished repair: forget it (bounded by the node's active repairs)
        for name, stored in active.items():
            held = self._written.get(name, dict(stored))
            if held == wanted:
                continue
            body = {"status": {"agent": {"signals": {**{k: None for k in held if k not in wanted}, **wanted}}}}
            try:
                client.CustomObjectsApi(self.api).patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, body)
            except Exception as error:  # the next poll tries again: nothing is cleared without it
                log.warning("signals not published node=%s repair=%s error=%s", node, name, error)
                continue
            self._written[name] = wanted
