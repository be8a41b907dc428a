"""Whole sandboxes (API server, simulated nodes, agents, optionally the operator) for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import FAST, TEST_POLICY, SandboxFactory, component_denials, merge_policy
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot_sim.background import BackgroundSandbox
from repairbot_sim.sandbox import SandboxConfig


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[SandboxFactory]:
    started: list[BackgroundSandbox] = []

    def make(
        *, nodes: int = 4, operator: bool = True, policy: dict[str, Any] | None = None, **extra: Any
    ) -> BackgroundSandbox:
        policy_path = tmp_path / f"policy-{len(started)}.yaml"
        policy_path.write_text(yaml.safe_dump(merge_policy(TEST_POLICY, policy or {})))
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
    refused: list[str] = []
    denied: list[str] = []
    for sandbox in started:
        refused += refused_for_its_form(sandbox)
        if sandbox.sandbox.config.rbac is None:  # a test that narrowed the RBAC checks its own denials
            denied += component_denials(sandbox)
        sandbox.stop()
    assert not refused, f"the strict fake Slack refused messages RepairBot sent: {refused}"
    # Every component runs under the chart's RBAC: a request it was refused is a rule the chart lacks
    # (or a call the code should not make), whether or not the component coped with the 403.
    assert not denied, "RepairBot components were denied by the chart's RBAC:\n" + "\n".join(denied)


FORM_ERRORS = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long", "no_text"})


def refused_for_its_form(sandbox: BackgroundSandbox) -> list[str]:
    """Slack refusals of a message's form that no test asked for: every message RepairBot sends must pass as is."""
    slack = sandbox.sandbox.slack
    if slack is None or slack.refusals:  # a test that makes Slack refuse on purpose checks its own outcome
        return []
    return [f"{r['path']}: {r.get('error')}" for r in slack.recorded if r.get("error") in FORM_ERRORS]


@pytest.fixture
def sandbox(make_sandbox: SandboxFactory) -> BackgroundSandbox:
    """Agents without an operator: tests play the operator's part by hand."""
    return make_sandbox(operator=False)


@pytest.fixture
def kube(sandbox: BackgroundSandbox) -> client.ApiClient:
    return api_client(sandbox.state["kubeconfig"])
