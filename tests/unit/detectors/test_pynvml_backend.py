"""PynvmlBackend against the real ``pynvml``.

On a machine without a driver (the build machines) only the first tests run:
init must fail cleanly with NoGpuDriver. The ``gpu``-marked tests run where
``nvmlInit()`` works (see ``tests/conftest.py``) and check the backend against
real hardware, which is where field layouts and error codes really come from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pynvml
import pytest

from repairbot.detectors.base import SignalState
from repairbot.detectors.gpu_backend import NoGpuDriver
from repairbot.detectors.nvml import NvmlHealthDetector, PynvmlBackend

UUID = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PCI = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def _driver_present() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_driver_present(), reason="this machine has an NVIDIA driver")
def test_init_without_driver_raises_no_gpu_driver() -> None:
    backend = PynvmlBackend()
    with pytest.raises(NoGpuDriver, match="this node has no GPU driver"):
        backend.init()
    backend.shutdown()  # never initialised: a no-op, not an error


@pytest.mark.skipif(_driver_present(), reason="this machine has an NVIDIA driver")
def test_poll_without_driver_is_unknown_without_findings() -> None:
    report = NvmlHealthDetector(PynvmlBackend()).poll()
    assert report.findings == []
    assert report.health is not None and report.health.state is SignalState.UNKNOWN


@pytest.fixture
def real_backend() -> Iterator[PynvmlBackend]:
    backend = PynvmlBackend()
    backend.init()
    yield backend
    backend.shutdown()


@pytest.mark.gpu
def test_enumeration_gives_uuid_and_normalised_pci(real_backend: PynvmlBackend) -> None:
    gpus = real_backend.gpus()
    assert len(gpus) == pynvml.nvmlDeviceGetCount()
    for gpu in gpus:
        assert not gpu.lost
        assert UUID.match(gpu.uuid), gpu.uuid
        assert PCI.match(gpu.pci), gpu.pci
        assert gpu.name


@pytest.mark.gpu
def test_every_reading_is_a_value_or_unknown(real_backend: PynvmlBackend) -> None:
    for gpu in real_backend.gpus():
        link = real_backend.pcie_link(gpu.uuid)
        assert link is None or (link.max_width or 0) >= 1
        rows = real_backend.row_remap(gpu.uuid)
        assert rows is None or rows.corr >= 0
        action = real_backend.recovery_action(gpu.uuid)
        assert action is None or 0 <= action <= 7
        pids = real_backend.running_pids(gpu.uuid)
        assert pids is None or all(pid > 0 for pid in pids)
        real_backend.ecc_counts(gpu.uuid)
        real_backend.retired_pages(gpu.uuid)
        real_backend.clock_event_reasons(gpu.uuid)
        real_backend.nvlink_states(gpu.uuid)


@pytest.mark.gpu
def test_one_full_poll_on_a_healthy_gpu_has_no_findings(real_backend: PynvmlBackend) -> None:
    report = NvmlHealthDetector(real_backend).poll()
    assert report.health is not None and report.health.state is SignalState.OK, report.health
    assert report.findings == [], [finding.message for finding in report.findings]


@pytest.mark.gpu
def test_event_registration_and_a_wait_that_times_out(real_backend: PynvmlBackend) -> None:
    support = real_backend.register_events()
    assert set(support) == {gpu.uuid for gpu in real_backend.gpus()}
    if any(support.values()):
        assert real_backend.wait_event(50) is None  # a healthy GPU has nothing to say
