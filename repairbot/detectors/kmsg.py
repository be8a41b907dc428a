"""The kernel-log detector: tails ``/dev/kmsg`` (or a file) and yields Xid findings.

Parsing lives in :mod:`repairbot.detectors.kernel_log` and burst folding in
:mod:`repairbot.detectors.bursts`; this module is the I/O edge, re-exporting
their public names so ``repairbot.detectors.kmsg`` is the one import a caller needs.

Why the two reading modes: ``/dev/kmsg`` is a character device where every
``read()`` returns exactly one record and an empty ring blocks, so it is
opened non-blocking and polled. The sandbox and the tests write a regular file
instead, which is followed like ``tail -f`` (partial lines held back,
truncation and replacement noticed).

Where to start reading: an agent that restarts (a DaemonSet rollout) must
neither skip the Xids written while it was down nor report again the ones it
already reported, or a repair would lose its evidence or a healed node be
repaired twice. Every ``/dev/kmsg`` record carries the boot's sequence number,
and every finding keeps it (and the boot id) as evidence; the agent hands the
detector the highest (boot, sequence) intake has accepted —
:meth:`KmsgDetector.resume_after` — and the detector reads the ring from its
start, feeding every record to the parser (which learns GPU names from
preface lines) but reporting only records after that cursor. A cursor of
another boot means nothing: the log of this boot is all new. Without
``resume_after`` (``repairbot kmsg``, a tool run) the detector starts at the
end, or with ``replay`` at the start.

The first start without a cursor: on a DaemonSet upgrade from a release that
kept no cursor, a fresh install or a lost state dir, nothing says which of
this boot's records were reported before — and a node up for weeks may hold
Xids in its ring that an earlier agent reported and a GPU reset repaired long
ago. Reporting them all would open a fleet-wide wave of repeat repairs. So
when resuming without a mark for the current boot, a record logged more than
``first_start_lookback`` seconds before the agent started is fed to the parser
but yields no finding; its age comes from the record's ``usec`` (time since
boot) against the node's ``uptime`` (``/proc/uptime``, the same clock). A
record without a ``usec`` (other framings), or an unreadable uptime, is
judged new: the look-back may only hold old news back, never hide a fault of now.

An unreadable log (missing, no permission) is not a broken GPU: it yields no
finding and sets :attr:`KmsgDetector.health` to ``unknown``; the detector keeps
retrying until stopped and never raises.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from repairbot.catalog.sxid import SxidCatalog
from repairbot.catalog.xid import XidCatalog
from repairbot.detectors.base import SignalHealth, SignalState
from repairbot.detectors.bursts import BurstBoundary, Debouncer
from repairbot.detectors.kernel_log import (
    GPU_LOST_CODE,
    KernelEvent,
    KmsgParser,
    normalize_pci,
    parse_line,
    record_sequence,
    split_record,
)
from repairbot.model import EVIDENCE_KMSG_BOOT, EVIDENCE_KMSG_SEQ, Finding, GpuRef, SignalKind, Source

__all__ = [
    "GPU_LOST_CODE",
    "Debouncer",
    "KernelEvent",
    "KmsgDetector",
    "KmsgParser",
    "normalize_pci",
    "parse_line",
    "split_record",
]

log = logging.getLogger(__name__)

DEFAULT_PATH = "/dev/kmsg"
_READ_SIZE = 8192  # a kmsg record is at most ~1 KiB; one read returns one record
_MAX_RAW_EVIDENCE = 2000
DEFAULT_FIRST_START_LOOKBACK_S = 600.0


class _LogReader:
    """One open kernel log: hands out complete lines without ever blocking."""

    def __init__(self, path: str, fd: int, *, replay: bool) -> None:
        self.path = path
        self.fd = fd
        info = os.fstat(fd)
        self.is_device = stat.S_ISCHR(info.st_mode)
        self.inode = info.st_ino
        self._partial = b""
        if not replay:
            os.lseek(fd, 0, os.SEEK_END)

    def read_lines(self) -> list[str]:
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break  # /dev/kmsg: nothing new
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # /dev/kmsg overwrote records we had not read; carry on with the next
                raise
            if not chunk:
                break  # regular file: at the end for now
            chunks.append(chunk if not self.is_device or chunk.endswith(b"\n") else chunk + b"\n")
        data = self._partial + b"".join(chunks)
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in complete]

    def replaced(self) -> bool:
        """A regular file that was truncated or swapped for a new one (log rotation, sandbox reset)."""
        if self.is_device:
            return False
        try:
            current = os.stat(self.path)
        except OSError:
            return True
        return current.st_ino != self.inode or current.st_size < os.lseek(self.fd, 0, os.SEEK_CUR)

    def close(self) -> None:
        os.close(self.fd)


class KmsgDetector:
    """:class:`~repairbot.detectors.base.EventSource` over the kernel log."""

    name = "kmsg"

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        *,
        replay: bool = False,
        catalog: XidCatalog | None = None,
        sxid_catalog: SxidCatalog | None = None,
        pci_to_index: Callable[[str], int | None] | None = None,
        window_s: float = 180.0,
        report_interval_s: float = 60.0,
        poll_interval_s: float = 0.2,
        reopen_interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        opener: Callable[[str, int], int] = os.open,
        boot_id: Callable[[], str] | None = None,
        uptime: Callable[[], float] | None = None,
        first_start_lookback: float = DEFAULT_FIRST_START_LOOKBACK_S,
        bursts: BurstBoundary | None = None,
    ) -> None:
        """``uptime``: seconds since boot in the timebase of a record's ``usec`` (None: every record is new);
        ``first_start_lookback``: how far back a first start without a cursor reports (see the module doc);
        ``bursts``: the agent's boundary, so a repair ends every burst of this log."""
        if first_start_lookback < 0:
            raise ValueError(f"first_start_lookback must be >= 0 seconds, got {first_start_lookback}")
        self.path = str(path)
        self.replay = replay
        self.catalog = catalog
        self.sxid_catalog = sxid_catalog
        self.pci_to_index = pci_to_index
        self.window_s = window_s
        self.report_interval_s = report_interval_s
        self.poll_interval_s = min(poll_interval_s, 1.0)
        self.reopen_interval_s = reopen_interval_s
        self.clock = clock
        self._opener = opener
        self._boot_id = boot_id or (lambda: "")
        self._uptime = uptime
        self.first_start_lookback = first_start_lookback
        self.bursts = bursts
        self.health = SignalHealth(self.name, SignalState.UNKNOWN, f"{self.path}: not read yet")
        # boot id → the highest record sequence already dealt with (reported before, or read by this detector)
        self._cursor: dict[str, int] = {}
        self._resuming = False
        self._boot = ""
        # A first start without a cursor for this boot: records logged before this uptime (seconds) are old news.
        self._report_from_s: float | None = None
        self._first_start_decided = False
        # The node's uptime when the agent started (built this detector): the look-back counts from there, so
        # an agent that waited long for the API or for a readable log still reports what it waited through.
        self._started_s: float | None = self._read_uptime()
        self.skipped_before_first_start = 0
        self.caught_up = False  # the log as it stood when opened has been read (or cannot be)

    def resume_after(self, marks: Iterable[tuple[str, int]]) -> None:
        """Read from the start of the log, reporting only records after the highest ``(boot id, seq)`` mark.

        Call before :meth:`events`; marks of other boots are kept but apply to nothing this boot logs.
        """
        self._resuming = True
        for boot, seq in marks:
            self._cursor[boot] = max(seq, self._cursor.get(boot, -1))

    def events(self, stop: threading.Event) -> Iterator[Finding]:
        """Yield findings until ``stop`` is set: a burst's first line at once, its repeats as counted deltas."""
        parser = KmsgParser(catalog=self.catalog, sxid_catalog=self.sxid_catalog)
        debouncer = Debouncer(
            window_s=self.window_s, report_interval_s=self.report_interval_s, clock=self.clock, boundary=self.bursts
        )
        replay = self.replay or self._resuming
        if self._resuming and self._started_s is None:
            self._started_s = self._read_uptime()  # unreadable when built: the source's start is the next best
        while not stop.is_set():
            reader = self._open(replay=replay)
            if reader is None:
                self.caught_up = True  # nothing to catch up on; ``health`` says why
                stop.wait(self.reopen_interval_s)
                continue
            replay = True  # a file that reappears is new: read it from its start
            try:
                yield from self._follow(reader, parser, debouncer, stop)
            finally:
                reader.close()
        yield from debouncer.due_reports()

    def _follow(
        self, reader: _LogReader, parser: KmsgParser, debouncer: Debouncer, stop: threading.Event
    ) -> Iterator[Finding]:
        last_check = time.monotonic()
        while not stop.is_set():
            try:
                lines = reader.read_lines()
            except OSError as exc:
                self._unreadable(exc)
                return
            for line in lines:
                finding = self._finding_for(parser, line)
                if finding is not None:
                    emitted = debouncer.observe(finding)
                    if emitted is not None:
                        yield emitted
            self._note_caught_up()  # the first read took the whole log as it stood at start
            self.caught_up = True
            yield from debouncer.due_reports()
            if not lines:
                if time.monotonic() - last_check >= self.reopen_interval_s:
                    last_check = time.monotonic()
                    if reader.replaced():
                        return
                stop.wait(self.poll_interval_s)

    def _open(self, *, replay: bool) -> _LogReader | None:
        try:
            fd = self._opener(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            self._unreadable(exc)
            return None
        try:
            reader = _LogReader(self.path, fd, replay=replay)
        except OSError as exc:
            os.close(fd)
            self._unreadable(exc)
            return None
        self._boot = self._current_boot()
        # Only this boot's cursor can ever apply again (sequence numbers restart at every boot): keep just it.
        self._cursor = {self._boot: self._cursor[self._boot]} if self._boot in self._cursor else {}
        if self._resuming and not self._first_start_decided:
            self._first_start_decided = True
            if self._boot not in self._cursor:
                self._report_from_s = self._first_start_horizon()
        self.health = SignalHealth(self.name, SignalState.OK, f"following {self.path}")
        return reader

    def _first_start_horizon(self) -> float | None:
        """The uptime before which this first start's records are old news; None: report them all."""
        started = self._started_s if self._started_s is not None else self._read_uptime()
        return None if started is None else started - self.first_start_lookback

    def _read_uptime(self) -> float | None:
        if self._uptime is None:
            return None
        try:
            return float(self._uptime())
        except (OSError, ValueError) as exc:  # no uptime: no age, so every record counts as new
            log.warning("detector=kmsg event=uptime_unreadable error=%s", exc)
            return None

    def _note_caught_up(self) -> None:
        """Once the ring as it stood at start is read: say how much the first-start look-back held back."""
        if self._report_from_s is not None:
            log.info(
                "detector=kmsg event=first_start_lookback skipped=%d lookback_s=%g reason=%r",
                self.skipped_before_first_start,
                self.first_start_lookback,
                "before this agent's first start, older than the look-back",
            )
            self._report_from_s = None  # everything logged from now on is news

    def _current_boot(self) -> str:
        try:
            return self._boot_id()
        except OSError as exc:  # no boot id: sequence numbers still order this reader's records
            log.warning("detector=kmsg event=boot_id_unreadable error=%s", exc)
            return ""

    def _unreadable(self, exc: OSError) -> None:
        why = "permission denied (needs root or CAP_SYSLOG)" if isinstance(exc, PermissionError) else exc.strerror
        message = f"{self.path}: {why or exc}"
        if self.health.state is not SignalState.UNKNOWN or self.health.message != message:
            log.warning("detector=kmsg event=unreadable path=%s reason=%r", self.path, why)
        self.health = SignalHealth(self.name, SignalState.UNKNOWN, message)

    def _finding_for(self, parser: KmsgParser, line: str) -> Finding | None:
        """The finding a line completes, unless its record was dealt with before (see :meth:`resume_after`)."""
        try:
            event = parser.feed(line)
            seq = record_sequence(line)
            if seq is not None:
                done = self._cursor.get(self._boot, -1)
                self._cursor[self._boot] = max(seq, done)
                if seq <= done:
                    return None  # the parser still learned from it (GPU names); its finding was reported before
            if event is None:
                return None
            if self._report_from_s is not None and seq is not None:  # only /dev/kmsg framing carries a usec
                logged_s = split_record(line)[1]
                if logged_s is not None and logged_s < self._report_from_s:
                    self.skipped_before_first_start += 1
                    return None  # logged long before this first start: an earlier agent dealt with it
            finding = self.finding_from_event(event)
            if seq is not None:
                finding.evidence.update({EVIDENCE_KMSG_SEQ: str(seq), EVIDENCE_KMSG_BOOT: self._boot})
            return finding
        except Exception:  # one odd line must never stop the kernel-log watch
            log.exception("detector=kmsg event=parse_failed line=%r", line[:200])
            return None

    def finding_from_event(self, event: KernelEvent) -> Finding:
        """A :class:`KernelEvent` as intake's :class:`Finding`, the raw line kept as evidence."""
        if event.kind == "sxid":
            gpu = GpuRef()  # a switch fault concerns the node, not one GPU
            message = f"SXid {event.code} {event.mnemonic} on {event.device} ({event.pci}): {event.message}"
        elif event.kind == GPU_LOST_CODE:
            gpu = GpuRef(index=self._index(event.pci), uuid=event.uuid, pci=event.pci, serial=event.serial)
            message = f"GPU {event.pci or '(address unknown)'} has fallen off the bus"
        else:
            gpu = GpuRef(
                index=self._index(event.pci),
                uuid=event.uuid,
                pci=event.pci,
                gpu_instance=event.gpu_instance,
                compute_instance=event.compute_instance,
                serial=event.serial,
            )
            message = f"Xid {event.code} {event.mnemonic} on {event.pci}: {event.message}".rstrip(": ")
        evidence = {
            "raw": event.raw[:_MAX_RAW_EVIDENCE],
            "mnemonic": event.mnemonic,
            "reason": event.reason,
            "ladder": ",".join(rung.value for rung in event.ladder),
            "application_class": str(event.application_class).lower(),
        }
        optional = {
            "pid": event.pid,
            "process": event.process_name,
            "pci": event.pci,
            "serial": event.serial,
            "nvswitch": event.device,
            "kernel_time_s": event.kernel_time_s,
            "fatal": None if event.fatal is None else str(event.fatal).lower(),
        }
        evidence.update({k: str(v) for k, v in optional.items() if v is not None})
        evidence.update(event.details)
        return Finding(
            code=event.finding_code,
            message=message,
            action=event.action,
            severity=event.severity,
            gpu=gpu,
            xid=event.code if event.kind == "xid" else None,
            source=Source.AGENT,
            evidence=evidence,
            signal=self.name,
            signal_kind=SignalKind.EVENT,
        )

    def _index(self, pci: str | None) -> int | None:
        if pci is None or self.pci_to_index is None:
            return None
        try:
            return self.pci_to_index(pci)
        except Exception:  # the NVML side may be down; the PCI address still names the GPU
            log.debug("detector=kmsg event=pci_to_index_failed pci=%s", pci, exc_info=True)
            return None
