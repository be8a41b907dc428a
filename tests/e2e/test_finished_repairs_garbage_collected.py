"""Retention end to end: the active operator, as its own process, deletes finished repairs past the policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from e2e_support import TEST_POLICY, SandboxFactory, all_repairs, eventually, merge_policy, start_operator
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.model import GROUP, PLURAL, VERSION, format_time


def seed(kube: client.ApiClient, name: str, phase: str, ended_days_ago: int, **status: object) -> None:
    custom = client.CustomObjectsApi(kube)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": name, "labels": {"repairbot.io/node": "gpu-node-000"}},
            "spec": {"nodeName": "gpu-node-000", "source": "agent"}}  # fmt: skip
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    at = format_time(datetime.now(UTC) - timedelta(days=ended_days_ago))
    patch = {"status": {"phase": phase, "resolvedAt": at, "history": [{"step": "x", "outcome": "done", "at": at}],
                        **status}}  # fmt: skip
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, patch)


def test_the_leader_garbage_collects_finished_repairs_past_the_retention(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = make_sandbox(nodes=1, operator=False)
    kube = api_client(sandbox.state["kubeconfig"])
    for day in range(8):
        seed(kube, f"gpu-node-000-old-{day}", "Succeeded", 40 + day)
    seed(kube, "gpu-node-000-recent", "Succeeded", 1)
    seed(kube, "gpu-node-000-quarantined", "Quarantined", 90)
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(merge_policy(TEST_POLICY, {"retention": {"keepPerNode": 2, "ttl": "30d"}})))
    operator = start_operator(sandbox, policy_path, tmp_path / "operator.log", leader_election=True)
    try:

        def left() -> list[str] | None:
            names = sorted(r["metadata"]["name"] for r in all_repairs(kube))
            return names if len(names) == 3 else None

        assert eventually(left, timeout=60, interval=0.5, what="retention to delete the old repairs") == [
            "gpu-node-000-old-0", "gpu-node-000-quarantined", "gpu-node-000-recent",
        ]  # fmt: skip
    finally:
        operator.terminate()
        operator.wait(20)
