"""Real NVRM line shapes the kernel-log parser must read right (issue 14), each with the public source it is from.

A false "fatal" drains a 64-GPU training job; a missed line leaves a dead GPU taking work. So every shape here
is a line a real driver printed, quoted from where it was found, and every look-alike that is not a fault is
pinned as noise.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repairbot.agent.kmsg_report import event_record
from repairbot.detectors.kmsg import KmsgDetector, KmsgParser, parse_line
from repairbot.model import Action, Finding, GpuRef, Severity
from repairbot.notify.messages import describe_gpu

# --- Xids attributed to a MIG instance -----------------------------------------------------------------------------
#
# The driver attributes a contained error to the GPU instance (and compute instance) that caused it. Shapes from
# NVIDIA's open-gpu-kernel-modules (src/nvidia/src/kernel/gpu/rc/kernel_rc.c, the format string
# "NVRM: Xid (PCI:%04x:%02x:%02x GPU-I:%02u GPU-CI:%02u): %d, pid=%s, name=%s, %s", and the example comment
# "NVRM: Xid (PCI:0000:01:00 GPU-I:05): 94, pid=7194, Contained: CE User Channel (0x9). RST: No, D-RST: No"),
# also quoted by NVIDIA's memory-error-management guide (docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/, "Contained
# error with MIG enabled") and by leptonai/gpud's Xid parser tests.

MIG_SHAPES = [
    # (line, code, pci, gpu instance, compute instance, message)
    (
        "NVRM: Xid (PCI:0000:01:00 GPU-I:05): 94, pid=7194, Contained: CE User Channel (0x9). RST: No, D-RST: No",
        94,
        "0000:01:00.0",
        5,
        None,
        "Contained: CE User Channel (0x9). RST: No, D-RST: No",
    ),
    (
        "NVRM: Xid (PCI:0000:3b:00 GPU-I:01 GPU-CI:02): 13, pid=9, name=a, Graphics Exception",
        13,
        "0000:3b:00.0",
        1,
        2,
        "Graphics Exception",
    ),
    (
        "[ 812.114] NVRM: Xid (PCI:0000:cb:00 GPU-I:00 GPU-CI:00): 43, pid=1797828, name=pt_main_thread, Ch 00000008",
        43,
        "0000:cb:00.0",
        0,
        0,
        "Ch 00000008",
    ),
]


@pytest.mark.parametrize(("line", "code", "pci", "gi", "ci", "message"), MIG_SHAPES)
def test_an_xid_on_a_mig_instance_is_reported_with_its_instance(
    line: str, code: int, pci: str, gi: int, ci: int | None, message: str
) -> None:
    event = parse_line(line)
    assert event is not None, line
    assert (event.kind, event.code, event.pci) == ("xid", code, pci)
    assert (event.gpu_instance, event.compute_instance) == (gi, ci)
    assert event.message == message


def test_a_contained_xid_94_on_a_mig_instance_is_reported_with_its_gpu_instance() -> None:
    line = "NVRM: Xid (PCI:0000:01:00 GPU-I:05): 94, pid=7194, Contained: CE User Channel (0x9). RST: No, D-RST: No"
    event = KmsgParser().feed(line)
    assert event is not None
    finding = KmsgDetector("/nonexistent").finding_from_event(event)
    assert finding.code == "xid-94"
    assert finding.gpu == GpuRef(pci="0000:01:00.0", gpu_instance=5)
    assert finding.gpu.identity() == "0000:01:00.0"  # the physical GPU: one repair however many instances


def test_the_mig_instance_shows_in_kmsg_json_and_in_the_words_a_human_reads() -> None:
    event = parse_line("NVRM: Xid (PCI:0000:3b:00 GPU-I:01 GPU-CI:02): 13, pid=9, name=a, Graphics Exception")
    assert event is not None
    record = event_record(event)
    assert (record["gpuInstance"], record["computeInstance"]) == (1, 2)
    assert "GPU instance 1" in describe_gpu(GpuRef(pci="0000:3b:00.0", gpu_instance=1, compute_instance=2))
    assert "compute instance 2" in describe_gpu(GpuRef(pci="0000:3b:00.0", gpu_instance=1, compute_instance=2))


def test_an_xid_without_mig_has_no_instance() -> None:
    event = parse_line("NVRM: Xid (PCI:0000:01:00): 94, pid=7062, Contained: CE User Channel (0x9). RST: No, D-RST: No")
    assert event is not None
    assert (event.gpu_instance, event.compute_instance) == (None, None)
    assert "gpuInstance" not in event_record(event)


def test_the_mig_instance_survives_the_trip_through_the_crd_shape() -> None:
    finding = Finding("xid-94", "m", Action.NOTIFY, gpu=GpuRef(pci="0000:01:00.0", gpu_instance=5, compute_instance=0))
    item = finding.to_dict()
    assert item["gpu"] == {"pci": "0000:01:00.0", "gpuInstance": 5, "computeInstance": 0}
    assert Finding.from_dict(item).gpu == finding.gpu


# --- fallen off the bus: every driver's one-line shape, and the look-alikes that are not faults ---------------------

OFF_THE_BUS = [
    # Older drivers (375.xx): Ubuntu Forums, "completely loosing the screen" (2017-06-05), syslog of a GT 630:
    #   "NVRM: GPU at 0000:01:00.0 has fallen off the bus."
    ("[ 4564.303887] NVRM: GPU at 0000:01:00.0 has fallen off the bus.", "0000:01:00.0"),
    # The same message with the Xid-style address (the report, older R3xx/R4xx drivers).
    ("NVRM: GPU at PCI:0000:01:00: GPU has fallen off the bus.", "0000:01:00.0"),
    # Current drivers: gpud's SXid README sample log (leptonai/gpud, components/accelerator/nvidia/sxid/README.md):
    #   "NVRM: GPU 0000:91:00.0: GPU has fallen off the bus."
    ("[6781741.548783] NVRM: GPU 0000:91:00.0: GPU has fallen off the bus.", "0000:91:00.0"),
]


@pytest.mark.parametrize(("line", "pci"), OFF_THE_BUS)
def test_a_gpu_that_fell_off_the_bus_is_lost_in_every_driver_shape(line: str, pci: str) -> None:
    for event in (parse_line(line), KmsgParser().feed(line)):
        assert event is not None, line
        assert (event.kind, event.pci, event.action) == ("gpu-lost", pci, Action.REBOOT)


NOT_FAULTS = [
    # The preface naming a GPU before its first Xid: NVIDIA's Xid guide (docs.nvidia.com/deploy/xid-errors/,
    # "NVRM: GPU at 0000:03:00: GPU-b850f46d-d5ea-c752-ddf3-c4453e44d3f7") and gpud's sample log (PCI: form).
    "NVRM: GPU at PCI:0000:2b:00: GPU-6b1d3f2a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
    "NVRM: GPU at 0000:03:00: GPU-b850f46d-d5ea-c752-ddf3-c4453e44d3f7",
    # The board serial that follows it, and the driver's own "serial number is" line (gpud sample log).
    "NVRM: GPU Board Serial Number: 1653723052734",
    "NVRM: GPU 0000:91:00.0: GPU serial number is 1653723052734.",
    # A scheduler notice printed at probe time on every healthy GPU.
    "NVRM: GPU 0000:01:00.0: RmInitAdapter succeeded; GPU has software scheduler ENABLED with policy BEST_EFFORT.",
    # A probe-time MSI-X warning names the GPU the same way and is not "fallen off the bus".
    "NVRM: GPU 0000:82:00.0: Failed to enable MSI-X.",
]


@pytest.mark.parametrize("line", NOT_FAULTS)
def test_lines_that_name_a_gpu_but_report_no_fault_stay_noise(line: str) -> None:
    assert parse_line(line) is None
    assert KmsgParser().feed(line) is None


# --- the parser never invents a code ------------------------------------------------------------------------------

REAL_LINES = [shape[0] for shape in MIG_SHAPES] + [
    "NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp Exception",
    "NVRM: Xid (PCI:0000:01:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
    "nvidia-nvswitch3: SXid (PCI:0000:4e:00.0): 12028, Non-fatal, Link 32 egress non-posted PRIV error (First)",
    "nvidia-nvswitch0: SXid (PCI:0000:c3:00.0): 24007, Fatal, Link 30 sourcetrack timeout error",
]


def _code_appears_literally(text: str, kind: str, code: int) -> bool:
    marker = "SXid" if kind == "sxid" else "Xid"
    return re.search(rf"{marker} \([^)]*\): 0*{code}(?!\d)", text) is not None


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(REAL_LINES),
    st.lists(st.tuples(st.integers(0, 200), st.sampled_from("0123456789:() ,")), max_size=6),
)
def test_a_real_line_with_mutated_digits_never_yields_a_code_it_does_not_show(
    line: str, edits: list[tuple[int, str]]
) -> None:
    chars = list(line)
    for at, char in edits:
        if chars:
            chars[at % len(chars)] = char
    text = "".join(chars)
    event = KmsgParser().feed(text)
    if event is not None and event.code is not None:
        assert _code_appears_literally(text, event.kind, event.code), (text, event.code)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_yields_a_finding_only_from_an_nvrm_or_nvswitch_line(text: str) -> None:
    event = KmsgParser().feed(text)
    if event is None:
        return
    assert "NVRM" in text or "nvidia-nvswitch" in text or "fallen off the bus" in text, text
    if event.code is not None:
        assert _code_appears_literally(text, event.kind, event.code), (text, event.code)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="NSf"), max_size=200))
def test_text_without_nvrm_sxid_or_fallen_yields_no_finding(text: str) -> None:
    assert KmsgParser().feed(text) is None


# --- SXids: the line's own Fatal / Non-fatal word is respected ------------------------------------------------------


def test_a_non_fatal_sxid_line_never_climbs_a_destructive_ladder() -> None:
    # Trainy-ai/konduktor (konduktor/controller/parse.py docstring), a real dmesg line: 12028 is RESET_FABRIC in
    # NVIDIA NVSentinel's map, but this switch reported it Non-fatal.
    event = parse_line(
        "[1235733.431527] nvidia-nvswitch3: SXid (PCI:0000:4e:00.0): 12028, Non-fatal, Link 32 egress non-posted "
        "PRIV error (First)"
    )
    assert event is not None and event.fatal is False
    assert event.action in (Action.NOTIFY, Action.NONE)
    assert not any(rung.is_destructive for rung in event.ladder)
    assert event.severity is not Severity.FATAL and event.severity is not Severity.CRITICAL
    assert "Non-fatal" in event.reason


def test_a_fatal_sxid_line_of_a_code_the_table_ignores_gets_the_fabric_reset() -> None:
    # 11012 is IGNORE in NVSentinel's map (an ingress header ECC limit); the Fabric Manager guide: a fatal NVSwitch
    # error needs the GPUs and NVSwitches of the baseboard reset, which on HGX is a reboot.
    event = parse_line("nvidia-nvswitch1: SXid (PCI:0000:06:00.0): 11012, Fatal, ingress header ECC limit")
    assert event is not None and event.fatal is True
    assert event.action is Action.REBOOT
    assert event.ladder == (Action.REBOOT, Action.POWER_CYCLE, Action.QUARANTINE)
    assert "Fatal" in event.reason


def test_a_fatal_nvswitch_thermal_event_pages_a_person_and_reboots_nothing() -> None:
    # 10004 is CHECK_THERMALS in NVSentinel's map: an overheating switch is not cooled by a reboot.
    event = parse_line("nvidia-nvswitch1: SXid (PCI:0000:06:00.0): 10004, Fatal, Thermal event start")
    assert event is not None and event.fatal is True
    assert event.action is Action.NOTIFY and event.ladder == (Action.NOTIFY,)
    assert event.severity in (Severity.CRITICAL, Severity.FATAL) and "a person" in event.reason


@pytest.mark.parametrize(
    "line",
    [
        # An NVSwitch ECC double-bit error reported Fatal. NVSentinel's sxiderrorsmapping.csv:
        # 19061 NVLTLC_TX_LNK_CREQ_RAM_DAT_ECC_DBE_ERR, WORKFLOW_NVLINK_POTENTIALY_FATAL_ERR, FATAL.
        "nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 19061, Fatal, Link 12 TX CREQ RAM DAT ECC DBE Error",
        # 12022 NPORT_EGRESS_NXBAR_HDR_ECC_DBE_ERR (gpud sxid.go: "egress input ECC DBE error", reboot system).
        "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12022, Fatal, Link 03 egress input ECC DBE error",
    ],
)
def test_a_fatal_nvswitch_ecc_dbe_resets_the_fabric(line: str) -> None:
    event = parse_line(line)
    assert event is not None
    assert event.action is Action.REBOOT
    assert event.severity in (Severity.CRITICAL, Severity.FATAL)


@pytest.mark.parametrize(
    ("line", "action"),
    [
        # NVIDIA/NVSentinel tests/syslog_health_monitor_test.go, injected real-shape lines.
        ("nvidia-nvswitch0: SXid (PCI:0000:c3:00.0): 20009, Non-fatal, Link 28 RX Short Error Rate", Action.NOTIFY),
        ("nvidia-nvswitch0: SXid (PCI:0000:c3:00.0): 28006, Non-fatal, Link 29 MC TS crumbstore MCTO", Action.NONE),
        # REFERENCE §1.6 / §4.3 always-fatal: the whole fabric is reset whatever else the line says.
        ("nvidia-nvswitch3: SXid (PCI:0000:86:00.0): 22003, Fatal, Link 10 MINION halt", Action.REBOOT),
        ("nvidia-nvswitch1: SXid (PCI:0000:06:00.0): 20034, Fatal, Link 48 LTSSM Fault Up", Action.GPU_RESET),
    ],
)
def test_real_sxid_lines_get_a_proportionate_action(line: str, action: Action) -> None:
    event = parse_line(line)
    assert event is not None
    assert event.action is action
