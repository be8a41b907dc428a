"""Every GPU finding names the board: its serial and UUID, whichever signal raised it (issue 14).

Hardware replaces boards by serial, and the per-GPU lemon rule follows a board
across repairs by it, so the serial must ride on the finding's GPU reference,
not only in the kernel log's evidence.
"""

from __future__ import annotations

from repairbot.detectors.gpu_backend import GpuEvent, GpuEventKind
from repairbot.detectors.kernel_log import KmsgParser
from repairbot.detectors.kmsg import KmsgDetector
from repairbot.detectors.nvml import NvmlHealthDetector
from repairbot.detectors.nvml_events import NvmlEventSource, finding_from_event
from repairbot.model import GpuRef
from repairbot_sim.gpu import FakeGpuBackend

UUID = "GPU-6b1d3f2a-0c44-4d7e-9a51-3c1f2e5d7a10"
SERIAL = "1650123012345"
DMESG = [
    "[ 1021.331120] NVRM: GPU at PCI:0000:2b:00: GPU-6b1d3f2a-0c44-4d7e-9a51-3c1f2e5d7a10",
    "[ 1021.331122] NVRM: GPU Board Serial Number: 1650123012345",
    "[ 1021.331180] NVRM: Xid (PCI:0000:2b:00): 79, pid=4411, name=python, GPU has fallen off the bus.",
    "[ 1030.000001] eth0: link up",
    "[ 1042.100000] NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp Exception",
    "[ 1050.000000] NVRM: Xid (PCI:0000:2b:00): 48, pid=4411, name=python, An uncorrectable double bit error",
]


def kernel_log_findings(lines: list[str]) -> list[GpuRef]:
    parser, detector = KmsgParser(), KmsgDetector("/nonexistent")
    events = [event for event in (parser.feed(line) for line in lines) if event is not None]
    return [detector.finding_from_event(event).gpu for event in events]


def test_an_xid_after_the_drivers_preface_names_the_gpus_uuid_and_board_serial() -> None:
    first, other, later = kernel_log_findings(DMESG)
    assert (first.pci, first.uuid, first.serial) == ("0000:2b:00.0", UUID, SERIAL)
    assert (later.pci, later.uuid, later.serial) == ("0000:2b:00.0", UUID, SERIAL)  # named once, remembered
    assert (other.pci, other.uuid, other.serial) == ("0000:cb:00.0", None, None)  # never named: address only


def test_a_kernel_log_that_lost_the_serial_line_still_names_the_uuid() -> None:
    (found,) = kernel_log_findings([DMESG[0], DMESG[2]])
    assert (found.uuid, found.serial) == (UUID, None)


def test_an_nvml_poll_finding_names_the_board_serial() -> None:
    backend = FakeGpuBackend.hgx_h100("gpu-node-000")
    backend.device(3).volatile_dbe = 1
    (finding,) = NvmlHealthDetector(backend).poll().findings
    assert finding.gpu.serial == backend.device(3).serial and finding.gpu.uuid == backend.device(3).uuid


def test_an_nvml_xid_event_names_the_board_serial() -> None:
    backend = FakeGpuBackend.hgx_h100("gpu-node-000")
    event = GpuEvent(GpuEventKind.XID, backend.device(5).ref(), xid=79)
    finding = finding_from_event(event, NvmlEventSource(backend).catalog, backend)
    assert finding is not None and finding.gpu.serial == backend.device(5).serial


def test_the_serial_round_trips_through_the_findings_wire_form() -> None:
    ref = GpuRef(index=3, uuid=UUID, pci="0000:2b:00.0", serial=SERIAL)
    assert ref.to_dict()["serial"] == SERIAL and GpuRef.from_dict(ref.to_dict()) == ref
