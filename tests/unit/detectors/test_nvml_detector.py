"""NvmlHealthDetector and NvmlEventSource over the fake backend, and PynvmlBackend over a fake NVML
library that raises real ``pynvml.NVMLError`` instances, to prove how each error degrades."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

from repairbot.detectors.base import SignalState
from repairbot.detectors.gpu_backend import (
    ClockEventReason,
    GpuEvent,
    GpuEventKind,
    GpuReadError,
    NoGpuDriver,
)
from repairbot.detectors.nvml import (
    NO_GPU_DRIVER,
    NvmlEventSource,
    NvmlHealthDetector,
    NvmlThresholds,
    PynvmlBackend,
)
from repairbot.model import Action, GpuRef, Severity
from repairbot_sim.gpu import FakeGpuBackend


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def backend() -> FakeGpuBackend:
    return FakeGpuBackend.hgx_h100("gpu-node-000")


def codes(report: Any) -> list[str]:
    return sorted(finding.code for finding in report.findings)


def test_healthy_node_polls_clean_with_observations_per_gpu(backend: FakeGpuBackend) -> None:
    report = NvmlHealthDetector(backend).poll()
    assert report.findings == []
    assert report.health is not None and report.health.state is SignalState.OK
    assert len(report.observations) == 8
    first = report.observations[backend.device(0).uuid]
    assert first["pci"] == "0000:18:00.0"
    assert first["retired_pages"] is None  # unsupported on Hopper: unknown, not zero
    assert first["ecc"]["volatile_uncorrected"] == 0


@pytest.mark.parametrize(
    ("mutate", "code", "action", "severity"),
    [
        (lambda g: setattr(g, "volatile_dbe", 2), "ecc-dbe", Action.GPU_RESET, Severity.CRITICAL),
        (lambda g: setattr(g, "remap_pending", True), "row-remap-pending", Action.GPU_RESET, Severity.WARNING),
        (lambda g: setattr(g, "remap_failure", True), "row-remap-failure", Action.GPU_RESET, Severity.CRITICAL),
        (lambda g: setattr(g, "recovery_action", 2), "recovery-action", Action.REBOOT, Severity.CRITICAL),
        (lambda g: setattr(g, "recovery_action", 5), "recovery-action", Action.NOTIFY, Severity.WARNING),
        (
            lambda g: setattr(g, "clock_reasons", ClockEventReason.HW_POWER_BRAKE_SLOWDOWN),
            "thermal",
            Action.NOTIFY,
            Severity.WARNING,
        ),
        (lambda g: setattr(g, "lost", True), "gpu-lost", Action.REBOOT, Severity.FATAL),
    ],
)
def test_each_bad_reading_becomes_its_finding(
    backend: FakeGpuBackend, mutate: Any, code: str, action: Action, severity: Severity
) -> None:
    mutate(backend.device(3))
    report = NvmlHealthDetector(backend).poll()
    assert codes(report) == [code]
    finding = report.findings[0]
    assert (finding.action, finding.severity) == (action, severity)
    assert finding.gpu.uuid == backend.device(3).uuid
    assert finding.gpu.pci == "0000:5d:00.0"


@pytest.mark.parametrize(
    ("value", "action"),
    [(1, Action.GPU_RESET), (4, Action.GPU_RESET), (6, Action.REBOOT), (7, Action.REBOOT), (99, Action.NOTIFY)],
)
def test_recovery_action_values_map_to_rungs(backend: FakeGpuBackend, value: int, action: Action) -> None:
    backend.device(0).recovery_action = value
    (finding,) = NvmlHealthDetector(backend).poll().findings
    assert finding.action is action


def test_row_remap_failure_evidence_asks_for_rma_evaluation(backend: FakeGpuBackend) -> None:
    backend.device(0).remap_failure = True
    (finding,) = NvmlHealthDetector(backend).poll().findings
    assert "RMA" in finding.evidence["rma"]


def test_idle_clock_reasons_are_normal_operation(backend: FakeGpuBackend) -> None:
    backend.device(0).clock_reasons = ClockEventReason.GPU_IDLE | ClockEventReason.SW_POWER_CAP
    assert NvmlHealthDetector(backend).poll().findings == []


def test_pcie_width_downtrain_needs_consecutive_polls(backend: FakeGpuBackend) -> None:
    backend.device(1).pcie_width = 8
    detector = NvmlHealthDetector(backend, thresholds=NvmlThresholds(pcie_degraded_polls=2))
    assert codes(detector.poll()) == []
    (finding,) = detector.poll().findings
    assert finding.code == "pcie-degraded" and finding.action is Action.NOTIFY
    assert finding.evidence["current"] == "Gen5 x8"


def test_pcie_generation_drop_on_an_idle_gpu_is_power_saving(backend: FakeGpuBackend) -> None:
    detector = NvmlHealthDetector(backend, thresholds=NvmlThresholds(pcie_degraded_polls=1))
    backend.device(1).pcie_gen = 1
    assert detector.poll().findings == []
    backend.device(1).pids = [4242]
    assert codes(detector.poll()) == ["pcie-degraded"]


def test_pcie_replay_rate_uses_dcgm_budget_and_injected_clock(backend: FakeGpuBackend) -> None:
    clock = Clock()
    detector = NvmlHealthDetector(backend, clock=clock)
    detector.poll()  # baseline
    clock.now += 60
    backend.device(2).pcie_replays += 31  # x16 Gen5 budget: ceil(1.92 * 16) = 31/min, not exceeded
    assert detector.poll().findings == []
    clock.now += 60
    backend.device(2).pcie_replays += 200
    (finding,) = detector.poll().findings
    assert finding.code == "pcie-replay"
    assert float(finding.evidence["limit_per_minute"]) == 31.0


def test_configured_replay_threshold_wins(backend: FakeGpuBackend) -> None:
    clock = Clock()
    detector = NvmlHealthDetector(backend, thresholds=NvmlThresholds(pcie_replays_per_minute=5), clock=clock)
    detector.poll()
    clock.now += 120
    backend.device(0).pcie_replays += 12  # 6/min
    assert codes(detector.poll()) == ["pcie-replay"]


def test_nvlink_down_only_for_links_seen_active(backend: FakeGpuBackend) -> None:
    detector = NvmlHealthDetector(backend)
    backend.device(0).nvlinks[17] = False  # never active: not this detector's business
    assert detector.poll().findings == []
    backend.device(0).nvlinks[3] = False
    (finding,) = detector.poll().findings
    assert finding.code == "nvlink-down" and finding.action is Action.NOTIFY
    assert finding.evidence["links"] == "3"


def test_nvlink_down_action_is_configurable(backend: FakeGpuBackend) -> None:
    detector = NvmlHealthDetector(backend, thresholds=NvmlThresholds(nvlink_down_action=Action.GPU_RESET))
    detector.poll()
    backend.device(0).nvlinks[0] = False
    (finding,) = detector.poll().findings
    assert (finding.action, finding.severity) == (Action.GPU_RESET, Severity.CRITICAL)


def test_no_driver_is_unknown_not_a_finding(backend: FakeGpuBackend) -> None:
    backend.driver_loaded = False
    report = NvmlHealthDetector(backend).poll()
    assert report.findings == []
    assert report.health is not None
    assert (report.health.state, report.health.message) == (SignalState.UNKNOWN, NO_GPU_DRIVER)


def test_one_unreadable_reading_leaves_the_rest_judged(backend: FakeGpuBackend) -> None:
    backend.device(0).raises["pcie"] = GpuReadError("GPU x: PCIe link: Unknown Error")
    backend.device(0).volatile_dbe = 1
    report = NvmlHealthDetector(backend).poll()
    assert codes(report) == ["ecc-dbe"]
    assert report.health is not None and report.health.state is SignalState.UNKNOWN
    assert "Unknown Error" in report.health.message


# PynvmlBackend over a fake library: real NVMLError instances, real translation.


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class FakeNvmlLibrary(SimpleNamespace):
    """Just enough of pynvml for one healthy H100; tests replace single functions to make them fail."""

    def __init__(self, **overrides: Any) -> None:
        def field_values(handle: Any, ids: list[int]) -> list[Any]:
            return [
                SimpleNamespace(
                    nvmlReturn=0, valueType=pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, value=SimpleNamespace(uiVal=0)
                )
            ]

        def nvlink_state(handle: Any, link: int) -> int:
            if link >= 18:
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return 1

        defaults: dict[str, Any] = {
            "nvmlInit": lambda: None,
            "nvmlShutdown": lambda: None,
            "nvmlDeviceGetCount": lambda: 1,
            "nvmlDeviceGetHandleByIndex": lambda index: 0x1000 + index,
            "nvmlDeviceGetHandleByUUID": lambda uuid: 0x1000,
            "nvmlDeviceGetUUID": lambda handle: "GPU-11111111-2222-3333-4444-555555555555",
            "nvmlDeviceGetName": lambda handle: "NVIDIA H100 80GB HBM3",
            "nvmlDeviceGetPciInfo": lambda handle: SimpleNamespace(busId="00000000:18:00.0"),
            "nvmlDeviceGetSerial": lambda handle: "1650923012345",
            "nvmlDeviceGetTotalEccErrors": lambda handle, error_type, counter: 0,
            "nvmlDeviceGetRemappedRows": lambda handle: (0, 0, 0, 0),
            "nvmlDeviceGetRetiredPagesPendingStatus": lambda handle: 0,
            "nvmlDeviceGetRetiredPages": lambda handle, cause: [],
            "nvmlDeviceGetCurrPcieLinkGeneration": lambda handle: 5,
            "nvmlDeviceGetMaxPcieLinkGeneration": lambda handle: 5,
            "nvmlDeviceGetCurrPcieLinkWidth": lambda handle: 16,
            "nvmlDeviceGetMaxPcieLinkWidth": lambda handle: 16,
            "nvmlDeviceGetPcieReplayCounter": lambda handle: 0,
            "nvmlDeviceGetCurrentClocksEventReasons": lambda handle: 0x1,
            "nvmlDeviceGetNvLinkState": nvlink_state,
            "nvmlDeviceGetFieldValues": field_values,
            "nvmlDeviceGetComputeRunningProcesses": lambda handle: [],
            "nvmlDeviceGetGraphicsRunningProcesses": lambda handle: [],
        }
        defaults.update(overrides)
        super().__init__(**defaults)


def raising(code: int) -> Any:
    def fail(*_args: Any) -> Any:
        raise nvml_error(code)

    return fail


def test_fake_library_backend_is_healthy_and_normalises_pci() -> None:
    backend = PynvmlBackend(FakeNvmlLibrary())
    report = NvmlHealthDetector(backend).poll()
    assert report.findings == []
    (seen,) = report.observations.values()
    assert seen["pci"] == "0000:18:00.0"
    assert seen["nvlink"] == {link: True for link in range(18)}
    assert seen["recovery_action"] == 0


@pytest.mark.parametrize(
    "code", [pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_NO_PERMISSION]
)
def test_missing_features_read_as_unknown_not_as_findings(code: int) -> None:
    library = FakeNvmlLibrary(
        nvmlDeviceGetRemappedRows=raising(code),
        nvmlDeviceGetTotalEccErrors=raising(code),
        nvmlDeviceGetFieldValues=raising(code),
        nvmlDeviceGetCurrentClocksEventReasons=raising(code),
    )
    report = NvmlHealthDetector(PynvmlBackend(library)).poll()
    assert report.findings == []
    assert report.health is not None and report.health.state is SignalState.OK
    (seen,) = report.observations.values()
    assert seen["row_remap"] is None and seen["ecc"] is None and seen["recovery_action"] is None


def test_per_field_not_supported_in_field_values_is_unknown() -> None:
    def field_values(handle: Any, ids: list[int]) -> list[Any]:
        return [SimpleNamespace(nvmlReturn=pynvml.NVML_ERROR_NOT_SUPPORTED, valueType=1, value=None)]

    backend = PynvmlBackend(FakeNvmlLibrary(nvmlDeviceGetFieldValues=field_values))
    backend.init()
    backend.gpus()
    assert backend.recovery_action("GPU-11111111-2222-3333-4444-555555555555") is None


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED])
def test_no_library_or_driver_is_health_no_gpu_driver(code: int) -> None:
    backend = PynvmlBackend(FakeNvmlLibrary(nvmlInit=raising(code)))
    with pytest.raises(NoGpuDriver):
        backend.init()
    report = NvmlHealthDetector(backend).poll()
    assert report.findings == []
    assert report.health is not None and report.health.message == "no GPU driver on this node"


def test_gpu_is_lost_on_a_reading_is_gpu_lost_finding() -> None:
    backend = PynvmlBackend(FakeNvmlLibrary(nvmlDeviceGetRemappedRows=raising(pynvml.NVML_ERROR_GPU_IS_LOST)))
    (finding,) = NvmlHealthDetector(backend).poll().findings
    assert (finding.code, finding.action, finding.severity) == ("gpu-lost", Action.REBOOT, Severity.FATAL)
    assert finding.gpu.uuid == "GPU-11111111-2222-3333-4444-555555555555"


def test_gpu_is_lost_during_enumeration_keeps_last_known_identity() -> None:
    library = FakeNvmlLibrary()
    backend = PynvmlBackend(library)
    backend.init()
    backend.gpus()
    library.nvmlDeviceGetUUID = raising(pynvml.NVML_ERROR_GPU_IS_LOST)
    (finding,) = NvmlHealthDetector(backend).poll().findings
    assert finding.code == "gpu-lost" and finding.gpu.pci == "0000:18:00.0"


def test_reset_required_is_a_reset_finding() -> None:
    backend = PynvmlBackend(FakeNvmlLibrary(nvmlDeviceGetPcieReplayCounter=raising(pynvml.NVML_ERROR_RESET_REQUIRED)))
    (finding,) = NvmlHealthDetector(backend).poll().findings
    assert (finding.code, finding.action) == ("reset-required", Action.GPU_RESET)


def test_unexpected_nvml_error_is_unknown_health_with_context() -> None:
    backend = PynvmlBackend(FakeNvmlLibrary(nvmlDeviceGetRemappedRows=raising(pynvml.NVML_ERROR_UNKNOWN)))
    report = NvmlHealthDetector(backend).poll()
    assert report.findings == []
    assert report.health is not None and report.health.state is SignalState.UNKNOWN
    assert "remapped rows" in report.health.message


# Event source


def collect(source: NvmlEventSource, count: int) -> list[Any]:
    """Run the source in this thread until it yielded ``count`` findings or ran dry."""
    stop = threading.Event()
    found = []
    for finding in source.events(stop):
        found.append(finding)
        if len(found) >= count:
            stop.set()
    return found


def test_xid_event_becomes_catalog_finding(backend: FakeGpuBackend) -> None:
    ref = backend.device(2).ref()
    backend.push_event(GpuEvent(GpuEventKind.XID, ref, xid=79))
    backend.push_event(GpuEvent(GpuEventKind.XID, ref, xid=13))
    xid79, xid13 = collect(NvmlEventSource(backend, wait_ms=10), 2)
    assert (xid79.code, xid79.xid, xid79.action, xid79.gpu) == ("xid-79", 79, Action.REBOOT, ref)
    assert xid79.evidence["source"] == "nvml-event"
    assert xid13.code == "xid-13" and xid13.action is Action.NONE  # application error: no node action


def test_gpu_lost_event_reported_once_per_window(backend: FakeGpuBackend) -> None:
    clock = Clock()
    ref = backend.device(0).ref()
    for _ in range(3):
        backend.push_event(GpuEvent(GpuEventKind.GPU_LOST, ref))
    backend.push_event(GpuEvent(GpuEventKind.XID, ref, xid=48))
    source = NvmlEventSource(backend, wait_ms=10, clock=clock)
    lost, xid48 = collect(source, 2)
    assert (lost.code, lost.action, lost.severity) == ("gpu-lost", Action.REBOOT, Severity.FATAL)
    assert xid48.code == "xid-48"


def test_a_burst_of_the_same_nvml_xid_on_one_gpu_is_one_finding_counted_up(backend: FakeGpuBackend) -> None:
    """A failing GPU repeats its Xid; as on the kernel-log path, the repeats fold into the first finding's count."""
    wall = Clock()
    ref, other = backend.device(3).ref(), backend.device(4).ref()
    for _ in range(5):
        backend.push_event(GpuEvent(GpuEventKind.XID, ref, xid=48))
    backend.push_event(GpuEvent(GpuEventKind.XID, other, xid=48))
    source = NvmlEventSource(backend, wait_ms=10, burst_clock=wall)
    stop = threading.Event()
    deadline = threading.Timer(5.0, stop.set)
    deadline.start()
    found = []
    for finding in source.events(stop):
        found.append(finding)
        if len(found) == 2:
            wall.now += 61  # the report interval passes: the folded repeats come out as one counted delta
        if sum(f.count for f in found if f.gpu == ref) >= 5:
            stop.set()
    deadline.cancel()
    on_ref = [f for f in found if f.gpu == ref]
    assert [f.count for f in on_ref] == [1, 4]
    assert {f.code for f in found} == {"xid-48"}
    assert [f.count for f in found if f.gpu == other] == [1]  # another GPU is another finding
    merged = on_ref[0]
    merged.merge(on_ref[1])
    assert merged.count == 5 and merged.first_seen == on_ref[0].first_seen


def test_event_source_without_driver_reports_unknown_and_stops_cleanly(backend: FakeGpuBackend) -> None:
    backend.driver_loaded = False
    source = NvmlEventSource(backend, retry_s=0.01)
    stop = threading.Event()
    timer = threading.Timer(0.1, stop.set)
    timer.start()
    assert list(source.events(stop)) == []
    timer.join()
    assert (source.health.state, source.health.message) == (SignalState.UNKNOWN, NO_GPU_DRIVER)


def test_recovery_action_event_reads_the_field(backend: FakeGpuBackend) -> None:
    backend.device(1).recovery_action = 1
    backend.push_event(GpuEvent(GpuEventKind.RECOVERY_ACTION, backend.device(1).ref()))
    (finding,) = collect(NvmlEventSource(backend, wait_ms=10), 1)
    assert (finding.code, finding.action) == ("recovery-action", Action.GPU_RESET)


def test_pynvml_event_wait_translates_timeout_lost_and_xid() -> None:
    uuid = "GPU-11111111-2222-3333-4444-555555555555"
    results: list[Any] = [
        nvml_error(pynvml.NVML_ERROR_TIMEOUT),
        SimpleNamespace(device=0x1000, eventType=pynvml.nvmlEventTypeXidCriticalError, eventData=79),
        nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST),
    ]
    registered: list[int] = []

    def wait(event_set: Any, timeout_ms: int) -> Any:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    library = FakeNvmlLibrary(
        nvmlEventSetCreate=lambda: "event-set",
        nvmlDeviceGetSupportedEventTypes=lambda handle: pynvml.nvmlEventTypeAll,
        nvmlDeviceRegisterEvents=lambda handle, mask, es: registered.append(mask),
        nvmlEventSetWait_v2=wait,
    )
    backend = PynvmlBackend(library)
    backend.init()
    assert backend.register_events() == {uuid: True}
    assert registered[0] & pynvml.nvmlEventTypeXidCriticalError
    assert backend.wait_event(10) is None
    xid = backend.wait_event(10)
    board = GpuRef(0, uuid, "0000:18:00.0", serial="1650923012345")  # the event names the board, serial and all
    assert xid == GpuEvent(GpuEventKind.XID, board, xid=79, detail="eventType=0x8")
    lost = backend.wait_event(10)
    assert lost is not None and lost.kind is GpuEventKind.GPU_LOST


def test_event_registration_not_supported_is_recorded_per_gpu() -> None:
    library = FakeNvmlLibrary(
        nvmlEventSetCreate=lambda: "event-set",
        nvmlDeviceGetSupportedEventTypes=raising(pynvml.NVML_ERROR_NOT_SUPPORTED),
        nvmlDeviceRegisterEvents=raising(pynvml.NVML_ERROR_NOT_SUPPORTED),
    )
    backend = PynvmlBackend(library)
    backend.init()
    assert backend.register_events() == {"GPU-11111111-2222-3333-4444-555555555555": False}
