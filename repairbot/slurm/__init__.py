"""Slurm's side of a node: read its state and jobs, drain, resume and requeue through Slurm's own clients.

A building block beside :mod:`repairbot.kube`: the operator composes it; the
pure machine never sees it (it reads :class:`repairbot.machine.slurm.SlurmView`,
which the operator fills from :class:`SlurmNode`).
"""

from repairbot.slurm.client import SlurmClient, SlurmError, SlurmErrorKind, SlurmNode

__all__ = ["SlurmClient", "SlurmError", "SlurmErrorKind", "SlurmNode"]
