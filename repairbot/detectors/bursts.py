"""Burst folding: fifty identical Xid lines are one fault, not fifty.

A failing GPU repeats itself (per channel, per link, per retry). NVIDIA's
Fleet Intelligence groups lines into a burst until three minutes of silence
(REFERENCE §1.1); we do the same per GPU and finding code, so intake sees one
finding whose ``count`` grows and whose ``first_seen`` stays the first line's.

The debouncer is pure: time comes from an injected clock (epoch seconds), so
tests replay a burst in microseconds.

Contract with the consumer: :meth:`Debouncer.observe` returns the finding to
emit *now* only for the first line of a burst (so a fatal Xid is acted on at
once); repeats are counted silently and handed out by :meth:`Debouncer.due_reports`
as *delta* findings (``count`` = repeats since the last report, ``first_seen`` =
the burst's), which :meth:`repairbot.model.Finding.merge` adds up exactly.

A repair ends every burst (:class:`BurstBoundary`): the same Xid a minute after
a GPU reset is a new fault on a repaired GPU, reported at once, not a silent
repeat handed out as a delta up to a minute later; and repeats logged before the
repair belonged to the fault it cured, so they are dropped rather than
reported afterwards as if the GPU were failing again.

Each line stays an occurrence of its own (its time, its job, its kernel-log
record) in the aggregate's ``occurrences``, and a delta carries the ones it
reports, so an escalation rule that counts distinct jobs still sees every job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from repairbot.model import OCCURRENCES_MAX, Finding

DEFAULT_WINDOW_S = 180.0
DEFAULT_REPORT_INTERVAL_S = 60.0


class BurstBoundary:
    """Where the agent says "a repair just succeeded", to every debouncer of its node at once.

    Shared by the node's event sources (NVML events and the kernel log run in their own threads),
    so it only counts: each debouncer compares the count with the one it last saw.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repairs = 0

    def repaired(self) -> None:
        with self._lock:
            self._repairs += 1

    @property
    def repairs(self) -> int:
        with self._lock:
            return self._repairs


@dataclass(slots=True)
class _Burst:
    finding: Finding  # the running aggregate: count = every line so far
    last_at: float
    reported_count: int
    last_report_at: float


class Debouncer:
    """Folds repeats of (finding code, GPU) within ``window_s`` of silence into one finding."""

    def __init__(
        self,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        report_interval_s: float = DEFAULT_REPORT_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        boundary: BurstBoundary | None = None,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"burst window must be positive, got {window_s}")
        self.window_s = window_s
        self.report_interval_s = report_interval_s
        self._clock = clock
        self._bursts: dict[tuple[str, str], _Burst] = {}
        self._ended_unreported: list[Finding] = []
        self._boundary = boundary
        self._repairs_seen = boundary.repairs if boundary else 0

    def _after_a_repair(self) -> None:
        """Forget every burst (and its unreported repeats) once the node was repaired since the last look."""
        if self._boundary is None:
            return
        repairs = self._boundary.repairs
        if repairs != self._repairs_seen:
            self._repairs_seen = repairs
            self._bursts.clear()
            self._ended_unreported.clear()

    def observe(self, finding: Finding) -> Finding | None:
        """Fold one occurrence in. Returns the finding to emit now (a new burst), else None."""
        self._after_a_repair()
        now = self._clock()
        at = datetime.fromtimestamp(now, UTC)
        key = finding.key()
        burst = self._bursts.get(key)
        if burst is not None and now - burst.last_at <= self.window_s:
            seen = (*burst.finding.sightings(), *(replace(o, at=at) for o in finding.sightings()))
            burst.finding.occurrences = seen[-OCCURRENCES_MAX:]
            burst.finding.count += finding.count
            burst.finding.last_seen = at
            burst.finding.evidence.update(finding.evidence)
            if finding.action.severity > burst.finding.action.severity:
                burst.finding.action = finding.action
            burst.last_at = now
            return None
        if burst is not None:  # the old burst ended; keep its unreported repeats for due_reports
            self._ended_unreported.extend(self._take_delta(burst, now))
        aggregate = replace(finding, first_seen=at, last_seen=at, evidence=dict(finding.evidence))
        self._bursts[key] = _Burst(aggregate, last_at=now, reported_count=aggregate.count, last_report_at=now)
        return replace(aggregate, evidence=dict(aggregate.evidence))

    def due_reports(self) -> list[Finding]:
        """Delta findings for bursts that grew and are due (interval passed or burst ended); forgets ended bursts."""
        self._after_a_repair()
        now = self._clock()
        reports, self._ended_unreported = self._ended_unreported, []
        for key, burst in list(self._bursts.items()):
            ended = now - burst.last_at > self.window_s
            if ended or now - burst.last_report_at >= self.report_interval_s:
                reports.extend(self._take_delta(burst, now))
            if ended:
                del self._bursts[key]
        return reports

    @staticmethod
    def _take_delta(burst: _Burst, now: float) -> list[Finding]:
        unreported = burst.finding.count - burst.reported_count
        if unreported <= 0:
            return []
        burst.reported_count = burst.finding.count
        burst.last_report_at = now
        delta = replace(burst.finding, count=unreported, evidence=dict(burst.finding.evidence))
        delta.occurrences = burst.finding.occurrences[-unreported:]  # the lines this delta reports
        return [delta]

    def bursts(self) -> list[Finding]:
        """The running aggregates (one per open burst), for metrics and tests."""
        return [burst.finding for burst in self._bursts.values()]
