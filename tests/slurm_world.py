"""The real Slurm world (:class:`repairbot_sim.slurm.SlurmWorld`) as a pytest helper, skipping where absent.

Shared by the integration and end-to-end suites (pytest puts ``tests/`` on ``sys.path``). The
world lives under a short temporary directory of its own: munge's socket path must fit a Unix
socket's 108 bytes, which pytest's ``tmp_path`` can exceed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from repairbot_sim.slurm import SlurmWorld, slurm_missing


@contextmanager
def slurm_world(nodes: tuple[str, ...]) -> Iterator[SlurmWorld]:
    """munged + slurmctld + one slurmd per node, started for one test and always stopped after it."""
    why = slurm_missing()
    if why:
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="rb-slurm-"))
    world = SlurmWorld(root, nodes)
    try:
        world.start()
        yield world
    finally:
        world.stop()
        shutil.rmtree(root, ignore_errors=True)
