"""``repairbot sandbox --slurm``: a real Slurm beside the emulated cluster, every simulated node a Slurm node.

Apart from :mod:`repairbot_sim.sandbox` so the sandbox reads on its own: this
starts the :class:`~repairbot_sim.slurm.SlurmWorld` (munged, slurmctld, one
slurmd per node), labels the nodes ``repairbot.io/slurm-node=<name>`` before
they are created, and hands the operator a policy with ``slurm.enabled`` and
the world's ``slurm.conf``. ``state.json`` gains ``slurmConf``: export it as
``SLURM_CONF`` and ``sinfo``, ``squeue`` and ``sbatch -w gpu-node-001 --wrap
"sleep 600"`` talk to the sandbox's Slurm.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from repairbot_sim.slurm import SlurmWorld

SLURM_LABEL = "repairbot.io/slurm-node"
SOCKET_PATH_MAX = 100
"""A Unix socket path must fit in 108 bytes; a deep state directory puts Slurm in a short temporary one."""


def slurm_root(state_dir: Path) -> Path:
    root = (state_dir / "slurm").resolve()
    if len(str(root / "munge" / "munge.socket")) > SOCKET_PATH_MAX:
        return Path(tempfile.mkdtemp(prefix="rb-slurm-"))
    return root


def start_slurm(state_dir: Path, nodes: Iterable[str]) -> SlurmWorld:
    """The sandbox's Slurm, started: blocks until every slurmd has registered (a second or two)."""
    return SlurmWorld(slurm_root(state_dir), tuple(nodes)).start()


def label_slurm_nodes(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cluster's objects with every Node labelled as the Slurm node of the same name."""
    for obj in objects:
        if obj.get("kind") == "Node":
            labels = obj.setdefault("metadata", {}).setdefault("labels", {})
            labels[SLURM_LABEL] = obj["metadata"]["name"]
    return objects


def slurm_policy(base: Path, conf: Path, out: Path) -> Path:
    """``base`` with ``slurm.enabled`` and ``slurmConf`` set (other slurm keys kept), written to ``out``."""
    data = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
    data["slurm"] = {**(data.get("slurm") or {}), "enabled": True, "slurmConf": str(conf)}
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out
