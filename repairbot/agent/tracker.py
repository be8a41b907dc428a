"""Which findings are current on this node, and which intake has not heard yet.

Polled signals repeat themselves: a pending row remap is still pending at the
next poll. Intake must hear it once, not every ten seconds, or a repair's
``count`` would measure uptime rather than faults. Pushed signals (an Xid
event) are single occurrences, already debounced by their detector, and are
always passed on.

Findings that intake could not take (API down) stay queued here and are sent
again on the next cycle: a finding is never dropped because Kubernetes
hiccupped.

Positive evidence only: every finding is stamped with the signal that raised
it and whether that signal is polled or an event. For each polled signal the
tracker keeps since when its every complete poll has been clean
(:meth:`clean_signals`); the agent publishes that, and the operator clears a
polled finding only when its signal has been clean since after the finding
was last seen. An event has no poll, so its finding stays until a repair's
validation clears it (:meth:`clear_events`). A poll that could not read its
signal is no evidence either way: it keeps what was known and ends the clean
streak.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from repairbot.detectors.base import SignalHealth, SignalState
from repairbot.kube.nodes import NodeCondition
from repairbot.model import (
    CONDITION_GPU_HEALTHY,
    CORROBORATION_WINDOW,
    Action,
    Finding,
    SignalKind,
    Source,
    strongest,
)

STARTING_REASON = "AgentStarting"


@dataclass(slots=True)
class FindingTracker:
    """Thread-safe: event threads and the poll loop both feed it."""

    _current: dict[str, dict[tuple[str, str], Finding]] = field(default_factory=dict)
    _sticky: dict[tuple[str, str], Finding] = field(default_factory=dict)
    _outbox: list[Finding] = field(default_factory=list)
    _clean_since: dict[str, datetime] = field(default_factory=dict)
    # Restored findings intake already has, until a poll takes them over: a detector that sees one of them is
    # not reporting anything new (the repair may name it by another signal, e.g. the event that raised it).
    _known_to_intake: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # One Xid reaches the agent twice, from NVML's event and from the kernel log.
    # A second source reporting the same finding this soon corroborates, it does not repeat.
    corroboration_window: float = CORROBORATION_WINDOW.total_seconds()
    clock: Callable[[], float] = time.monotonic
    _last_event: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    # Finding classes (globs) an escalation rule counts: reported even when their own action is none.
    counted_codes: tuple[str, ...] = ()

    def observe_poll(
        self, detector: str, findings: list[Finding], *, complete: bool = True, at: datetime | None = None
    ) -> list[Finding]:
        """Record one poll's verdict; returns the findings that are new since the last poll.

        ``complete`` is False when the signal could not be read: then nothing known is forgotten, and the
        signal's clean streak ends (an unreadable counter is no evidence that a fault went away).
        """
        for finding in findings:
            _stamp(finding, detector, SignalKind.POLLED)
        with self._lock:
            previous = self._current.get(detector, {})
            now = {f.key(): f for f in findings}
            self._current[detector] = now if complete else {**previous, **now}
            fresh = [
                f
                for key, f in now.items()
                if key not in previous and key not in self._known_to_intake and f.action is not Action.NONE
            ]
            self._known_to_intake.difference_update(now)
            self._outbox.extend(fresh)
            if complete and not any(f.action is not Action.NONE for f in findings):
                self._clean_since.setdefault(detector, at or datetime.now(UTC))
            else:
                self._clean_since.pop(detector, None)
            return fresh

    def observe_event(self, finding: Finding, origin: str = "") -> bool:
        """Record a pushed finding; returns whether intake will hear of it as a sighting.

        An event finding stays 'current' until a repair clears it (see
        :meth:`clear_events`). The same finding from another ``origin`` within
        :attr:`corroboration_window` is no new sighting (False): it adds its
        evidence, and when it names a job the sighting lacked (the kernel-log
        line of an Xid NVML told first) intake hears that as a corroboration
        (``count`` 0, see :meth:`Finding.corroborate`), so a rule that counts
        distinct jobs sees the job and no rule counts the Xid twice.
        """
        _stamp(finding, origin, SignalKind.EVENT)
        key = finding.key()
        now = self.clock()
        with self._lock:
            last = self._last_event.get(key)
            self._last_event[key] = (now, origin)
            known = self._sticky.get(key)
            corroborates = last is not None and last[1] != origin and now - last[0] <= self.corroboration_window
            if corroborates and known is not None:
                self._corroborate(known, finding)
                return False
            if known is None:
                self._sticky[key] = finding
            else:
                known.merge(finding)
            if not self._reported(finding):
                return False
            self._outbox.append(finding)
            return True

    def _corroborate(self, known: Finding, finding: Finding) -> None:
        """``finding`` is a second source's word on ``known``: its evidence, and the job it names, if any."""
        news = tuple(o for o in finding.sightings() if o.job)
        if news and self._reported(known):
            # Before the evidence below: a jobless sighting would otherwise read the line's pid as its own.
            update = replace(finding, count=0, occurrences=news, evidence=dict(finding.evidence))
            if known.corroborate(update):
                self._outbox.append(update)
        known.evidence.update({k: v for k, v in finding.evidence.items() if k not in known.evidence})

    def _reported(self, finding: Finding) -> bool:
        """Whether intake hears of this finding: it asks for an action, or an escalation rule counts it."""
        return finding.action is not Action.NONE or self._counted(finding.code)

    def _counted(self, code: str) -> bool:
        return any(fnmatch.fnmatchcase(code, pattern) for pattern in self.counted_codes)

    def restore(self, findings: Iterable[Finding], polled_signals: Collection[str]) -> int:
        """Take back what a previous agent on this node reported (from its active GPURepair); returns how many.

        Intake already has them, so nothing is queued. A polled finding goes back under its signal, so the
        next poll decides whether it is still there without reporting it as new; every other agent finding
        (an event, or one from an agent too old to say) stays until a validation clears it. A finding of a
        polled signal this agent does not run cannot be re-read here and is left to the operator.
        """
        restored = 0
        with self._lock:
            for finding in findings:
                if finding.source is not Source.AGENT or finding.action is Action.NONE:
                    continue
                self._known_to_intake.add(finding.key())
                if finding.signal_kind is SignalKind.POLLED:
                    if finding.signal not in polled_signals:
                        continue
                    self._current.setdefault(finding.signal, {}).setdefault(finding.key(), finding)
                else:
                    known = self._sticky.setdefault(finding.key(), finding)
                    if known is not finding:
                        continue
                restored += 1
        return restored

    def clear_events(self) -> None:
        """A successful reset, reboot or validation makes past events history."""
        with self._lock:
            self._sticky.clear()
            self._last_event.clear()
            self._known_to_intake.clear()

    def clean_signals(self) -> dict[str, datetime]:
        """Per polled signal, since when every complete poll of it found nothing wrong (absent: not clean now)."""
        with self._lock:
            return dict(self._clean_since)

    def take_outbox(self) -> list[Finding]:
        with self._lock:
            taken, self._outbox = self._outbox, []
            return taken

    def outbox_empty(self) -> bool:
        """Nothing waits for intake (every finding reported so far was accepted)."""
        with self._lock:
            return not self._outbox

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

    def condition(self, healths: list[SignalHealth], *, starting: bool = False) -> NodeCondition:
        """The node's ``GPUHealthy`` condition from what is active and what could be read.

        ``starting``: the agent has not yet finished its first complete look at the node (every detector
        polled, the kernel log read up to now, the previous agent's findings restored). A fault already
        known is still ``False``; otherwise the answer is ``Unknown``, never ``True``.
        """
        bad = [f for f in self.active() if f.action is not Action.NONE]
        if bad:
            worst = strongest([f.action for f in bad])
            lead = next(f for f in bad if f.action is worst)
            codes = ", ".join(sorted({f.code for f in bad}))
            return NodeCondition(
                CONDITION_GPU_HEALTHY, "False", condition_reason(lead.code), f"{codes}: {lead.message}"[:1000]
            )
        if starting:
            message = "the agent started and has not finished its first complete poll of every signal"
            return NodeCondition(CONDITION_GPU_HEALTHY, "Unknown", STARTING_REASON, message)
        unreadable = [h for h in healths if h.state is not SignalState.OK]
        if healths and len(unreadable) == len(healths):
            reason = "NoGpuDriver" if any("driver" in h.message.lower() for h in unreadable) else "SignalsUnreadable"
            message = "; ".join(f"{h.detector}: {h.message}" for h in unreadable)
            return NodeCondition(CONDITION_GPU_HEALTHY, "Unknown", reason, message[:1000])
        return NodeCondition(CONDITION_GPU_HEALTHY, "True", "GPUsHealthy", "all GPU health signals are clean")


def _stamp(finding: Finding, signal: str, kind: SignalKind) -> None:
    """Name the signal that raised ``finding`` unless its detector already did."""
    if not finding.signal and signal:
        finding.signal = signal
    if finding.signal_kind is None:
        finding.signal_kind = kind


def condition_reason(code: str) -> str:
    """``xid-79`` → ``Xid79``, ``row-remap-failure`` → ``RowRemapFailure`` (Kubernetes reasons are CamelCase)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", code) if part)
