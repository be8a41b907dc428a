"""``make gpu-check``: a clean refusal where there is no GPU, and a report that says what the hardware said.

The refusal runs here for real (the build machines have no NVIDIA driver); the report writer is a pure
function of one run's readings, tested with a fake reading.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_tool() -> Any:
    """tools/ is scripts, not a package on the test path: load the script as ``make gpu-check`` runs it."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "tools" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


_tool = _load_tool()
NO_GPU_EXIT = _tool.NO_GPU_EXIT
GpuCheckReading = _tool.GpuCheckReading
GpuReading = _tool.GpuReading
StepResult = _tool.StepResult
nvml_unavailable = _tool.nvml_unavailable
render_report = _tool.render_report
report_path = _tool.report_path
summarize_agent = _tool.summarize_agent
summarize_pytest = _tool.summarize_pytest
AT = datetime(2026, 12, 2, 8, 15, 0, tzinfo=UTC)


@pytest.mark.skipif(nvml_unavailable() is None, reason="this machine has an NVIDIA GPU and driver")
def test_without_a_gpu_the_check_says_so_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "validation"
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gpu_check.py"), "--out-dir", str(out)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == NO_GPU_EXIT != 0
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    prefix = "gpu-check: no NVIDIA GPU/driver: "  # then NVML's why: "NVML Shared Library Not Found" here
    assert line.startswith(prefix) and len(line) > len(prefix), line
    assert not out.exists()


def fake_reading() -> Any:
    gpu = GpuReading(
        index=0, name="NVIDIA H200", uuid="GPU-6b1d3f2a-0c44-4d7e-9a51-3c1f2e5d7a10", pci="0000:2b:00.0",
        serial="1650123012345",
        signals={"ECC": "volatile_corrected=0, volatile_uncorrected=0, aggregate_corrected=3, aggregate_uncorrected=0",
                 "row remap": "corr=0, unc=0, pending=False, failure=False",
                 "PCIe link": "cur_gen=5, max_gen=5, cur_width=16, max_width=16, replay_counter=0",
                 "retired pages": "not supported / unknown"},
    )  # fmt: skip
    agent = StepResult("python -m repairbot.cli agent --once --json --node h200-1", 0, 3.2,
                       "exit 0; GPUHealthy=True (Healthy); findings: none; kernel log: none", '{"condition": {}}')
    tests = StepResult("python -m pytest -m gpu -q tests", 0, 41.0, "exit 0; 7 passed, 2100 deselected in 40s")
    return GpuCheckReading(AT, "h200-1", "550.127.05", "12.550.127.05", "12.4", (gpu,), agent, tests, 60.0,
                           "ok: events registered on 1 of 1 GPUs")  # fmt: skip


@pytest.mark.parametrize(
    "needle",
    ["# GPU check 2026-12-02 — NVIDIA H200", "| driver version | 550.127.05 |", "| CUDA version (driver) | 12.4 |",
     "| 0 | NVIDIA H200 | GPU-6b1d3f2a-0c44-4d7e-9a51-3c1f2e5d7a10 | 1650123012345 | 0000:2b:00.0 |",
     "- ECC: volatile_corrected=0", "- row remap: corr=0, unc=0, pending=False, failure=False",
     "- PCIe link: cur_gen=5, max_gen=5, cur_width=16", "- retired pages: not supported / unknown",
     "## NVML events (60 s of the agent's event wait)", "- none seen", "events registered on 1 of 1 GPUs",
     "GPUHealthy=True", "7 passed"],
)  # fmt: skip
def test_the_report_records_the_gpu_its_identity_and_what_each_signal_read(needle: str) -> None:
    assert needle in render_report(fake_reading())


def test_events_seen_during_the_wait_are_listed_instead_of_none() -> None:
    reading = fake_reading()
    seen = GpuCheckReading(**{**{f: getattr(reading, f) for f in reading.__dataclass_fields__},
                              "events": ("08:15:30 xid-79 on GPU 0 (serial 1650123012345): Xid 79",)})  # fmt: skip
    report = render_report(seen)
    assert "- 08:15:30 xid-79 on GPU 0 (serial 1650123012345): Xid 79" in report and "none seen" not in report


def test_the_report_is_dated_under_docs_validation() -> None:
    assert report_path(REPO / "docs" / "validation", AT) == REPO / "docs" / "validation" / "gpu-check-2026-12-02.md"


def test_the_step_summaries_read_the_agent_report_and_the_pytest_tail() -> None:
    body = '{"condition": {"status": "False", "reason": "GpuFault"}, "findings": [{"code": "ecc-dbe"}],' \
           ' "kernelLog": {"findings": [{"code": "xid-48"}]}}'  # fmt: skip
    assert summarize_agent(body, 1) == "exit 1; GPUHealthy=False (GpuFault); findings: ecc-dbe; kernel log: xid-48"
    assert summarize_agent("Traceback", 2) == "exit 2; output is not JSON"
    assert summarize_pytest("...\n===== 7 passed in 3.1s =====\n", 0) == "exit 0; 7 passed in 3.1s"
