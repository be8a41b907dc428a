"""``repairbot demo`` end to end, as CI runs it: plain lines, every scenario checked, exit 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repairbot_sim.demo_scenarios import demo_scenarios


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_demo_plays_every_scenario_and_each_ends_as_expected(tmp_path: Path) -> None:
    started = time.monotonic()
    command = ["demo", "--no-live", "--speed", "2", "--state-dir", str(tmp_path / "rb")]
    done = subprocess.run(
        [sys.executable, "-m", "repairbot.cli", *command],
        capture_output=True, text=True, timeout=360, encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )  # fmt: skip
    wall = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out[-6000:]}\n{done.stderr[-3000:]}"
    assert wall < 180, f"the demo took {wall:.0f} s"

    # The plain view: timestamped lines, each injection, each repair opening, the acts.
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} +\+\d+\.\d+s >> gpu-node-002 +inject xid:79", out, re.MULTILINE)
    assert "Act 2: a storm" in out and "POST /webhook/grafana" in out and "webhook answered 202" in out
    # The summary: every scenario with its ✓, every repair with its reason, thread and ticket.
    expectations = out[out.index("Expectations") :]
    for scenario in demo_scenarios():
        line = next((line for line in expectations.splitlines() if scenario.title[:30] in line), "")
        assert line.strip().startswith("✓"), f"{scenario.key}: {line!r}"
    assert "all 8 scenarios ended as expected" in out
    repairs = out[out.index("Repairs") : out.index("Expectations")]
    for node in ("gpu-node-001", "gpu-node-002", "gpu-node-005", "gpu-node-006", "gpu-node-009", "gpu-node-010",
                 "gpu-node-012", "gpu-node-013", "gpu-node-014", "gpu-node-015"):  # fmt: skip
        assert node in repairs
    assert "gpu-node-003" not in repairs  # the application's Xid 13 opened no repair
    assert "OPS-" in repairs and "in thread]" in repairs
    assert "--kubeconfig" in out and "get gpurepairs" in out
