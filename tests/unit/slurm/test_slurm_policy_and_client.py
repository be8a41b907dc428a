"""``policy.slurm`` reads strictly (field-named errors), and the client parses what Slurm 22.05 prints."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from repairbot.policy import JobTimeoutMode, PolicyError, parse_policy
from repairbot.slurm import SlurmClient, SlurmError, SlurmErrorKind

LINE = (
    "NodeName=gpu-node-001 Arch=x86_64 CoresPerSocket=1 CPUAlloc=1 State=MIXED+DRAIN ThreadsPerCore=1 "
    "Partitions=gpu ExtSensorsTemp=n/s "
    "Reason=repairbot: xid-79 (gpurepair gpu-node-001-1) [root@2026-12-02T08:16:52]\n"
)


def test_the_slurm_section_reads_with_its_defaults() -> None:
    policy = parse_policy({"slurm": {"enabled": True, "slurmConf": "/etc/slurm/slurm.conf", "onJobTimeout": "requeue"}})
    assert policy.slurm.enabled and policy.slurm.slurm_conf == "/etc/slurm/slurm.conf"
    assert policy.slurm.on_job_timeout is JobTimeoutMode.REQUEUE and policy.slurm.scontrol == "scontrol"
    assert parse_policy({}).slurm.enabled is False


def test_slurm_errors_name_their_field() -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy({"slurm": {"enabled": "yes", "onJobTimeout": "cancel", "jobTimout": "1h"}})
    text = str(raised.value)
    assert "policy.slurm.enabled" in text and "policy.slurm.onJobTimeout" in text and "never cancels" in text
    assert 'policy.slurm.jobTimout: unknown key (did you mean "jobTimeout"?)' in text


class Runner:
    """Answers as the real clients do (their stdout, stderr and exit status), recording each command."""

    def __init__(self, *answers: tuple[int, str, str]) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        code, out, err = self.answers.pop(0)
        return subprocess.CompletedProcess(list(argv), code, out, err)


def test_the_node_line_and_its_jobs_are_read() -> None:
    runner = Runner((0, LINE, ""), (0, "17\n18\n", ""))
    node = SlurmClient(runner=runner, slurm_conf="/tmp/slurm.conf").node("gpu-node-001")
    assert node.state == "MIXED+DRAIN" and node.reason == "repairbot: xid-79 (gpurepair gpu-node-001-1)"
    assert node.jobs == ("17", "18")
    assert runner.calls[1][:3] == ["squeue", "-h", "-w"]


@pytest.mark.parametrize(
    ("said", "kind"),
    [
        ("slurm_load_node error: Unable to contact slurm controller (connect failure)", SlurmErrorKind.UNREACHABLE),
        ("slurm_update error: Access/permission denied", SlurmErrorKind.PERMISSION),
        ("Node nosuch not found", SlurmErrorKind.UNKNOWN_NODE),
        ("squeue: error: Invalid node name nosuch", SlurmErrorKind.UNKNOWN_NODE),
    ],
)
def test_failures_are_sorted_into_what_a_human_acts_on(said: str, kind: SlurmErrorKind) -> None:
    tries = 3 if kind is SlurmErrorKind.UNREACHABLE else 1  # only an unreachable controller is retried
    runner = Runner(*[(1, "", said)] * tries)
    with pytest.raises(SlurmError) as raised:
        SlurmClient(runner=runner).drain("nosuch", "repairbot: x")
    assert raised.value.kind is kind and len(runner.calls) == tries
