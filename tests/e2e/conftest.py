"""Whole sandboxes (API server, simulated nodes, agents, optionally the operator) for end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.sim.background import BackgroundSandbox
from repairbot.sim.host import ActionTimes
from repairbot.sim.sandbox import SandboxConfig

FAST = ActionTimes(gpu_reset=0.1, driver_reload=0.1, reboot=0.5)

# The sandbox policy with test-sized clocks; each test overrides what it studies.
TEST_POLICY: dict[str, Any] = {
    "budget": {"maxUnavailable": 4},
    "breaker": {"maxFaults": 50, "window": "10m", "maxPerDomain": 10, "domainWindow": "5m", "settleTime": "0s"},
    "drain": {"timeout": "20s", "gracePeriodSeconds": 1},
    "actionTimeouts": {"gpu-reset": "5s", "driver-reload": "5s", "reboot": "10s", "power-cycle": "10s"},
    "lemon": {"maxRepairs": 3, "window": "1h"},
    "rebootsPerDay": 5,
    "validation": {"dcgmDiagLevel": 0, "timeout": "5s", "quietPeriod": "0s"},
}

SandboxFactory = Callable[..., BackgroundSandbox]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[SandboxFactory]:
    started: list[BackgroundSandbox] = []

    def make(
        *, nodes: int = 4, operator: bool = True, policy: dict[str, Any] | None = None, **extra: Any
    ) -> BackgroundSandbox:
        policy_path = tmp_path / f"policy-{len(started)}.yaml"
        policy_path.write_text(yaml.safe_dump(_merge(TEST_POLICY, policy or {})))
        config = SandboxConfig(
            state_dir=tmp_path / f"rb-state-{len(started)}",
            nodes=nodes,
            agent_interval=0.5,
            action_times=extra.pop("action_times", FAST),
            operator=operator,
            policy_path=policy_path,
            **extra,
        )
        sandbox = BackgroundSandbox(config)
        sandbox.start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: SandboxFactory) -> BackgroundSandbox:
    """Agents without an operator: tests play the operator's part by hand."""
    return make_sandbox(operator=False)


@pytest.fixture
def kube(sandbox: BackgroundSandbox) -> client.ApiClient:
    return api_client(sandbox.state["kubeconfig"])
