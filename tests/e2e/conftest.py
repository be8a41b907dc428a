"""A whole sandbox (API server, simulated nodes, agents) for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.sim.background import BackgroundSandbox
from repairbot.sim.host import ActionTimes
from repairbot.sim.sandbox import SandboxConfig


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[BackgroundSandbox]:
    config = SandboxConfig(
        state_dir=tmp_path / "rb-state",
        nodes=4,
        agent_interval=0.5,
        action_times=ActionTimes(gpu_reset=0.1, driver_reload=0.1, reboot=0.5),
    )
    with BackgroundSandbox(config) as running:
        yield running


@pytest.fixture
def kube(sandbox: BackgroundSandbox) -> client.ApiClient:
    return api_client(sandbox.state["kubeconfig"])
