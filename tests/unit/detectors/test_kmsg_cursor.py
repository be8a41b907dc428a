"""A restarted kernel-log reader neither skips what was logged while it was down nor reports a record twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from repairbot.detectors.base import ResumableSource
from repairbot.detectors.kernel_log import record_sequence
from repairbot.detectors.kmsg import KmsgDetector
from repairbot.model import EVIDENCE_KMSG_BOOT, EVIDENCE_KMSG_SEQ, Finding, SignalKind

BOOT = "6f1c2b0e-boot-a"
NAMING = "6,{seq},100,-;NVRM: GPU at PCI:0000:91:00: GPU-4e1d7a1c-2b3f-4c5d-8e9f-0a1b2c3d4e5f"
XID = "4,{seq},200,-;NVRM: Xid (PCI:0000:91:00): {code}, pid=77, name=python3, detail"


def write_log(path: Path, records: list[str]) -> None:
    path.write_text("".join(record.format(seq=seq, code=code) + "\n" for seq, (record, code) in enumerate(records)))


def read_all(detector: KmsgDetector) -> list[Finding]:
    """Run the detector until it has caught up with the log as written, then stop it."""
    stop = threading.Event()
    found: list[Finding] = []

    def run() -> None:
        found.extend(detector.events(stop))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 2.0
    while not detector.caught_up and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=2)
    assert detector.caught_up
    return found

@contextmanager
def following(detector: KmsgDetector) -> Iterator[list[Finding]]:
    """The detector's event stream on its own thread, as the agent runs it; yields what it found so far."""
    stop = threading.Event()
    found: list[Finding] = []
    thread = threading.Thread(target=lambda: found.extend(detector.events(stop)), daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join(timeout=2)


def wait_for(done: Callable[[], bool], seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)



@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "kmsg"
    write_log(path, [(NAMING, 0), (XID, 79), (XID, 48), (XID, 31)])  # records 0..3
    return path


def detector_for(log: Path, boot: str = BOOT) -> KmsgDetector:
    return KmsgDetector(log, poll_interval_s=0.01, boot_id=lambda: boot)


def test_record_sequence_is_read_from_kmsg_framing_only() -> None:
    assert record_sequence("4,1234,200,-;NVRM: Xid (PCI:0000:91:00): 79, x") == 1234
    assert record_sequence("[  12.5] NVRM: Xid (PCI:0000:91:00): 79, x") is None
    assert record_sequence("NVRM: Xid (PCI:0000:91:00): 79, x") is None


def test_the_kernel_log_detector_is_resumable() -> None:
    assert isinstance(KmsgDetector("/nonexistent"), ResumableSource)


def test_a_restarted_reader_with_no_mark_reports_every_xid_since_boot(log: Path) -> None:
    detector = detector_for(log)
    detector.resume_after([])
    found = read_all(detector)
    assert [f.code for f in found] == ["xid-79", "xid-48", "xid-31"]
    assert [f.evidence[EVIDENCE_KMSG_SEQ] for f in found] == ["1", "2", "3"]
    assert {f.evidence[EVIDENCE_KMSG_BOOT] for f in found} == {BOOT}
    assert {(f.signal, f.signal_kind) for f in found} == {("kmsg", SignalKind.EVENT)}


def test_a_restarted_reader_reports_only_records_after_its_mark(log: Path) -> None:
    detector = detector_for(log)
    detector.resume_after([(BOOT, 1), (BOOT, 2)])  # the highest mark of this boot counts
    (found,) = read_all(detector)
    assert (found.code, found.evidence[EVIDENCE_KMSG_SEQ]) == ("xid-31", "3")
    # The naming line was skipped as already seen, yet the parser still learned the GPU's UUID from it.
    assert found.gpu.uuid == "GPU-4e1d7a1c-2b3f-4c5d-8e9f-0a1b2c3d4e5f"


def test_a_mark_of_another_boot_means_nothing_for_this_boots_log(log: Path) -> None:
    detector = detector_for(log)
    detector.resume_after([("an-older-boot", 99)])
    assert [f.code for f in read_all(detector)] == ["xid-79", "xid-48", "xid-31"]


def test_a_reader_at_its_mark_reports_nothing_and_is_caught_up(log: Path) -> None:
    detector = detector_for(log)
    detector.resume_after([(BOOT, 3)])
    assert read_all(detector) == []


def test_without_a_mark_the_tool_reader_starts_at_the_end(log: Path) -> None:
    """``repairbot kmsg`` and other non-agent readers keep the old default: only what is logged from now on."""
    detector = detector_for(log)
    assert read_all(detector) == []


def test_an_unreadable_log_counts_as_caught_up(tmp_path: Path) -> None:
    detector = KmsgDetector(tmp_path / "absent", reopen_interval_s=0.05, boot_id=lambda: BOOT)
    detector.resume_after([])
    assert read_all(detector) == []
    assert detector.health.state.value == "unknown"


def test_records_read_once_are_not_reported_again_when_the_file_is_reopened(log: Path) -> None:
    detector = detector_for(log)
    detector.resume_after([])
    detector.reopen_interval_s = 0.05
    with following(detector) as found:
        wait_for(lambda: len(found) >= 3)
        # Log rotation swaps in a new file holding the same records plus one: only the new one is news.
        replacement = log.with_name("kmsg.new")
        write_log(replacement, [(NAMING, 0), (XID, 79), (XID, 48), (XID, 31), (XID, 43)])
        replacement.replace(log)
        wait_for(lambda: len(found) >= 4)
    assert [f.code for f in found] == ["xid-79", "xid-48", "xid-31", "xid-43"]


# The first start of this agent version on a node: no cursor says which of this boot's records were reported before.
UPTIME_S = 4 * 3600.0  # the node has been up four hours


def logged_ago(seconds: float) -> str:
    """An Xid record (``{seq}``/``{code}`` left to fill) logged ``seconds`` before now, by its usec since boot."""
    usec = int((UPTIME_S - seconds) * 1e6)
    return "4,{seq}," + str(usec) + ",-;NVRM: Xid (PCI:0000:91:00): {code}, pid=77, name=python3, detail"


THREE_HOURS_AGO = logged_ago(3 * 3600)
TWO_MINUTES_AGO = logged_ago(120)


@pytest.fixture
def long_up_log(tmp_path: Path) -> Path:
    path = tmp_path / "kmsg"
    write_log(path, [(NAMING, 0), (THREE_HOURS_AGO, 48), (TWO_MINUTES_AGO, 79)])  # records 0..2
    return path


def first_start_detector(log: Path, boot: str = BOOT) -> KmsgDetector:
    return KmsgDetector(log, poll_interval_s=0.01, boot_id=lambda: boot, uptime=lambda: UPTIME_S)


def test_a_first_start_without_a_cursor_reports_an_xid_logged_2_minutes_ago_but_not_one_logged_3_hours_ago(
    long_up_log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    detector = first_start_detector(long_up_log)
    detector.resume_after([])
    with caplog.at_level("INFO", logger="repairbot.detectors.kmsg"):
        found = read_all(detector)
    assert [(f.code, f.evidence[EVIDENCE_KMSG_SEQ]) for f in found] == [("xid-79", "2")]
    # The old records still taught the parser the GPU's name.
    assert found[0].gpu.uuid == "GPU-4e1d7a1c-2b3f-4c5d-8e9f-0a1b2c3d4e5f"
    assert detector.skipped_before_first_start == 1
    notes = [r.getMessage() for r in caplog.records if "first_start_lookback" in r.getMessage()]
    assert len(notes) == 1 and "skipped=1" in notes[0], notes


def test_a_first_start_reports_everything_logged_after_it_started(long_up_log: Path) -> None:
    detector = first_start_detector(long_up_log)
    detector.resume_after([])
    with following(detector) as found:
        wait_for(lambda: bool(found))
        with long_up_log.open("a") as log_file:  # a fresh Xid, one second after start
            log_file.write(f"4,3,{int((UPTIME_S + 1) * 1e6)},-;NVRM: Xid (PCI:0000:91:00): 31, pid=77, name=x, y\n")
        wait_for(lambda: len(found) >= 2)
    assert [f.code for f in found] == ["xid-79", "xid-31"]


def test_with_a_cursor_for_this_boot_the_look_back_does_not_apply(long_up_log: Path) -> None:
    detector = first_start_detector(long_up_log)
    detector.resume_after([(BOOT, 0)])  # only the naming line was dealt with: the old Xid was never reported
    assert [f.code for f in read_all(detector)] == ["xid-48", "xid-79"]
    assert detector.skipped_before_first_start == 0


def test_a_cursor_of_another_boot_counts_as_no_cursor(long_up_log: Path) -> None:
    detector = first_start_detector(long_up_log)
    detector.resume_after([("an-older-boot", 0)])
    assert [f.code for f in read_all(detector)] == ["xid-79"]


def test_records_without_a_usec_are_judged_new_on_a_first_start(tmp_path: Path) -> None:
    path = tmp_path / "dmesg"
    path.write_text("[  12.5] NVRM: Xid (PCI:0000:91:00): 48, pid=77, name=python3, old-but-undated\n")
    detector = first_start_detector(path)
    detector.resume_after([])
    assert [f.code for f in read_all(detector)] == ["xid-48"]


def test_an_unreadable_uptime_holds_nothing_back(long_up_log: Path) -> None:
    def no_uptime() -> float:
        raise OSError("no /proc/uptime")

    detector = KmsgDetector(long_up_log, poll_interval_s=0.01, boot_id=lambda: BOOT, uptime=no_uptime)
    detector.resume_after([])
    assert [f.code for f in read_all(detector)] == ["xid-48", "xid-79"]


def test_a_tool_run_without_resume_has_no_look_back(long_up_log: Path) -> None:
    detector = KmsgDetector(
        long_up_log, replay=True, poll_interval_s=0.01, boot_id=lambda: BOOT, uptime=lambda: UPTIME_S
    )
    assert [f.code for f in read_all(detector)] == ["xid-48", "xid-79"]


def test_a_negative_look_back_is_refused() -> None:
    with pytest.raises(ValueError, match="first_start_lookback"):
        KmsgDetector("/nonexistent", first_start_lookback=-1)


def test_a_log_that_opens_late_still_reports_what_was_logged_after_the_agent_started(tmp_path: Path) -> None:
    """The look-back counts from the agent's start, not from when the log first became readable."""
    path = tmp_path / "kmsg"
    uptime = [UPTIME_S]
    detector = KmsgDetector(
        path, poll_interval_s=0.01, reopen_interval_s=0.02, boot_id=lambda: BOOT, uptime=lambda: uptime[0]
    )
    detector.resume_after([])
    with following(detector) as found:
        wait_for(lambda: detector.caught_up)  # the log is not there yet
        uptime[0] = UPTIME_S + 3600  # an hour later the log appears, with an Xid of 30 minutes after the start
        write_log(path, [(NAMING, 0), (logged_ago(-1800), 79)])
        wait_for(lambda: bool(found))
    assert [f.code for f in found] == ["xid-79"]


def test_an_agent_that_waited_for_the_api_still_reports_what_was_logged_while_it_waited(tmp_path: Path) -> None:
    """The look-back counts from the agent's start (the detector built), not from when its recovery finished."""
    path = tmp_path / "kmsg"
    uptime = [UPTIME_S]
    detector = KmsgDetector(path, poll_interval_s=0.01, boot_id=lambda: BOOT, uptime=lambda: uptime[0])
    uptime[0] = UPTIME_S + 3600  # an hour waiting for the API server; an Xid 30 minutes in
    write_log(path, [(NAMING, 0), (logged_ago(-1800), 79), (logged_ago(3 * 3600), 48)])
    detector.resume_after([])
    assert [f.code for f in read_all(detector)] == ["xid-79"]
