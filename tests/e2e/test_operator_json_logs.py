"""An operator run with ``--log-format json``: a log pipeline finds a repair's steps by node, repair and phase."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from e2e_support import TEST_POLICY, SandboxFactory, finished_repair, inject, phase_of, start_operator

from repairbot.kube.client import api_client


def test_a_reboot_repair_logged_as_json_lines_names_node_repair_phase_and_action(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = make_sandbox(nodes=1, operator=False)
    kube = api_client(sandbox.state["kubeconfig"])
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(TEST_POLICY))
    log = tmp_path / "operator.log"
    operator = start_operator(sandbox, policy_path, log, options=("--log-format", "json"))
    try:
        inject(sandbox, "gpu-node-000", "xid:79")
        repair = finished_repair(kube, "gpu-node-000", timeout=60)
    finally:
        operator.terminate()
        operator.wait(20)
    assert phase_of(repair) == "Succeeded", repair["status"]

    lines = [json.loads(text) for text in log.read_text(encoding="utf-8").splitlines() if text.strip()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    name = repair["metadata"]["name"]
    steps = [line for line in lines if line["message"].startswith("repair step") and line.get("repair") == name]
    assert {line["node"] for line in steps} == {"gpu-node-000"}
    assert {"Cordoned", "Succeeded"} <= {line["phase"] for line in steps}, steps
    assert "reboot" in {line.get("action") for line in steps}
    assert any(line["logger"].startswith("kopf") for line in lines)  # kopf's own lines, in the same format
