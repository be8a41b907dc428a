"""Kernel-log parsing, burst folding and the kmsg detector (REFERENCE §1.1 line shapes)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repairbot.detectors.base import EventSource, SignalState
from repairbot.detectors.bursts import BurstBoundary
from repairbot.detectors.kmsg import (
    Debouncer,
    KmsgDetector,
    KmsgParser,
    normalize_pci,
    parse_line,
    split_record,
)
from repairbot.model import Action, Finding, GpuRef, Severity

# (line, kind, code, pci, pid, process name, message)
SHAPES = [
    (
        "NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp Exception on "
        "(GPC 7, TPC 1, SM 0): Out Of Range Address",
        "xid",
        13,
        "0000:cb:00.0",
        None,
        None,
        "Graphics SM Warp Exception on (GPC 7, TPC 1, SM 0): Out Of Range Address",
    ),
    (
        "NVRM: Xid (PCI:0000:9b:00): 119, pid=2024380, name=nvidia-smi, Timeout after 6s of waiting for RPC "
        "response from GPU4 GSP! Expected function 76 (GSP_RM_CONTROL) (0x20802a02 0x8).",
        "xid",
        119,
        "0000:9b:00.0",
        2024380,
        "nvidia-smi",
        "Timeout after 6s of waiting for RPC response from GPU4 GSP! Expected function 76 (GSP_RM_CONTROL) "
        "(0x20802a02 0x8).",
    ),
    (
        "NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping, reset gpu to activate.",
        "xid",
        63,
        "0000:10:1c.0",
        1896,
        None,
        "Row Remapper: New row marked for remapping, reset gpu to activate.",
    ),
    (
        "NVRM: Xid (PCI:0000:2b:00): 79, GPU has fallen off the bus.",
        "xid",
        79,
        "0000:2b:00.0",
        None,
        None,
        "GPU has fallen off the bus.",
    ),
    (
        "NVRM: Xid (PCI:0000:00:00): 149, NETIR_LINK_EVT Fatal XC0 i0 Link 00 (0x025001c6 0x00000000 0x00000000)",
        "xid",
        149,
        "0000:00:00.0",
        None,
        None,
        "NETIR_LINK_EVT Fatal XC0 i0 Link 00 (0x025001c6 0x00000000 0x00000000)",
    ),
    (
        "NVRM: Xid (0000:03:00): 14, Channel 00000001",
        "xid",
        14,
        "0000:03:00.0",
        None,
        None,
        "Channel 00000001",
    ),
    (
        "NVRM: Xid (PCI:0000:04:00): 69, pid=34566, name=python3, BAR1 access failure at address 0xffff80001234abcd",
        "xid",
        69,
        "0000:04:00.0",
        34566,
        "python3",
        "BAR1 access failure at address 0xffff80001234abcd",
    ),
    (
        "NVRM: Xid (PCI:0000:04:00): 48",
        "xid",
        48,
        "0000:04:00.0",
        None,
        None,
        "",
    ),
    (
        "nvidia-nvswitch1: SXid (PCI:0000:06:00.0): 20034, Fatal, Link 48 LTSSM Fault Up",
        "sxid",
        20034,
        "0000:06:00.0",
        None,
        None,
        "Fatal, Link 48 LTSSM Fault Up",
    ),
    (
        "NVRM: GPU 0000:91:00.0: GPU has fallen off the bus.",
        "gpu-lost",
        None,
        "0000:91:00.0",
        None,
        None,
        "GPU has fallen off the bus",
    ),
]


@pytest.mark.parametrize(("line", "kind", "code", "pci", "pid", "name", "message"), SHAPES)
@pytest.mark.parametrize(
    "frame",
    [
        "{}",
        "[12345.678901] {}",
        "Nov 22 19:00:00 gpu-17 kernel: {}",
        "6,1234,12345678901,-;{}",
        "2024-11-22T19:00:00+0000 gpu-17 kernel: [  17.000001] {}",
    ],
)
def test_every_line_shape_in_every_framing(
    frame: str, line: str, kind: str, code: int | None, pci: str, pid: int | None, name: str | None, message: str
) -> None:
    event = parse_line(frame.format(line))
    assert event is not None
    assert (event.kind, event.code, event.pci, event.pid, event.process_name) == (kind, code, pci, pid, name)
    assert event.message == message
    assert event.raw == frame.format(line)


@pytest.mark.parametrize(
    ("text", "message", "kernel_time"),
    [
        ("6,1234,12345678901,-;NVRM: hi", "NVRM: hi", 12345.678901),
        ("4,7,5,c;a\\x0ab", "a\nb", 5e-6),
        ("[  123.000500] NVRM: hi", "NVRM: hi", 123.0005),
        ("[Fri Nov 22 19:00:00 2024] NVRM: hi", "NVRM: hi", None),
        ("Nov 22 19:00:00 host kernel: NVRM: hi", "NVRM: hi", None),
        ("Nov  2 19:00:00 host kernel: [ 9.5] NVRM: hi", "NVRM: hi", 9.5),
        ("NVRM: hi", "NVRM: hi", None),
    ],
)
def test_record_framing(text: str, message: str, kernel_time: float | None) -> None:
    assert split_record(text) == (message, kernel_time)


@pytest.mark.parametrize(
    ("line", "action", "severity"),
    [
        ("NVRM: Xid (PCI:0000:cb:00): 13, pid=1, name=x, oops", Action.NONE, Severity.WARNING),
        ("NVRM: Xid (PCI:0000:cb:00): 79, GPU has fallen off the bus.", Action.REBOOT, Severity.FATAL),
        (
            "NVRM: Xid (PCI:0000:cb:00): 149, NETIR_LINK_EVT Nonfatal XC0 i0 Link 00 (0x0)",
            Action.NOTIFY,
            Severity.WARNING,
        ),
        ("nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12020, Fatal, egress", Action.REBOOT, Severity.FATAL),
        ("nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 20001, Non-fatal, Link 3 TX replay", Action.NONE, Severity.INFO),
        (
            "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 31337, Fatal, never seen before",
            Action.NOTIFY,
            Severity.CRITICAL,
        ),
        ("nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 31337, Non-fatal, never seen before", Action.NONE, Severity.INFO),
    ],
)
def test_catalog_verdict_is_attached(line: str, action: Action, severity: Severity) -> None:
    event = parse_line(line)
    assert event is not None
    assert (event.action, event.severity) == (action, severity)


def test_sxid_fatality_and_switch() -> None:
    fatal = parse_line("nvidia-nvswitch3: SXid (PCI:0000:86:00.0): 20034, Fatal, Link 48 LTSSM Fault Up")
    nonfatal = parse_line("nvidia-nvswitch3: SXid (PCI:0000:86:00.0): 20009, Non-fatal, Link 32 RX Short")
    assert fatal is not None and nonfatal is not None
    assert (fatal.fatal, fatal.device, fatal.finding_code) == (True, "nvidia-nvswitch3", "sxid-20034")
    assert (nonfatal.fatal, nonfatal.action) == (False, Action.NOTIFY)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "hello world",
        " SUBSYSTEM=pci",
        " DEVICE=+pci:0000:cb:00.0",
        "NVRM: Xid error: xyz, invalid data",
        "NVRM: Xid (PCI:0000:66:00): abc, pid=2280636",
        "NVRM: GPU at PCI:0000:91:00: GPU-1f2e3d4c-aaaa-bbbb",
        "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.54.15",
    ],
)
def test_lines_that_are_not_events(line: str) -> None:
    assert parse_line(line) is None


def test_gpu_lost_uses_xid_79_ladder() -> None:
    event = parse_line("[5812.004410] NVRM: GPU 0000:05:00.0: GPU has fallen off the bus.")
    assert event is not None
    assert event.finding_code == "gpu-lost"
    assert event.ladder == (Action.REBOOT, Action.POWER_CYCLE, Action.QUARANTINE)


@pytest.mark.parametrize(
    "lines",
    [
        [
            "[ 1843.308145] NVRM: The NVIDIA GPU 0000:b3:00.0",
            "               NVRM: (PCI ID: 10de:26b5) installed in this system has",
            "               NVRM: fallen off the bus and is not responding to commands.",
        ],
        [
            "NVRM: The NVIDIA GPU 0000:05:00.0 (PCI ID: 10de:2f04)",
            "NVRM: fallen off the bus and is not responding to commands.",
        ],
        [
            "3,99,100,-;NVRM: The NVIDIA GPU 0000:b3:00.0\\x0aNVRM: (PCI ID: 10de:26b5) installed in this system "
            "has\\x0aNVRM: fallen off the bus and is not responding to commands."
        ],
    ],
)
def test_multi_line_fallen_off_the_bus(lines: list[str]) -> None:
    parser = KmsgParser()
    events = [event for event in map(parser.feed, lines) if event is not None]
    assert len(events) == 1
    assert events[0].kind == "gpu-lost"
    assert events[0].pci in ("0000:b3:00.0", "0000:05:00.0")
    assert events[0].action is Action.REBOOT


def test_preface_names_the_gpu_for_later_lines() -> None:
    parser = KmsgParser()
    assert parser.feed("[ 10.1] NVRM: GPU at PCI:0000:91:00: GPU-4e1d7a1c-2b3f-4c5d-8e9f-0a1b2c3d4e5f") is None
    assert parser.feed("[ 10.1] NVRM: GPU Board Serial Number: 1652823012345") is None
    event = parser.feed(
        "[ 10.2] NVRM: Xid (PCI:0000:91:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
    )
    other = parser.feed("[ 10.3] NVRM: Xid (PCI:0000:92:00): 79, GPU has fallen off the bus.")
    assert event is not None and other is not None
    assert (event.uuid, event.serial) == ("GPU-4e1d7a1c-2b3f-4c5d-8e9f-0a1b2c3d4e5f", "1652823012345")
    assert (other.uuid, other.serial) == (None, None)


@pytest.mark.parametrize(
    ("address", "normalised"),
    [
        ("0000:CB:00", "0000:cb:00.0"),
        ("00000000:CB:00.0", "0000:cb:00.0"),
        ("cb:00.0", "0000:cb:00.0"),
        ("PCI:0000:06:00.0", "0000:06:00.0"),
        ("0002:21:00.1", "0002:21:00.1"),
        ("  0000:9B:00  ", "0000:9b:00.0"),
    ],
)
def test_address_normalisation(address: str, normalised: str) -> None:
    assert normalize_pci(address) == normalised


@pytest.mark.parametrize("address", ["", "GPU-1234", "0000:cb", "0000:cb:00.9", "zz:00.0"])
def test_address_normalisation_rejects_garbage(address: str) -> None:
    with pytest.raises(ValueError, match="not a PCI address"):
        normalize_pci(address)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.builds(
            lambda a, b, c: f"{a}NVRM: Xid (PCI:0000:cb:00): {b}{c}",
            st.text(max_size=20),
            st.text(alphabet="0123456789, x", max_size=15),
            st.text(max_size=40),
        ),
        st.builds(
            lambda a, b: f"nvidia-nvswitch{a}: SXid (PCI:0000:06:00.0): {b}", st.integers(0, 9), st.text(max_size=30)
        ),
    )
)
def test_parse_line_never_raises_and_never_invents_a_code(text: str) -> None:
    event = parse_line(text)
    if event is not None and event.code is not None:
        marker = "SXid" if event.kind == "sxid" else "Xid"
        assert re.search(rf"{marker} \([^)]*\): 0*{event.code}(?!\d)", text), (text, event.code)


# --- bursts ---------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def xid_finding(code: int, pci: str = "0000:91:00.0") -> Finding:
    return Finding(code=f"xid-{code}", message="m", action=Action.REBOOT, gpu=GpuRef(pci=pci), xid=code)


def test_burst_of_identical_lines_is_one_finding() -> None:
    clock = FakeClock()
    debouncer = Debouncer(clock=clock)
    first_at = clock.now
    emitted = []
    for _ in range(50):
        emitted.append(debouncer.observe(xid_finding(79)))
        clock.now += 0.2  # 50 lines in 10 s
    assert [f for f in emitted if f is not None] == [emitted[0]]
    (burst,) = debouncer.bursts()
    assert burst.count == 50
    assert burst.first_seen.timestamp() == first_at


def test_a_different_code_or_gpu_is_a_new_finding() -> None:
    clock = FakeClock()
    debouncer = Debouncer(clock=clock)
    assert debouncer.observe(xid_finding(79)) is not None
    assert debouncer.observe(xid_finding(48)) is not None
    assert debouncer.observe(xid_finding(79, pci="0000:92:00.0")) is not None
    assert len(debouncer.bursts()) == 3


def test_after_the_window_a_new_finding_starts() -> None:
    clock = FakeClock()
    debouncer = Debouncer(clock=clock, window_s=180)
    assert debouncer.observe(xid_finding(79)) is not None
    clock.now += 179
    assert debouncer.observe(xid_finding(79)) is None  # silence is measured from the last line
    clock.now += 181
    fresh = debouncer.observe(xid_finding(79))
    assert fresh is not None and fresh.count == 1
    assert fresh.first_seen.timestamp() == clock.now


def test_repeats_are_reported_as_deltas_that_merge_to_the_total() -> None:
    clock = FakeClock()
    debouncer = Debouncer(clock=clock, report_interval_s=60)
    total = debouncer.observe(xid_finding(79))
    assert total is not None
    for _ in range(49):
        clock.now += 0.2
        debouncer.observe(xid_finding(79))
    assert debouncer.due_reports() == []  # not due yet
    clock.now += 60
    for delta in debouncer.due_reports():
        total.merge(delta)
    assert total.count == 50
    clock.now += 181
    assert debouncer.due_reports() == [] and debouncer.bursts() == []


# --- the detector -------------------------------------------------------------------------------------


def collect(detector: KmsgDetector, stop: threading.Event) -> tuple[list[Finding], threading.Thread]:
    found: list[Finding] = []

    def run() -> None:
        for finding in detector.events(stop):
            found.append(finding)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return found, thread


def wait_for(predicate: object, timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_detector_is_an_event_source() -> None:
    assert isinstance(KmsgDetector("/nonexistent"), EventSource)


def test_detector_tails_a_file_another_thread_appends_to(tmp_path: Path, stop: threading.Event) -> None:
    log = tmp_path / "kmsg"
    log.write_text("NVRM: Xid (PCI:0000:91:00): 79, old news from before we started\n")
    detector = KmsgDetector(log, poll_interval_s=0.02, pci_to_index={"0000:91:00.0": 3}.get)
    found, thread = collect(detector, stop)
    assert wait_for(lambda: detector.health.state is SignalState.OK)

    def append() -> None:
        with log.open("a") as handle:
            handle.write("NVRM: GPU at PCI:0000:91:00: GPU-4e1d7a1c-2b3f-4c5d-8e9f-0a1b2c3d4e5f\n")
            handle.write("[ 99.5] NVRM: Xid (PCI:0000:91:00): 48, pid=77, name=python3, DBE (0x1)")
            handle.flush()
            time.sleep(0.05)
            handle.write(" detected\n")  # a line written in two pieces is read as one

    writer = threading.Thread(target=append)
    started = time.monotonic()
    writer.start()
    assert wait_for(lambda: len(found) == 1, timeout=1.0)
    assert time.monotonic() - started < 1.0
    writer.join()
    stop.set()
    thread.join(timeout=2)
    (finding,) = found
    assert (finding.code, finding.xid, finding.action) == ("xid-48", 48, Action.GPU_RESET)
    assert finding.gpu == GpuRef(index=3, uuid="GPU-4e1d7a1c-2b3f-4c5d-8e9f-0a1b2c3d4e5f", pci="0000:91:00.0")
    assert finding.evidence["raw"].endswith("DBE (0x1) detected")
    assert (finding.evidence["pid"], finding.evidence["process"]) == ("77", "python3")
    assert finding.evidence["ladder"] == "gpu-reset,reboot,quarantine"


def test_detector_replays_when_told(tmp_path: Path, stop: threading.Event) -> None:
    log = tmp_path / "kmsg"
    log.write_text("6,1,5,-;NVRM: Xid (PCI:0000:91:00): 79, GPU has fallen off the bus.\n SUBSYSTEM=pci\n")
    detector = KmsgDetector(log, replay=True, poll_interval_s=0.02)
    found, thread = collect(detector, stop)
    assert wait_for(lambda: len(found) == 1)
    stop.set()
    thread.join(timeout=2)
    assert found[0].code == "xid-79"


def test_missing_file_means_unknown_health_and_no_finding(tmp_path: Path, stop: threading.Event) -> None:
    detector = KmsgDetector(tmp_path / "absent", reopen_interval_s=0.05)
    found, thread = collect(detector, stop)
    assert wait_for(lambda: "No such file" in detector.health.message)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert found == []
    assert detector.health.state is SignalState.UNKNOWN


def test_permission_denied_means_unknown_health_and_no_finding(tmp_path: Path, stop: threading.Event) -> None:
    def refuse(path: str, flags: int) -> int:
        raise PermissionError(13, "Permission denied", path)

    detector = KmsgDetector("/dev/kmsg", opener=refuse, reopen_interval_s=0.05)
    found, thread = collect(detector, stop)
    assert wait_for(lambda: "permission denied" in detector.health.message)
    stop.set()
    thread.join(timeout=2)
    assert found == []
    assert detector.health.state is SignalState.UNKNOWN


def test_detector_reads_a_character_device_without_blocking(stop: threading.Event) -> None:
    """/dev/null stands in for /dev/kmsg: a character device that has nothing to say."""
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    detector = KmsgDetector("/dev/null", poll_interval_s=0.02)
    found, thread = collect(detector, stop)
    assert wait_for(lambda: detector.health.state is SignalState.OK)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive() and found == []


def test_the_same_xid_a_minute_after_a_repair_is_a_new_fault_reported_at_once() -> None:
    """A GPU reset cured the burst; the same Xid again is a fresh fault, not a repeat reported a minute late."""
    clock, boundary = FakeClock(), BurstBoundary()
    debouncer = Debouncer(clock=clock, window_s=180, boundary=boundary)
    assert debouncer.observe(xid_finding(79)) is not None
    clock.now += 1
    assert debouncer.observe(xid_finding(79)) is None  # a repeat of the burst, before the repair
    boundary.repaired()
    clock.now += 60
    fresh = debouncer.observe(xid_finding(79))
    assert fresh is not None and fresh.count == 1 and fresh.first_seen.timestamp() == clock.now
    clock.now += 300
    assert debouncer.due_reports() == [], "the repeat before the repair belonged to the cured fault"


def test_without_a_repair_the_same_xid_within_the_window_stays_one_burst() -> None:
    clock, boundary = FakeClock(), BurstBoundary()
    debouncer = Debouncer(clock=clock, window_s=180, boundary=boundary)
    assert debouncer.observe(xid_finding(79)) is not None
    clock.now += 60
    assert debouncer.observe(xid_finding(79)) is None
    clock.now += 60
    (delta,) = debouncer.due_reports()
    assert delta.count == 1
