"""``repairbot sandbox --policy FILE``: the sandbox's operator runs on the file an SRE hands it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from e2e_support import eventually
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.model import GROUP, PLURAL, VERSION
from repairbot_sim.operator import SANDBOX_POLICY

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "repairbot.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_a_dry_run_policy_given_to_the_sandbox_records_the_plan_and_touches_nothing(tmp_path: Path) -> None:
    policy = yaml.safe_load(SANDBOX_POLICY.read_text()) | {"dryRun": True}
    policy_file = tmp_path / "dry-run.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    state_dir = tmp_path / "rb-state"
    sandbox = subprocess.Popen(
        _cli("sandbox", "--state-dir", str(state_dir), "--nodes", "2", "--policy", str(policy_file)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        assert sandbox.stdout is not None
        ready = json.loads(sandbox.stdout.readline() or "{}")
        assert ready.get("ready") is True, sandbox.stderr.read() if sandbox.stderr else ""
        done = subprocess.run(_cli("inject", "--state-dir", str(state_dir), "gpu-node-001", "xid:79"),
                              capture_output=True, text=True, timeout=60, env=_env())  # fmt: skip
        assert done.returncode == 0, done.stderr
        kube = api_client(ready["kubeconfig"])
        custom = client.CustomObjectsApi(kube)

        def finished() -> dict[str, Any] | None:
            items = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
            return next((r for r in items if (r.get("status") or {}).get("phase") == "Cancelled"), None)

        repair = eventually(finished, timeout=40, what="the dry-run repair")
        history = repair["status"]["history"]
        assert [e["step"] for e in history] == ["record-dry-run"]
        assert "dry-run (policy): nothing was touched" in history[0]["message"]
        assert not client.CoreV1Api(kube).read_node("gpu-node-001").spec.unschedulable
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.communicate(timeout=60)
