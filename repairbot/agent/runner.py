"""The agent's main loop: run detectors, tell intake, keep the node's GPUHealthy condition.

Pushed signals (NVML Xid events, the kernel log) each get a thread of their
own, so a fatal Xid reaches intake within milliseconds; polled signals run
every ``interval``. The agent never cordons or drains — it only reports
(DESIGN.md: detection apart from remediation).

Start-up, because a DaemonSet rollout restarts every agent and none of them
may call a faulty node healthy: the agent first takes back what the last one
knew (``recover``: the findings on the node's active GPURepair, the kernel-log
cursor), then starts its event sources from that cursor, then polls. Until the
first complete poll after all of that (every detector polled, the kernel log
read up to now) ``GPUHealthy`` is ``Unknown`` (``AgentStarting``), never
``True``. After every poll the agent publishes since when each polled signal
has been clean (``signals``), the only evidence on which the operator clears a
finding.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from repairbot.agent.metrics import AgentMetrics
from repairbot.agent.recovery import CursorFile, Recovery, kmsg_mark
from repairbot.agent.tracker import FindingTracker
from repairbot.bounds import bound_finding, cap_findings
from repairbot.detectors.base import (
    Detector,
    DetectorReport,
    EventSource,
    ResumableSource,
    SignalHealth,
    SignalState,
)
from repairbot.detectors.bursts import BurstBoundary
from repairbot.kube.client import is_too_large
from repairbot.kube.intake import IntakeTooLarge
from repairbot.kube.nodes import NodeCondition
from repairbot.model import OCCURRENCES_MAX, Finding, format_time

log = logging.getLogger(__name__)

CATCH_UP_WAIT_S = 2.0  # at start, how long the first poll waits for the kernel log to be read up to now


def compact_outbox(pending: list[Finding]) -> list[Finding]:
    """Findings waiting for intake, repeats merged and capped as intake would: bounded however long intake is away.

    A corroboration (``count`` 0) of a finding still waiting here is folded into it; one of a finding intake
    already has waits on after the findings (at most :data:`OCCURRENCES_MAX` a finding, newest kept), for
    intake to name the job of the occurrence it holds. No sighting is ever merged into a corroboration.
    """
    by_key: dict[tuple[str, str], Finding] = {}
    later: dict[tuple[str, str], list[Finding]] = {}
    for finding in pending:
        key = finding.key()
        known = by_key.get(key)
        if finding.is_corroboration:
            if known is None or not known.corroborate(finding):
                later.setdefault(key, []).append(bound_finding(finding))
        elif known is None:
            by_key[key] = bound_finding(finding)
        else:
            known.merge(finding)
    return cap_findings(list(by_key.values())) + [f for waiting in later.values() for f in waiting[-OCCURRENCES_MAX:]]


class FindingSink(Protocol):
    """Where findings go: intake in production, anything in a test."""

    def report(self, node: str, findings: list[Finding]) -> None: ...


class ConditionSink(Protocol):
    def set_condition(self, node: str, condition: NodeCondition) -> None: ...


class SignalSink(Protocol):
    """Where the per-signal clean-since evidence goes (the node's active GPURepairs in production)."""

    def publish(self, node: str, clean: Mapping[str, datetime]) -> None: ...


@dataclass(slots=True)
class AgentReport:
    """One full look at the node: what ``repairbot agent --once --json`` prints."""

    node: str
    at: datetime
    reports: list[DetectorReport]
    condition: NodeCondition
    active: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "at": format_time(self.at),
            "condition": {
                "type": self.condition.type,
                "status": self.condition.status,
                "reason": self.condition.reason,
                "message": self.condition.message,
            },
            "findings": [f.to_dict() for f in self.active],
            "signals": [
                {
                    "detector": r.detector,
                    "state": r.health.state.value if r.health else SignalState.OK.value,
                    "message": r.health.message if r.health else "",
                    "findings": [f.to_dict() for f in r.findings],
                    "observations": r.observations,
                }
                for r in self.reports
            ],
        }


@dataclass
class NodeAgent:
    node: str
    detectors: Sequence[Detector]
    event_sources: Sequence[EventSource] = ()
    sink: FindingSink | None = None
    conditions: ConditionSink | None = None
    interval: float = 10.0
    metrics: AgentMetrics = field(default_factory=AgentMetrics)
    tracker: FindingTracker = field(default_factory=FindingTracker)
    bursts: BurstBoundary = field(default_factory=BurstBoundary)  # shared with the event sources' debouncers
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _last_condition: NodeCondition | None = None
    _flush_lock: threading.Lock = field(default_factory=threading.Lock)
    # Coalescing: a send to intake waits until ``send_spacing`` seconds after the previous one began, so a
    # burst's first finding is sent at once (MTTA unchanged) and the rest, arriving while it is in flight or
    # just after, go as one report (one write) instead of one each. 0: every flush sends (tests, ``--once``).
    send_spacing: float = 0.0
    # How a held-back flush is run later: (delay, call). Default a timer thread; a benchmark hands a shared pool.
    schedule: Callable[[float, Callable[[], None]], None] | None = None
    _last_send: float = -1e9
    _flush_due: bool = False
    polls: int = 0  # complete poll cycles since this agent started
    # What a previous agent on this node knew (None: nothing to take back, e.g. ``agent --once``).
    recover: Callable[[], Recovery] | None = None
    signals: SignalSink | None = None
    cursor: CursorFile | None = None  # the kernel-log cursor on the host, beside the repairs' marks
    # Kernel-log records whose finding corroborated one already sent (NVML told first): the cursor passes
    # them once nothing waits for intake, or a restart would report the line as a new fault.
    _held_marks: list[tuple[str, int]] = field(default_factory=list)
    _recovered: bool = False
    _ready: bool = False
    # Set once the previous agent's findings are back: the executor acts only after that, or a validation
    # could clear the events and then see them restored and fail.
    recovered_event: threading.Event = field(default_factory=threading.Event)

    @property
    def ready(self) -> bool:
        """The first complete look at the node since start is done; only now can the node be called healthy."""
        return self._ready

    def poll_once(self) -> AgentReport:
        """Poll every detector once, hand new findings to intake, refresh the node condition."""
        started = time.perf_counter()
        at = datetime.now(UTC)  # a clean poll is evidence from when it began, not when it ended
        caught_up = self._recovered and all(
            source.caught_up for source in self.event_sources if isinstance(source, ResumableSource)
        )
        reports = [self._poll(detector) for detector in self.detectors]
        for report in reports:
            complete = report.health is None or report.health.state is SignalState.OK
            for fresh in self.tracker.observe_poll(report.detector, report.findings, complete=complete, at=at):
                self.metrics.findings.labels(fresh.code, fresh.action.value).inc()
        self.flush()
        self._ready = self._ready or caught_up
        healths = [r.health for r in reports if r.health is not None]
        condition = self.tracker.condition(healths, starting=not self._ready)
        self._publish_condition(condition)
        self._publish_signals()
        self.metrics.poll_duration.observe(time.perf_counter() - started)
        self.metrics.mark_poll(time.time())
        self.polls += 1
        return AgentReport(self.node, datetime.now(UTC), reports, condition, self.tracker.active())

    def repaired(self) -> None:
        """A reset, reboot or validation this node's executor performed succeeded: past events are history,
        and the next line of any code is a new fault (every burst ends)."""
        self.tracker.clear_events()
        self.bursts.repaired()

    def on_event(self, finding: Finding, origin: str = "") -> None:
        """A pushed finding: record it and tell intake at once, not at the next poll."""
        if not self.tracker.observe_event(finding, origin):
            self._hold_mark(finding)
            return
        self.metrics.findings.labels(finding.code, finding.action.value).inc()
        self.flush()
        self._publish_condition(self.tracker.condition([], starting=not self._ready))

    def flush(self) -> None:
        """Send queued findings to intake; on failure keep them for the next cycle."""
        if self.sink is None:
            self.tracker.take_outbox()
            return
        with self._flush_lock:
            if self._hold_back():
                return
            pending = self.tracker.take_outbox()
            if not pending:
                self._advance_cursor([])
                return
            self._last_send = time.monotonic()
            try:
                self.sink.report(self.node, pending)
            except Exception as error:
                if isinstance(error, IntakeTooLarge) or is_too_large(error):
                    # Refused for its size even after intake shrank it: the same batch can only fail
                    # again, and re-sending it forever would starve every later finding. Drop it, loudly.
                    self.metrics.intake_dropped.inc(len(pending))
                    log.error("intake refused findings as too large node=%s findings=%d codes=%s dropped error=%s",
                              self.node, len(pending), ",".join(sorted({f.code for f in pending})), error)  # fmt: skip
                    return
                # recorded and retried: never lose a finding; repeats merge so the outbox stays bounded
                self.metrics.intake_errors.inc()
                self.tracker.requeue(compact_outbox(pending))
                log.warning("intake failed node=%s findings=%d error=%s", self.node, len(pending), error)
                return
            self._advance_cursor(pending)  # intake has them: a restarted agent must not report these lines again

    def _hold_back(self) -> bool:
        """Whether this flush waits (under the flush lock): a send began less than ``send_spacing`` ago.

        The queued findings stay in the outbox (bounded, merged by the tracker) and one flush is scheduled
        for when the spacing is over, so nothing waits longer than ``send_spacing`` and nothing is lost.
        """
        if self.send_spacing <= 0 or self.tracker.outbox_empty():
            return False
        wait = self._last_send + self.send_spacing - time.monotonic()
        if wait <= 0:
            return False
        if not self._flush_due:
            self._flush_due = True
            (self.schedule or _timer)(wait, self._due_flush)
        return True

    def _due_flush(self) -> None:
        with self._flush_lock:
            self._flush_due = False
        self.flush()

    def _hold_mark(self, finding: Finding) -> None:
        """A kernel-log line that only corroborated a finding intake heard of: its record is dealt with too.

        Flushed at once either way: a corroboration that names the job may be waiting for intake.
        """
        mark = kmsg_mark(finding)
        held = False
        if mark is not None and self.cursor is not None:
            with self._flush_lock:
                self._held_marks.append(mark)
            held = True
        if held or not self.tracker.outbox_empty():
            self.flush()

    def _advance_cursor(self, accepted: list[Finding]) -> None:
        """Move the kernel-log cursor past what intake accepted and the held corroborations (under the flush lock).

        Held marks move only when nothing waits for intake, so a line is never passed while the finding it
        corroborated may still be lost.
        """
        if self.cursor is None:
            return
        marks = [mark for mark in map(kmsg_mark, accepted) if mark is not None]
        if self.tracker.outbox_empty():
            marks.extend(self._held_marks)
            self._held_marks.clear()
        if marks:
            self.cursor.advance(marks)

    def start(self) -> None:
        """Run the poll loop (and, once recovered, the event sources) in daemon threads until :meth:`stop`."""
        self._stop.clear()
        if self.recover is None:
            self._recovered = True
            self.recovered_event.set()
            self._start_sources()
        poller = threading.Thread(target=self._poll_loop, name=f"agent-{self.node}-poll", daemon=True)
        poller.start()
        self._threads.append(poller)

    def recover_once(self) -> bool:
        """Take back the previous agent's findings and kernel-log cursor; False if the API did not answer.

        Until this succeeds the event sources do not start: the kernel log is read from the cursor (so a
        line written while no agent ran is still reported, and one already reported is not), and NVML
        events of the gap are lost with the old process anyway, as on a real node.
        """
        if self._recovered:
            return True
        try:
            recovery = self.recover() if self.recover is not None else Recovery()
        except Exception as error:  # retried every interval; meanwhile the node is Unknown, never healthy
            log.warning("recovery failed node=%s error=%s; retrying", self.node, error)
            return False
        restored = self.tracker.restore(recovery.findings, {d.name for d in self.detectors})
        marks = list(recovery.marks) + (self.cursor.load() if self.cursor is not None else [])
        for source in self.event_sources:
            if isinstance(source, ResumableSource):
                source.resume_after(marks)
        self._recovered = True
        self.recovered_event.set()
        log.info("agent recovered node=%s findings=%d kmsg_marks=%d", self.node, restored, len(marks))
        return True

    def _start_sources(self) -> None:
        for source in self.event_sources:
            thread = threading.Thread(
                target=self._consume, args=(source,), name=f"agent-{self.node}-{source.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        """Ask every thread to finish; :meth:`join` waits for them (split so many agents stop in parallel)."""
        self._stop.set()

    def join(self, timeout: float = 5.0) -> None:
        for thread in list(self._threads):
            thread.join(timeout)
        self._threads.clear()

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        self.join(timeout)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            if not self._recovered:
                if self.recover_once():
                    self._start_sources()
                    self._await_catch_up(min(self.interval, CATCH_UP_WAIT_S))
                # What is known so far: the restored faults (False), else Unknown — never True yet.
                self._publish_condition(self.tracker.condition([], starting=True))
            try:
                self.poll_once()
            except Exception:
                log.exception("poll cycle failed node=%s", self.node)
            self._stop.wait(self.interval)

    def _await_catch_up(self, timeout: float) -> None:
        """Give the kernel log a moment to be read up to now, so the first poll can already say True.

        Bounded: a slow log only delays ``True`` to a later poll, it never blocks the polls.
        """
        deadline = time.monotonic() + timeout
        resumable = [s for s in self.event_sources if isinstance(s, ResumableSource)]
        while not all(s.caught_up for s in resumable) and time.monotonic() < deadline:
            if self._stop.wait(0.02):
                return

    def _consume(self, source: EventSource) -> None:
        while not self._stop.is_set():
            try:
                for finding in source.events(self._stop):
                    self.on_event(finding, source.name)
            except Exception:
                self.metrics.detector_errors.labels(source.name).inc()
                log.exception("event source failed node=%s source=%s; restarting in 1s", self.node, source.name)
                self._stop.wait(1.0)

    def _poll(self, detector: Detector) -> DetectorReport:
        try:
            report = detector.poll()
        except Exception as error:  # a detector bug must not stop the others
            log.exception("detector failed node=%s detector=%s", self.node, detector.name)
            report = DetectorReport(
                detector.name, health=SignalHealth(detector.name, SignalState.ERROR, f"{type(error).__name__}: {error}")
            )
        readable = report.health is None or report.health.state is SignalState.OK
        self.metrics.signal_readable.labels(report.detector).set(1 if readable else 0)
        if not readable:
            self.metrics.detector_errors.labels(report.detector).inc()
        return report

    def _publish_signals(self) -> None:
        if self.signals is None or not self._recovered:
            return
        try:
            self.signals.publish(self.node, self.tracker.clean_signals())
        except Exception as error:  # the next poll publishes again
            log.warning("signal evidence not published node=%s error=%s", self.node, error)

    def _publish_condition(self, condition: NodeCondition) -> None:
        if self.conditions is None or condition == self._last_condition:
            return
        try:
            self.conditions.set_condition(self.node, condition)
            self._last_condition = condition
        except Exception as error:
            log.warning("condition update failed node=%s error=%s", self.node, error)


def _timer(delay: float, call: Callable[[], None]) -> None:
    """Run ``call`` once after ``delay`` seconds in a daemon timer thread (one per held-back agent at most)."""
    timer = threading.Timer(delay, call)
    timer.daemon = True
    timer.start()
