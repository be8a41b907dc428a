"""The policy's ``slurm`` section: how RepairBot reaches Slurm, and what it does with jobs on a node to repair.

On a node that is also a Slurm node (label ``repairbot.io/slurm-node=<name>``)
a Kubernetes cordon stops nothing: Slurm keeps scheduling onto the faulty
GPUs, and a reboot kills its jobs. So with the cordon the node is drained in
Slurm too, and before any destructive step the node must show no running
jobs. Jobs that outlive ``jobTimeout`` are held for a human (``onJobTimeout:
hold``, the default) or requeued (``requeue``); RepairBot never cancels a job.

Off by default: a cluster without Slurm has no ``scontrol``. The clients are
named by path; ``slurmConf`` (or the ``SLURM_CONF`` environment variable the
chart sets) says which controller they talk to. Like its sibling sections
this module imports nothing of ours but the policy's own modules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from repairbot.policy.durations import format_duration

if TYPE_CHECKING:
    from repairbot.policy.parse import _Section

SLURM_KEYS = ("enabled", "scontrol", "squeue", "slurmConf", "nodeLabel", "jobTimeout", "onJobTimeout")


class JobTimeoutMode(enum.StrEnum):
    """What to do with Slurm jobs still running on a node to repair once ``jobTimeout`` has passed."""

    HOLD = "hold"
    """The repair is Blocked (SlurmJobsRunning) until a human ends or requeues the jobs and resumes it."""
    REQUEUE = "requeue"
    """``scontrol requeue`` the jobs (they run again elsewhere, from their start or last checkpoint)."""


@dataclass(frozen=True, slots=True)
class SlurmPolicy:
    """How to reach Slurm and how long a repair waits for a node's jobs.

    An hour beside the drain's thirty minutes: a Slurm job cannot be evicted
    and is often a long training step that checkpoints on its own schedule;
    holding (not requeueing) is the default because a requeue restarts work
    a human may rather see finish.
    """

    enabled: bool = False
    scontrol: str = "scontrol"
    squeue: str = "squeue"
    slurm_conf: str | None = None
    node_label: str = "repairbot.io/slurm-node"
    job_timeout: timedelta = timedelta(hours=1)
    on_job_timeout: JobTimeoutMode = JobTimeoutMode.HOLD

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "scontrol": self.scontrol,
            "squeue": self.squeue,
            "slurmConf": self.slurm_conf,
            "nodeLabel": self.node_label,
            "jobTimeout": format_duration(self.job_timeout),
            "onJobTimeout": self.on_job_timeout.value,
        }


def read_slurm(section: _Section) -> SlurmPolicy:
    """``policy.slurm``; every problem is reported with its field path, then the default is used."""
    default = SlurmPolicy()
    mode_raw = section.data.get("onJobTimeout", default.on_job_timeout.value)
    try:
        mode = JobTimeoutMode(mode_raw)
    except ValueError:
        section.fail("onJobTimeout", mode_raw, "must be hold or requeue (RepairBot never cancels a Slurm job)")
        mode = default.on_job_timeout
    return SlurmPolicy(
        enabled=section.boolean("enabled", default.enabled),
        scontrol=section.text("scontrol", default.scontrol) or default.scontrol,
        squeue=section.text("squeue", default.squeue) or default.squeue,
        slurm_conf=section.text("slurmConf", None),
        node_label=section.text("nodeLabel", default.node_label, pattern=_LABEL_KEY,
                                hint="must be a label key such as repairbot.io/slurm-node") or default.node_label,
        job_timeout=section.duration("jobTimeout", default.job_timeout),
        on_job_timeout=mode,
    )  # fmt: skip


_LABEL_KEY = r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
