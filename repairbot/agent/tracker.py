"""Which findings are current on this node, and which intake has not heard yet.

Polled signals repeat themselves: a pending row remap is still pending at the
next poll. Intake must hear it once, not every ten seconds, or a repair's
``count`` would measure uptime rather than faults. Pushed signals (an Xid
event) are single occurrences, already debounced by their detector, and are
always passed on.

Findings that intake could not take (API down) stay queued here and are sent
again on the next cycle: a finding is never dropped because Kubernetes
hiccupped.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from repairbot.detectors.base import SignalHealth, SignalState
from repairbot.kube.nodes import NodeCondition
from repairbot.model import CONDITION_GPU_HEALTHY, Action, Finding, strongest


@dataclass(slots=True)
class FindingTracker:
    """Thread-safe: event threads and the poll loop both feed it."""

    _current: dict[str, dict[tuple[str, str], Finding]] = field(default_factory=dict)
    _sticky: dict[tuple[str, str], Finding] = field(default_factory=dict)
    _outbox: list[Finding] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # One Xid reaches the agent twice, from NVML's event and from the kernel log.
    # A second source reporting the same finding this soon corroborates, it does not repeat.
    corroboration_window: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _last_event: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)

    def observe_poll(self, detector: str, findings: list[Finding]) -> list[Finding]:
        """Record one poll's verdict; returns the findings that are new since the last poll."""
        with self._lock:
            previous = self._current.get(detector, {})
            now = {f.key(): f for f in findings}
            self._current[detector] = now
            fresh = [f for key, f in now.items() if key not in previous and f.action is not Action.NONE]
            self._outbox.extend(fresh)
            return fresh

    def observe_event(self, finding: Finding, origin: str = "") -> bool:
        """Record a pushed finding; returns whether intake will hear of it.

        An event finding stays 'current' until a repair clears it (see
        :meth:`clear_events`). The same finding from another ``origin`` within
        :attr:`corroboration_window` only adds its evidence.
        """
        key = finding.key()
        now = self.clock()
        with self._lock:
            last = self._last_event.get(key)
            self._last_event[key] = (now, origin)
            known = self._sticky.get(key)
            corroborates = last is not None and last[1] != origin and now - last[0] <= self.corroboration_window
            if corroborates and known is not None:
                known.evidence.update({k: v for k, v in finding.evidence.items() if k not in known.evidence})
                return False
            if known is None:
                self._sticky[key] = finding
            else:
                known.merge(finding)
            if finding.action is Action.NONE:
                return False
            self._outbox.append(finding)
            return True

    def clear_events(self) -> None:
        """A successful reset, reboot or validation makes past events history."""
        with self._lock:
            self._sticky.clear()
            self._last_event.clear()

    def take_outbox(self) -> list[Finding]:
        with self._lock:
            taken, self._outbox = self._outbox, []
            return taken

    def requeue(self, findings: list[Finding]) -> None:
        """Put back findings intake could not take, ahead of newer ones."""
        with self._lock:
            self._outbox[:0] = findings

    def active(self) -> list[Finding]:
        """Everything currently wrong on this node, strongest first."""
        with self._lock:
            found = [f for per in self._current.values() for f in per.values()]
            found.extend(self._sticky.values())
        return sorted(found, key=lambda f: -f.action.severity)

    def condition(self, healths: list[SignalHealth]) -> NodeCondition:
        """The node's ``GPUHealthy`` condition from what is active and what could be read."""
        bad = [f for f in self.active() if f.action is not Action.NONE]
        if bad:
            worst = strongest([f.action for f in bad])
            lead = next(f for f in bad if f.action is worst)
            codes = ", ".join(sorted({f.code for f in bad}))
            return NodeCondition(
                CONDITION_GPU_HEALTHY, "False", condition_reason(lead.code), f"{codes}: {lead.message}"[:1000]
            )
        unreadable = [h for h in healths if h.state is not SignalState.OK]
        if healths and len(unreadable) == len(healths):
            reason = "NoGpuDriver" if any("driver" in h.message.lower() for h in unreadable) else "SignalsUnreadable"
            message = "; ".join(f"{h.detector}: {h.message}" for h in unreadable)
            return NodeCondition(CONDITION_GPU_HEALTHY, "Unknown", reason, message[:1000])
        return NodeCondition(CONDITION_GPU_HEALTHY, "True", "GPUsHealthy", "all GPU health signals are clean")


def condition_reason(code: str) -> str:
    """``xid-79`` → ``Xid79``, ``row-remap-failure`` → ``RowRemapFailure`` (Kubernetes reasons are CamelCase)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", code) if part)
