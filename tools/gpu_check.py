"""``make gpu-check``: RepairBot's NVML path against a real NVIDIA GPU, recorded under docs/validation/.

The fakes in the test suite raise real ``pynvml`` errors, but field layouts, event support and error codes
only come from hardware. On a machine with an NVIDIA GPU and driver this script, in under five minutes and
installing nothing beyond the venv:

1. reads every GPU once through the agent's own backend (model, UUID, board serial, ECC, row remap, retired
   pages, PCIe link, clocks-event reasons, NVLink, recovery action) plus driver, NVML and CUDA versions;
2. runs ``repairbot agent --once --json`` as an SRE would on the node;
3. runs the ``gpu``-marked tests (``pytest -m gpu``);
4. runs the agent's NVML event wait (:class:`~repairbot.detectors.nvml_events.NvmlEventSource` over the real
   backend) for 60 s and records what it saw, or that it saw nothing;

and writes ``docs/validation/gpu-check-YYYY-MM-DD.md``. Every NVML call is a read: nothing here resets a GPU,
changes persistence mode, clocks or ECC mode. Without a GPU or driver it prints one line, writes nothing and
exits 2, so a build machine can run it and learn only that.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
NO_GPU_EXIT = 2
EVENT_SECONDS = 60.0
AGENT_TIMEOUT_S = 90
PYTEST_TIMEOUT_S = 120


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU as the agent's backend read it; a signal it could not read says why instead."""

    index: int
    name: str
    uuid: str
    pci: str
    serial: str | None
    signals: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepResult:
    """One command this check ran: its exit status, how long it took and the part of its output worth keeping."""

    command: str
    returncode: int | None
    seconds: float
    summary: str
    output: str = ""


@dataclass(frozen=True, slots=True)
class GpuCheckReading:
    """Everything one run saw: the input of :func:`render_report`, a pure function of it."""

    at: datetime
    host: str
    driver: str | None
    nvml: str | None
    cuda: str | None
    gpus: tuple[GpuReading, ...]
    agent_once: StepResult
    gpu_tests: StepResult
    events_seconds: float
    events_health: str
    events: tuple[str, ...] = ()


def nvml_unavailable() -> str | None:
    """Why NVML cannot be used here (``NVML Shared Library Not Found`` …), None when it can."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as error:  # a missing library, driver or device all mean "no GPU to check here"
        return str(error) or type(error).__name__
    pynvml.nvmlShutdown()
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _cuda_version(raw: int | None) -> str | None:
    """NVML's CUDA driver version ``12040`` as ``12.4``."""
    return None if raw is None else f"{raw // 1000}.{(raw % 1000) // 10}"


def _describe(value: Any) -> str:
    """A reading as one Markdown-safe line: dataclasses as key=value, None as "not supported"."""
    if value is None:
        return "not supported / unknown"
    if hasattr(value, "__dataclass_fields__"):
        return ", ".join(f"{k}={getattr(value, k)}" for k in value.__dataclass_fields__)
    return str(value)


def _active(reasons: Any) -> list[str] | None:
    return None if reasons is None else list(reasons.active())


def read_gpus() -> tuple[str | None, str | None, str | None, tuple[GpuReading, ...]]:
    """Driver, NVML and CUDA versions and every GPU's signals, through the agent's own (read-only) backend."""
    import pynvml

    from repairbot.detectors.gpu_backend import GpuBackendError
    from repairbot.detectors.nvml import PynvmlBackend

    backend = PynvmlBackend()
    backend.init()
    try:
        versions: list[str | None] = []
        for call in (pynvml.nvmlSystemGetDriverVersion, pynvml.nvmlSystemGetNVMLVersion):
            try:
                versions.append(_text(call()))
            except pynvml.NVMLError:
                versions.append(None)
        try:
            cuda = _cuda_version(int(pynvml.nvmlSystemGetCudaDriverVersion_v2()))
        except (pynvml.NVMLError, AttributeError):
            cuda = None
        gpus = []
        for info in backend.gpus():
            reads: dict[str, Callable[[str], Any]] = {
                "ECC": backend.ecc_counts,
                "row remap": backend.row_remap,
                "retired pages": backend.retired_pages,
                "PCIe link": backend.pcie_link,
                "clocks-event reasons": lambda uuid: _active(backend.clock_event_reasons(uuid)),
                "NVLink": backend.nvlink_states,
                "recovery action": backend.recovery_action,
                "running processes": backend.running_pids,
            }
            signals: dict[str, str] = {}
            for name, read in reads.items():
                try:
                    signals[name] = "lost" if info.lost else _describe(read(info.uuid))
                except GpuBackendError as error:
                    signals[name] = f"error: {error}"
            gpus.append(GpuReading(info.index, info.name, info.uuid, info.pci, info.serial, signals))
        return versions[0], versions[1], cuda, tuple(gpus)
    finally:
        backend.shutdown()


def run_step(command: Sequence[str], timeout: int, summarize: Callable[[str, int], str]) -> StepResult:
    """Run one command with a deadline; never raises, so one failing step still leaves a report."""
    started = time.monotonic()
    shown = " ".join(command)
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or "") if isinstance(expired.stdout, str) else ""
        return StepResult(shown, None, time.monotonic() - started, f"timed out after {timeout} s", output)
    output = done.stdout + (f"\n{done.stderr}" if done.stderr.strip() else "")
    return StepResult(shown, done.returncode, time.monotonic() - started, summarize(done.stdout, done.returncode),
                      output)  # fmt: skip


def summarize_agent(stdout: str, returncode: int) -> str:
    """The ``--once`` report in one line: the GPUHealthy condition and the findings' codes."""
    try:
        body = json.loads(stdout)
    except json.JSONDecodeError:
        return f"exit {returncode}; output is not JSON"
    condition = body.get("condition") or {}
    codes = [f.get("code") for f in body.get("findings") or []]
    kernel = [f.get("code") for f in (body.get("kernelLog") or {}).get("findings") or []]
    return (f"exit {returncode}; GPUHealthy={condition.get('status')} ({condition.get('reason')}); "
            f"findings: {', '.join(codes) or 'none'}; kernel log: {', '.join(kernel) or 'none'}")  # fmt: skip


def summarize_pytest(stdout: str, returncode: int) -> str:
    """pytest's last line (``3 passed, 120 deselected in 4.2s``)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    return f"exit {returncode}; {lines[-1].strip('= ') if lines else 'no output'}"


def watch_events(seconds: float) -> tuple[str, tuple[str, ...]]:
    """The agent's NVML event loop over the real backend for ``seconds``: its health and every finding it raised."""
    from repairbot.detectors.nvml import PynvmlBackend
    from repairbot.detectors.nvml_events import NvmlEventSource

    backend = PynvmlBackend()
    source = NvmlEventSource(backend)
    stop = threading.Event()
    seen: list[str] = []

    def run() -> None:
        for finding in source.events(stop):
            seen.append(f"{datetime.now(UTC):%H:%M:%S} {finding.code} on {finding.gpu.describe() or 'node'}: "
                        f"{finding.message}")  # fmt: skip

    thread = threading.Thread(target=run, name="nvml-events", daemon=True)
    thread.start()
    stop.wait(seconds)
    stop.set()
    thread.join(timeout=5)
    backend.shutdown()
    health = source.health
    return f"{health.state.value}: {health.message}", tuple(seen)


def gather(event_seconds: float = EVENT_SECONDS) -> GpuCheckReading:
    python = sys.executable
    at = datetime.now(UTC)
    driver, nvml, cuda, gpus = read_gpus()
    host = socket.gethostname()
    agent = run_step([python, "-m", "repairbot.cli", "agent", "--once", "--json", "--node", host], AGENT_TIMEOUT_S,
                     summarize_agent)  # fmt: skip
    tests = run_step([python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"], PYTEST_TIMEOUT_S,
                     summarize_pytest)  # fmt: skip
    health, events = watch_events(event_seconds)
    return GpuCheckReading(at, host, driver, nvml, cuda, gpus, agent, tests, event_seconds, health, events)


def render_report(reading: GpuCheckReading) -> str:
    """The Markdown record of one run: what the hardware said, signal by signal, and how each check went."""
    models = sorted({gpu.name for gpu in reading.gpus}) or ["no GPU enumerated"]
    lines = [
        f"# GPU check {reading.at:%Y-%m-%d} — {', '.join(models)}",
        "",
        f"Run by `make gpu-check` on `{reading.host}` at {reading.at:%Y-%m-%d %H:%M:%S} UTC; read-only NVML queries.",
        "",
        "| what | value |",
        "|---|---|",
        f"| GPU model | {', '.join(models)} |",
        f"| GPUs | {len(reading.gpus)} |",
        f"| driver version | {reading.driver or 'unknown'} |",
        f"| NVML version | {reading.nvml or 'unknown'} |",
        f"| CUDA version (driver) | {reading.cuda or 'not given by NVML'} |",
        "",
        "## GPUs",
        "",
        "| index | model | UUID | board serial | PCI |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {g.index} | {g.name} | {g.uuid} | {g.serial or 'unknown'} | {g.pci} |" for g in reading.gpus]
    lines += ["", "## Signals, as the agent's backend read them", ""]
    for gpu in reading.gpus:
        lines += [f"### GPU {gpu.index} ({gpu.serial or gpu.uuid})", ""]
        lines += [f"- {name}: {_cell(value)}" for name, value in gpu.signals.items()]
        lines.append("")
    events = [f"- {event}" for event in reading.events] or ["- none seen"]
    lines += [
        f"## NVML events ({reading.events_seconds:.0f} s of the agent's event wait)",
        "",
        f"Event source health: {_cell(reading.events_health)}",
        "",
        *events,
        "",
        "## Checks",
        "",
        "| check | command | result | time |",
        "|---|---|---|---|",
        _step_row("agent --once", reading.agent_once),
        _step_row("gpu-marked tests", reading.gpu_tests),
        "",
        "<details><summary><code>repairbot agent --once --json</code> output</summary>",
        "",
        "```json",
        reading.agent_once.output.strip()[:20000],
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def _step_row(name: str, step: StepResult) -> str:
    return f"| {name} | `{_cell(step.command)}` | {_cell(step.summary)} | {step.seconds:.1f} s |"


def report_path(out_dir: Path, at: datetime) -> Path:
    return out_dir / f"gpu-check-{at:%Y-%m-%d}.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", default=str(REPO / "docs" / "validation"), help="where the report goes")
    parser.add_argument("--event-seconds", type=float, default=EVENT_SECONDS, help="how long to wait for events")
    args = parser.parse_args(argv)
    missing = nvml_unavailable()
    if missing is not None:
        print(f"gpu-check: no NVIDIA GPU/driver: {missing}", file=sys.stderr)
        return NO_GPU_EXIT
    os.environ.setdefault("PYTHONPATH", f"{REPO}{os.pathsep}{REPO / 'sim'}")
    reading = gather(args.event_seconds)
    path = report_path(Path(args.out_dir), reading.at)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(reading), encoding="utf-8")
    print(f"gpu-check: {len(reading.gpus)} GPU(s), agent {reading.agent_once.summary}; "
          f"tests {reading.gpu_tests.summary}; {len(reading.events)} event(s); report {path}")  # fmt: skip
    failed = reading.agent_once.returncode not in (0, 1) or reading.gpu_tests.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
