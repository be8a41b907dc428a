"""Before a rung's action on a Slurm node: wait for its running jobs, then hold for a human or requeue them.

A Slurm job cannot be evicted as a pod can, and a reboot kills it; so once the
Kubernetes drain is done, :func:`wait_for_jobs` keeps the repair Draining
while ``squeue`` lists jobs on the node (the drain in Slurm lets them finish
and starts none), names them once in the history, and after the policy's
``slurm.jobTimeout`` either blocks the repair for a human (``hold``) or asks
the shell to requeue them (``requeue``, ``Decision.slurm_requeue``). Never a
cancel. Apart from :mod:`repairbot.machine.slurm` (whose types the facts
carry) so the import graph stays one way: this module reads the machine's
builders; that one reads nothing of the machine.
"""

from __future__ import annotations

from datetime import timedelta

from repairbot.machine.blockers import BlockReason, Verdict
from repairbot.machine.decision import POLL, Decision, Step
from repairbot.machine.repair_view import optional_time
from repairbot.machine.transitions import Run
from repairbot.model import Phase
from repairbot.policy import JobTimeoutMode

STEP_WAIT = "slurm-wait"
STEP_REQUEUE = "slurm-requeue"
SLURM_POLL = timedelta(seconds=5)
"""How soon to look at the node's jobs again (a job's end wakes nothing in Kubernetes)."""


def wait_for_jobs(run: Run) -> Decision | None:
    """Before the rung's action: None when Slurm runs nothing there (or cannot be read), else wait/hold/requeue.

    An unreadable Slurm does not hold the repair: Slurm errors never block the
    Kubernetes side (the SlurmError condition says so on the GPURepair).
    """
    slurm = run.facts.slurm
    if slurm is None or not slurm.readable or not slurm.jobs:
        return None
    rung = run.rung
    action = rung.action if rung else None
    policy = run.policy.slurm
    jobs = ", ".join(slurm.jobs)
    started_entry = run.repair.last_entry(Step.START_DRAIN.value)
    started = (optional_time(str(started_entry["at"])) if started_entry else None) or run.now
    waited = run.now - started
    if waited < policy.job_timeout:
        message = f"node {run.repair.node}: waiting for Slurm jobs {jobs} to end before {action}"
        last = run.repair.last_entry(STEP_WAIT)
        if last is not None and last.get("message") == message:
            return Decision(Step.CONTINUE_DRAIN, message, requeue_after=SLURM_POLL)
        patch = run.base(Phase.DRAINING, message, run.entry(STEP_WAIT, "waiting", message, action))
        return Decision(Step.CONTINUE_DRAIN, message, patch, event="WaitingForSlurmJobs", requeue_after=SLURM_POLL)
    after = _minutes(waited)
    if policy.on_job_timeout is JobTimeoutMode.REQUEUE:
        message = f"node {run.repair.node}: Slurm jobs {jobs} still running after {after}; requeued them"
        last = run.repair.last_entry(STEP_REQUEUE)
        if last is not None and last.get("message") == message:
            return Decision(Step.CONTINUE_DRAIN, f"waiting for requeued Slurm jobs {jobs} to leave", requeue_after=POLL)
        patch = run.base(Phase.DRAINING, message, run.entry(STEP_REQUEUE, "done", message, action))
        return Decision(Step.CONTINUE_DRAIN, message, patch, event="SlurmJobsRequeued", requeue_after=SLURM_POLL,
                        slurm_requeue=slurm.jobs)  # fmt: skip
    message = (f"node {run.repair.node}: Slurm jobs {jobs} still running after {after}; held for a human "
               "(end or requeue them in Slurm, then resume the repair)")  # fmt: skip
    return run.block(BlockReason(Verdict.BLOCK, "SlurmJobsRunning", message), step=Step.DRAIN_TIMED_OUT)


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes}m" if minutes else f"{int(delta.total_seconds())}s"
