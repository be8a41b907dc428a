"""Shared bits of RepairBot's benchmarks: machine info, percentiles, result files, tables."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"
LOAD_AT_START = os.getloadavg()


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            return int(info.readline().split()[1]) / 1024**2
    except (OSError, ValueError, IndexError):
        return float("nan")


def git_revision() -> str:
    """``<commit>`` or ``<commit>+dirty``: which code the numbers belong to."""
    root = Path(__file__).parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_gib(), 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": LOAD_AT_START,
        "load_average_at_end": os.getloadavg(),
    }


def command_line() -> str:
    """The command as typed from the repository root: ``.venv/bin/python benchmarks/x.py --quick``."""
    executable = Path(sys.executable)
    try:
        shown = str(executable.relative_to(Path.cwd()))
    except ValueError:
        shown = str(executable)
    return shlex.join([shown, *sys.argv])


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported number was observed)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def rss_mib(pid: int | str = "self", *, field: str = "VmRSS:") -> float:
    """Resident memory of a process now (this one by default; Linux /proc), in MiB.

    ``field="VmHWM:"`` gives the peak resident memory since the process started.
    """
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_result(name: str, body: dict[str, Any]) -> Path:
    """``results/<name>.json``, or ``results/<name>-quick.json`` for a quick run (so CI never
    overwrites the full-size numbers the README quotes)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    body = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "revision": git_revision(),
        "machine": machine_info(),
        **body,
    }
    path = RESULTS_DIR / f"{name}{'-quick' if body.get('quick') else ''}.json"
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    """``title``, the machine and the command, then one ``label  value`` line per row."""
    machine = machine_info()
    width = max(len(label) for label, _ in rows)
    print(f"\n{title}")
    print("-" * len(title))
    print(f"{machine['cpu']}, {machine['cpus']} cores, Python {machine['python']}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {machine['load_average_at_start'][0]:.2f}")  # fmt: skip
    print(f"$ {command_line()}\n")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def ms(seconds: float) -> str:
    """A duration for a table: ms below 10 s, seconds above."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def spread(stats: dict[str, float], keys: tuple[str, ...] = ("p50", "p90", "p99")) -> str:
    """``p50 12 ms / p90 30 ms / p99 41 ms`` from a :func:`summary`."""
    return " / ".join(f"{key} {ms(stats[key])}" for key in keys)
