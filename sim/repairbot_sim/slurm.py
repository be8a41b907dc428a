"""A real Slurm cluster on loopback: munged, one slurmctld and one slurmd per simulated node.

RepairBot drains Slurm nodes through the real ``scontrol`` talking to a real
``slurmctld``; nothing here imitates Slurm. Debian's packages (``slurmctld``,
``slurmd``, ``slurm-client``, ``munge``; ``make system-deps``) are started
unprivileged-style under one directory of their own — their own munge key and
socket, ``slurm.conf``, state, spool and logs — so a test or the sandbox never
touches the machine's ``/etc/slurm`` or ``/run/munge``. Debian's ``slurmd``
runs several daemons per host when each ``NodeName`` has its own ``Port`` and
``slurmd -N <name>`` names the one to be (checked on Slurm 22.05.8).

``sbatch --wrap "sleep 600" -w <node>`` stands for the training work that a
Kubernetes cordon does not stop; :meth:`SlurmWorld.submit` runs it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "scontrol", "squeue", "sbatch", "scancel")


def slurm_missing() -> str | None:
    """Why a real Slurm cannot be started here (a missing binary), or None when it can."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        return f"Slurm binaries not installed ({', '.join(missing)}); run `make system-deps` as root"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SlurmWorldError(RuntimeError):
    """The Slurm world did not come up (the daemons' logs are named in the message)."""


@dataclass
class SlurmWorld:
    """munged + slurmctld + one slurmd per node under ``root``; :meth:`start` and :meth:`stop` it."""

    root: Path
    nodes: tuple[str, ...]
    cpus: int = 2
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _ctld_port: int = 0

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """The environment Slurm's clients need to find this cluster (``SLURM_CONF``)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # --- lifecycle

    def start(self, timeout: float = 60.0) -> SlurmWorld:
        why = slurm_missing()
        if why:
            raise SlurmWorldError(why)
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("state", "log", *(f"spool/{node}" for node in self.nodes)):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._start_munge()
        self._ctld_port = _free_port()
        self.conf.write_text(self._slurm_conf(), encoding="utf-8")
        self.start_controller()
        for node in self.nodes:
            self._spawn(f"slurmd-{node}", ["slurmd", "-D", "-N", node, "-f", str(self.conf)])
        self.wait_until(lambda: all(self.node_state(n).split("+")[0] in ("IDLE", "MIXED", "ALLOCATED")
                                    for n in self.nodes), timeout, "every slurmd registered")  # fmt: skip
        return self

    def stop(self) -> None:
        for name in reversed(list(self._procs)):
            self._terminate(name)

    def start_controller(self, timeout: float = 30.0) -> None:
        """slurmctld in the foreground; its state (drains, jobs) survives a stop and start."""
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self.wait_until(lambda: self._ping(), timeout, "slurmctld answers")

    def stop_controller(self) -> None:
        """The controller goes away (an outage): every scontrol call fails until :meth:`start_controller`."""
        self._terminate("slurmctld")

    # --- the work that runs on the nodes

    def submit(self, node: str, command: str = "sleep 600") -> str:
        """``sbatch -w node``: a job on that node; returns its id once it runs."""
        out = self.run("sbatch", "--parsable", "-w", node, "-o", "/dev/null", "--wrap", command)
        job = out.strip().split(";")[0]
        self.wait_until(lambda: self.job_state(job) == "RUNNING", 30, f"job {job} running on {node}")
        return job

    def cancel(self, job: str) -> None:
        self.run("scancel", job)

    def job_state(self, job: str) -> str:
        """``RUNNING``, ``PENDING``, …; empty once the controller has forgotten the job."""
        return self.run("squeue", "-h", "-j", job, "-o", "%T", check=False).strip()

    def jobs_on(self, node: str) -> list[str]:
        return self.run("squeue", "-h", "-w", node, "-o", "%i", check=False).split()

    def node_state(self, node: str) -> str:
        """scontrol's ``State=`` (``IDLE``, ``MIXED+DRAIN``, ``IDLE+DRAIN``, ``DOWN+DRAIN``…)."""
        line = self.run("scontrol", "-o", "show", "node", node, check=False)
        for word in line.split():
            if word.startswith("State="):
                return word.removeprefix("State=")
        return ""

    def node_reason(self, node: str) -> str:
        return self.run("sinfo", "-h", "-N", "-n", node, "-o", "%E", check=False).strip()

    def drain(self, node: str, reason: str) -> None:
        """A human's drain (``scontrol update … State=DRAIN``)."""
        self.run("scontrol", "update", f"NodeName={node}", "State=DRAIN", f"Reason={reason}")

    def run(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30, check=False)
        if check and done.returncode != 0:
            raise SlurmWorldError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    @staticmethod
    def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except SlurmWorldError:
                pass
            time.sleep(0.2)
        raise SlurmWorldError(f"timed out waiting for {what}")

    # --- internals

    def _ping(self) -> bool:
        out = self.run("scontrol", "ping", check=False)
        return "is UP" in out

    def _start_munge(self) -> None:
        munge = self.root / "munge"
        munge.mkdir(mode=0o711, exist_ok=True)
        munge.chmod(0o711)  # munged checks that its socket's directory is reachable, not writable, by others
        key = munge / "munge.key"
        if not key.exists():
            key.write_bytes(secrets.token_bytes(1024))
            key.chmod(0o400)
        argv = ["munged", "-F", "--socket", str(self.munge_socket), "--key-file", str(key),
                "--log-file", str(munge / "munged.log"), "--pid-file", str(munge / "munged.pid"),
                "--seed-file", str(munge / "munged.seed"), "--num-threads", "10"]  # fmt: skip
        if os.geteuid() == 0:
            argv.append("--force")  # munged refuses root without it; the sandbox's daemons run as root
        self._spawn("munged", argv)
        self.wait_until(self.munge_socket.exists, 10, "munged's socket")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.root / "log" / f"{name}.out").open("ab")
        self._procs[name] = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        log.close()

    def _terminate(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def _slurm_conf(self) -> str:
        root = self.root
        lines = [
            "ClusterName=repairbot",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={self._ctld_port}",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "CredType=cred/munge",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool' / '%n'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd-%n.pid'}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd-%n.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=300",
            "InactiveLimit=0",
            "MinJobAge=5",
            "KillWait=2",
            "MessageTimeout=2",  # a client gives up on a down controller in ~1 s (Slurm's default 10 s: ~9 s)
            *self._node_lines(),
            "PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        return "\n".join(lines) + "\n"

    def _node_lines(self) -> Iterable[str]:
        for node in self.nodes:
            yield (f"NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={_free_port()} "
                   f"CPUs={self.cpus} RealMemory=1000 State=UNKNOWN")  # fmt: skip
