"""What ``repairbot simulate`` leaves behind: the report, the plot, the numbers, and what it prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repairbot.cli import main
from repairbot_fleetsim.config import SimConfig
from repairbot_fleetsim.simulate import SimulationResult, simulate, write_outputs


@pytest.fixture(scope="module")
def small_run() -> SimulationResult:
    return simulate(SimConfig(nodes=512, days=14, seed=3))


def test_writes_report_plot_and_numbers(small_run: SimulationResult, tmp_path: Path) -> None:
    written = write_outputs(small_run, tmp_path / "out")
    assert sorted(path.name for path in written) == ["report.md", "report.png", "results.json"]
    assert (tmp_path / "out" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(data["strategies"]) == {"repairbot", "polling", "manual"}
    assert data["fleet"]["nodes"] == 512
    assert data["trace"]["digest"] == small_run.trace.digest
    assert data["policy"]["breaker"]["maxPerDomain"] == 2
    assert sum(category["count"] for category in data["failureMix"]["categories"]) == 419
    bot = data["strategies"]["repairbot"]
    assert bot["node_hours_out"] == pytest.approx(small_run.by_name("repairbot").node_hours_out, abs=0.001)


def test_the_report_shows_results_assumptions_and_how_to_reproduce(small_run: SimulationResult, tmp_path: Path) -> None:
    write_outputs(small_run, tmp_path)
    report = (tmp_path / "report.md").read_text()
    for heading in ("## Results", "## Failure mix", "## Assumptions", "## Reproduce"):
        assert heading in report
    assert "| Node-hours out of service |" in report
    assert "RepairBot | 5-min polling checker | Manual on-call" in report
    assert "Dubey et al. 2024" in report
    assert "reboot → power-cycle → quarantine" in report  # xid-79's ladder, as the policy has it
    assert "repairbot simulate --nodes 512 --days 14 --seed 3" in report
    assert "![" in report and "(report.png)" in report
    bot = small_run.by_name("repairbot")
    assert f"| Node-hours out of service | {bot.node_hours_out:,.0f} |" in report


def test_no_plot_writes_no_png_and_links_none(small_run: SimulationResult, tmp_path: Path) -> None:
    written = write_outputs(small_run, tmp_path, plot=False)
    assert not (tmp_path / "report.png").exists()
    assert "report.png" not in (tmp_path / "report.md").read_text()
    assert len(written) == 2


def test_cli_prints_the_comparison_and_the_files_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--nodes", "256", "--days", "7", "--seed", "5", "--out", str(tmp_path), "--no-plot"])
    out = capsys.readouterr().out
    assert code == 0
    for words in ("RepairBot", "5-min polling checker", "Manual on-call", "Node-hours out of service"):
        assert words in out
    assert f"wrote {tmp_path / 'report.md'}" in out
    assert f"wrote {tmp_path / 'results.json'}" in out
    assert json.loads((tmp_path / "results.json").read_text())["fleet"]["seed"] == 5


def test_cli_runs_under_a_policy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("ladders:\n  xid-79: [power-cycle, quarantine]\n")
    code = main(["simulate", "--nodes", "256", "--days", "7", "--out", str(tmp_path / "o"), "--no-plot",
                 "--policy", str(policy)])  # fmt: skip
    assert code == 0
    report = (tmp_path / "o" / "report.md").read_text()
    assert "power-cycle → quarantine" in report
    assert str(policy) in report
    capsys.readouterr()


def test_cli_refuses_a_bad_policy_and_a_zero_horizon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("ladders:\n  xid-79: [reboot-harder]\n")
    assert main(["simulate", "--out", str(tmp_path), "--policy", str(policy)]) == 2
    assert "policy" in capsys.readouterr().err
    assert main(["simulate", "--days", "0", "--out", str(tmp_path)]) == 2
    assert "--days" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()
