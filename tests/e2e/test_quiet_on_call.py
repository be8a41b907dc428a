"""On-call stays quiet while RepairBot reboots a node, and the dashboard shows why the node went out.

A sandbox wired to Debian's real Alertmanager (``repairbot sandbox --alertmanager URL``) and the fake
Grafana (``--grafana``): a fault drains and reboots a node; from the drain until the node is back the
node's own alerts are silenced by a silence RepairBot made, which is expired when the repair ends; every
history step is one Grafana annotation, once. Skipped where ``prometheus-alertmanager`` is absent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from child_servers import ChildServers, start_alertmanager
from e2e_support import (
    TEST_POLICY,
    SandboxFactory,
    eventually,
    finished_repair,
    inject,
    merge_policy,
    phase_of,
    repairs_of,
    start_operator,
)

from repairbot.kube.client import api_client
from repairbot.notify.alertmanager import Silence
from repairbot_sim.host import ActionTimes

AM_CONFIG = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"
NODE = "gpu-node-001"
SLOW = ActionTimes(gpu_reset=0.5, driver_reload=0.5, reboot=3.0)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    with ChildServers() as children:
        yield start_alertmanager(children, tmp_path / "alertmanager", AM_CONFIG)


def ours_for(url: str, node: str) -> list[Silence]:
    found = [Silence.from_api(s) for s in httpx.get(f"{url}/api/v2/silences").json()]
    return [s for s in found if s.ours and any(m.name == "node" and m.value == node for m in s.matchers)]


def test_a_reboot_is_silenced_from_drain_to_return_and_every_step_is_annotated_once(
    make_sandbox: SandboxFactory, alertmanager: str
) -> None:
    sandbox = make_sandbox(nodes=2, action_times=SLOW, alertmanager_url=alertmanager, grafana=True,
                           policy={"ladders": {"xid-79": ["reboot"]}})  # fmt: skip
    state = json.loads((Path(sandbox.state["kubeconfig"]).parent / "state.json").read_text())
    assert state["alertmanager"] == alertmanager and state["grafana"]
    kube = api_client(sandbox.state["kubeconfig"])
    inject(sandbox, NODE, "xid:79")

    def held_while_running() -> tuple[dict[str, Any], Silence] | None:
        for repair in repairs_of(kube, NODE):
            record = (repair.get("status") or {}).get("silence")
            live = [s for s in ours_for(alertmanager, NODE) if s.state == "active"]
            if record and live and phase_of(repair) not in {"Succeeded", "Failed", "Quarantined", "Cancelled"}:
                return repair, live[0]
        return None

    repair, silence = eventually(held_while_running, 30, what="a live silence while the node is out")
    assert repair["status"]["silence"]["id"] == silence.id
    assert any(m.name == "alertname" and m.is_regex and "KubeNodeNotReady" in m.value for m in silence.matchers)
    assert repair["metadata"]["name"] in silence.comment

    done = finished_repair(kube, NODE, timeout=60)
    assert phase_of(done) == "Succeeded"

    def expired() -> dict[str, Any] | None:
        obj = next(r for r in repairs_of(kube, NODE) if r["metadata"]["name"] == done["metadata"]["name"])
        record = obj["status"].get("silence") or {}
        live = [s for s in ours_for(alertmanager, NODE) if s.state != "expired"]
        return obj if record.get("expiredAt") and not live else None

    obj = eventually(expired, 20, what="the silence expired once the node is back")
    assert obj["status"]["silence"]["id"] in {s.id for s in ours_for(alertmanager, NODE)}

    grafana = sandbox.sandbox.grafana
    assert grafana is not None

    def annotated() -> list[Any] | None:
        status = next(r for r in repairs_of(kube, NODE) if r["metadata"]["name"] == done["metadata"]["name"])["status"]
        history = status["history"]
        marks = [a for a in grafana.annotations if f"repair:{done['metadata']['name']}" in a.tags]
        sent = (status.get("deliveries") or {}).get("grafana", {}).get("sent")
        return marks if sent == len(history) and len(marks) == len(history) else None

    marks = eventually(annotated, 20, what="one annotation per history step")
    history = next(r for r in repairs_of(kube, NODE) if r["metadata"]["name"] == done["metadata"]["name"])[
        "status"]["history"]  # fmt: skip
    assert [a.text for a in sorted(marks, key=lambda a: a.id)] == [h["message"] for h in history]
    assert all({"repairbot", NODE} <= set(a.tags) for a in marks)
    assert any("Draining" in a.tags for a in marks) and any("Succeeded" in a.tags for a in marks)


def test_an_operator_killed_mid_repair_is_replaced_by_one_that_keeps_and_expires_the_same_silence(
    make_sandbox: SandboxFactory, alertmanager: str, tmp_path: Path
) -> None:
    """``repairbot operator`` as its own process, SIGKILLed while the node is out: the next one finds the silence
    on the GPURepair, never makes a second, and expires it when the node is back."""
    sandbox = make_sandbox(operator=False, action_times=ActionTimes(gpu_reset=0.5, driver_reload=0.5, reboot=6.0),
                           pod_termination_seconds=1)  # fmt: skip
    kube = api_client(sandbox.state["kubeconfig"])
    policy_path = tmp_path / "policy.yaml"
    policy = merge_policy(TEST_POLICY, {"ladders": {"xid-79": ["reboot"]}, "alertmanager": {"url": alertmanager},
                                        "actionTimeouts": {"reboot": "30s"}})  # fmt: skip
    policy_path.write_text(yaml.safe_dump(policy))
    log = tmp_path / "operator.log"
    first = start_operator(sandbox, policy_path, log)
    try:
        inject(sandbox, NODE, "xid:79")

        def held() -> str | None:
            for repair in repairs_of(kube, NODE):
                record = (repair.get("status") or {}).get("silence") or {}
                if record.get("id") and phase_of(repair) == "Remediating":
                    return str(record["id"])
            return None

        silence_id = eventually(held, 30, interval=0.05, what="a silence recorded while the node reboots")
        first.send_signal(signal.SIGKILL)
        first.wait(20)
        second = start_operator(sandbox, policy_path, log)
        try:
            done = finished_repair(kube, NODE, timeout=60)

            def expired() -> bool:
                obj = next(r for r in repairs_of(kube, NODE) if r["metadata"]["name"] == done["metadata"]["name"])
                return bool((obj["status"].get("silence") or {}).get("expiredAt"))

            eventually(expired, 20, what="the silence expired by the second operator")
        finally:
            second.terminate()
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
    assert phase_of(done) == "Succeeded", log.read_text()[-3000:]
    ever = ours_for(alertmanager, NODE)
    assert [s.id for s in ever] == [silence_id], log.read_text()[-3000:]  # one silence, made once, never doubled
    assert ever[0].state == "expired"


def test_repairbot_sandbox_alertmanager_and_grafana_flags_wire_the_sandbox_and_state_json_says_where(
    tmp_path: Path, alertmanager: str
) -> None:
    state_dir = tmp_path / "rb-state"
    repo = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(repo), str(repo / "sim"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    command = [sys.executable, "-m", "repairbot.cli", "sandbox", "--state-dir", str(state_dir), "--nodes", "1",
               "--alertmanager", alertmanager, "--grafana"]  # fmt: skip
    sandbox = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert sandbox.stdout is not None
        ready = json.loads(sandbox.stdout.readline() or "{}")
        assert ready.get("ready") is True, sandbox.stderr.read() if sandbox.stderr else ""
        state = json.loads((state_dir / "state.json").read_text())
        assert state["alertmanager"] == alertmanager
        assert httpx.get(f"{state['grafana']}/api/annotations",
                         headers={"Authorization": f"Bearer {state['grafanaToken']}"}).status_code == 200  # fmt: skip
    finally:
        sandbox.send_signal(signal.SIGINT)
        try:
            sandbox.wait(30)
        except subprocess.TimeoutExpired:
            sandbox.kill()
            sandbox.wait(10)
