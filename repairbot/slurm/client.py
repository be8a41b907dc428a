"""``scontrol`` and ``squeue`` as a typed client: the commands an SRE would type, run for them.

Why the command-line clients and not slurmrestd: every Slurm site has them,
they authenticate with the site's munge key (or JWT) and read the site's
``slurm.conf``, so RepairBot needs no token of its own and no Kubernetes RBAC
for Slurm — ``scontrol`` talks to ``slurmctld`` directly. Slurm 22.05's
``scontrol`` has no ``--json`` without its data-parser plugins, so the node is
read with ``scontrol -o show node`` (one line, ``Reason=`` last) and the jobs
with ``squeue -h -o %i``.

Errors are sorted into what a human acts on (:class:`SlurmErrorKind`): an
unreachable controller is retried here (tenacity: three tries, short
backoff — a down controller costs each client call about nine seconds of its
own retrying, so the operator backs off between reconciles rather than here);
a refusal or an unknown node is not retried, it is reported.
"""

from __future__ import annotations

import enum
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

RUNNING_STATES = "CF,CG,R,S"
"""squeue's short names of jobs that hold a node's resources: configuring, completing, running, suspended."""

Runner = Callable[[Sequence[str], dict[str, str], float], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """The real runner: the client as a child process, its output as text."""
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout, check=False)


class SlurmErrorKind(enum.StrEnum):
    UNREACHABLE = "ControllerUnreachable"
    PERMISSION = "PermissionDenied"
    UNKNOWN_NODE = "UnknownNode"
    FAILED = "CommandFailed"


class SlurmError(Exception):
    """A Slurm command failed; ``kind`` says what kind of failure, the message what the client said."""

    def __init__(self, kind: SlurmErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def retryable(self) -> bool:
        return self.kind is SlurmErrorKind.UNREACHABLE


@dataclass(frozen=True, slots=True)
class SlurmNode:
    """One node as ``scontrol`` shows it, with the job ids ``squeue`` lists on it."""

    name: str
    state: str
    """scontrol's ``State=``: a base state and ``+`` flags (``MIXED+DRAIN``, ``IDLE+DRAIN``, ``DOWN*+DRAIN``)."""
    reason: str = ""
    jobs: tuple[str, ...] = ()


def _classify(text: str) -> SlurmErrorKind:
    lowered = text.lower()
    if "unable to contact slurm controller" in lowered or "connection refused" in lowered or "timed out" in lowered:
        return SlurmErrorKind.UNREACHABLE
    if ("access" in lowered and "denied" in lowered) or "permission denied" in lowered or "authentication" in lowered:
        return SlurmErrorKind.PERMISSION
    if "not found" in lowered or "invalid node name" in lowered:
        return SlurmErrorKind.UNKNOWN_NODE
    return SlurmErrorKind.FAILED


_REASON = re.compile(r" Reason=(?P<reason>.*?)(?: \[(?P<who>[^\]@]*)@[^\]]*\])?\s*$")


@dataclass
class SlurmClient:
    """Slurm's clients at ``scontrol``/``squeue``, reading ``slurm_conf`` (None: ``SLURM_CONF`` or their default)."""

    scontrol: str = "scontrol"
    squeue: str = "squeue"
    slurm_conf: str | None = None
    timeout: float = 30.0
    runner: Runner = field(default=run_command)

    def node(self, name: str) -> SlurmNode:
        """The node's state and reason, and the jobs running on it."""
        line = self._run(self.scontrol, "-o", "show", "node", name)
        state = next((word.removeprefix("State=") for word in line.split() if word.startswith("State=")), "")
        if not state:
            raise SlurmError(SlurmErrorKind.UNKNOWN_NODE, f"Slurm node {name}: scontrol shows no state: {line[:200]}")
        found = _REASON.search(line.rstrip("\n"))
        reason = found.group("reason") if found else ""
        return SlurmNode(name, state, reason, self.jobs_on(name))

    def jobs_on(self, name: str) -> tuple[str, ...]:
        out = self._run(self.squeue, "-h", "-w", name, "-t", RUNNING_STATES, "-o", "%i")
        return tuple(out.split())

    def drain(self, name: str, reason: str) -> None:
        """``State=DRAIN``: running jobs go on, no new one starts (DRAINING, then DRAINED once they ended)."""
        self._run(self.scontrol, "update", f"NodeName={name}", "State=DRAIN", f"Reason={reason}")

    def resume(self, name: str) -> None:
        self._run(self.scontrol, "update", f"NodeName={name}", "State=RESUME")

    def requeue(self, jobs: Sequence[str]) -> None:
        """``scontrol requeue``: the jobs stop and go back to the queue (never a cancel)."""
        if jobs:
            self._run(self.scontrol, "requeue", ",".join(jobs))

    @retry(
        retry=retry_if_exception(lambda error: isinstance(error, SlurmError) and error.retryable),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.2, max=1.0),
        reraise=True,
    )
    def _run(self, *argv: str) -> str:
        env = dict(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        try:
            done = self.runner(argv, env, self.timeout)
        except FileNotFoundError as error:
            raise SlurmError(SlurmErrorKind.FAILED, f"{argv[0]} not found: {error}") from error
        except subprocess.TimeoutExpired as error:
            said = f"{' '.join(argv)} timed out after {error.timeout}s"
            raise SlurmError(SlurmErrorKind.UNREACHABLE, said) from error
        if done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[-1]
            raise SlurmError(_classify(said), f"{' '.join(argv[:2])}: {said}")
        return done.stdout
