"""The ``repairbot`` command as an SRE types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from repairbot import __version__
from repairbot.cli import main

DMESG = """\
[ 1021.331120] NVRM: GPU at PCI:0000:2b:00: GPU-6b1d3f2a-0c44-4d7e-9a51-3c1f2e5d7a10
[ 1021.331122] NVRM: GPU Board Serial Number: 1650123012345
[ 1021.331180] NVRM: Xid (PCI:0000:2b:00): 79, pid=4411, name=python, GPU has fallen off the bus.
[ 1030.000001] eth0: link up
[ 1042.100000] NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp Exception
"""


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repairbot.cli", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"repairbot {__version__}"


def test_help_lists_subcommands() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for command in ("sandbox", "demo", "kmsg"):
        assert command in done.stdout


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: repairbot" in capsys.readouterr().out


def test_kmsg_json_from_stdin() -> None:
    done = run_cli("kmsg", "--json", stdin=DMESG)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["kind"], r["code"]) for r in records] == [("xid", 79), ("xid", 13)]
    fatal, app = records
    assert fatal["pci"] == "0000:2b:00.0"
    assert fatal["gpu"]["uuid"] == "GPU-6b1d3f2a-0c44-4d7e-9a51-3c1f2e5d7a10"
    assert fatal["action"] == "reboot" and fatal["applicationClass"] is False
    assert app["action"] == "none" and app["applicationClass"] is True
    assert fatal["deferred"] is False and app["deferred"] is False
    assert fatal["line"].endswith("GPU has fallen off the bus.")


def test_kmsg_json_marks_a_pending_row_remap_deferred() -> None:
    """Xid 63 (a row marked for remapping): NVIDIA says reset "at the next convenient time", so it waits."""
    line = "NVRM: Xid (PCI:0000:2b:00): 63, pid=0, Row Remapper: New row marked for remapping, reset gpu to activate.\n"
    done = run_cli("kmsg", "--json", stdin=line + DMESG)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["code"], r["deferred"]) for r in records] == [(63, True), (79, False), (13, False)]


def test_kmsg_missing_file_is_a_clear_error() -> None:
    done = run_cli("kmsg", "/nonexistent/kern.log")
    assert done.returncode == 1
    assert "cannot read /nonexistent/kern.log" in done.stderr


BAD_POLICY = """\
budget:
  maxUnavailable: "150%"
brekaer: {}
drain:
  timeout: 5 minutes
"""


def test_policy_check_names_every_bad_field(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "policy.yaml"
    path.write_text(BAD_POLICY)
    done = run_cli("policy", "check", str(path))
    assert done.returncode == 2
    assert 'policy.budget.maxUnavailable: "150%" is over 100%' in done.stdout
    assert 'policy.brekaer: unknown key (did you mean "breaker"?)' in done.stdout
    assert "policy.drain.timeout" in done.stdout


def test_policy_check_prints_the_effective_policy() -> None:
    done = run_cli("policy", "check", "sim/repairbot_sim/data/policy-sandbox.yaml")
    assert done.returncode == 0, done.stdout
    assert "maxUnavailable: 3" in done.stdout and "settleTime: 2s" in done.stdout


def test_operator_refuses_to_start_on_a_bad_policy(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "policy.yaml"
    path.write_text(BAD_POLICY)
    done = run_cli("operator", "--policy", str(path), "--kubeconfig", "/nonexistent", "--no-leader-election")
    assert done.returncode == 2
    assert "bad policy" in done.stdout and "policy.budget.maxUnavailable" in done.stdout


def test_agent_refuses_a_negative_first_start_lookback() -> None:
    done = run_cli("agent", "--node", "n1", "--kmsg-first-start-lookback", "-5")
    assert done.returncode == 2
    assert "--kmsg-first-start-lookback" in done.stderr and "0 seconds or more" in done.stderr


def test_agent_refuses_a_first_start_lookback_that_is_not_a_number() -> None:
    done = run_cli("agent", "--node", "n1", "--kmsg-first-start-lookback", "ten")
    assert done.returncode == 2
    assert "must be a number of seconds" in done.stderr


def test_sandbox_refuses_to_start_on_a_bad_policy_naming_file_and_fields(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "policy.yaml"
    path.write_text(BAD_POLICY)
    state_dir = Path(str(tmp_path)) / "rb-state"
    done = run_cli("sandbox", "--state-dir", str(state_dir), "--policy", str(path))
    assert done.returncode == 2
    assert f"repairbot sandbox: bad policy {path}:" in done.stderr
    assert 'policy.budget.maxUnavailable: "150%" is over 100%' in done.stderr and "policy.drain.timeout" in done.stderr
    assert not (state_dir / "state.json").exists()  # nothing was started
    missing = run_cli("sandbox", "--state-dir", str(state_dir), "--policy", str(path.with_name("nope.yaml")))
    assert missing.returncode == 2 and "nope.yaml: cannot be read" in missing.stderr


def test_sandbox_help_offers_the_policy_flag() -> None:
    done = run_cli("sandbox", "--help")
    assert done.returncode == 0 and "--policy FILE" in done.stdout


@pytest.mark.parametrize("command", ["demo", "sandbox", "inject", "simulate"])
def test_a_simulator_command_where_only_the_product_is_installed_says_how_to_get_it(command: str) -> None:
    """As in the operator image: no ``repairbot-sim`` distribution, so no plugin registers these commands."""
    root = str(Path(__file__).resolve().parents[2])
    # -S: no site-packages, so no installed distribution (the simulator's entry points included) is visible.
    only_the_product = f"import sys; sys.path.insert(0, {root!r}); from repairbot.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-S", "-c", only_the_product, command], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"repairbot {command}: this command comes with the simulated world" in done.stderr
    assert "pip install ./sim" in done.stderr


def test_the_operator_cannot_be_given_two_prometheus_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["operator", "--prometheus-token-file", "/t", "--prometheus-basic-auth-file", "/b"])
    assert "not allowed with argument" in capsys.readouterr().err
