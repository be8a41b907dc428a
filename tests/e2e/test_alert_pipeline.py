"""The alert path with real parts nobody here wrote: Prometheus evaluates the chart's rules, Alertmanager delivers.

simulated dcgm-exporter ──scrape──▶ Debian ``prometheus`` (charts/repairbot/rules/gpu-faults.rules.yaml)
    ──alerts──▶ Debian ``prometheus-alertmanager`` ──webhook v4, bearer token──▶ ``repairbot webhook``
    ──intake──▶ GPURepair ──operator──▶ reboot, validation, back in service ──▶ Slack thread and Jira ticket.

The Xid is put where only dcgm-exporter sees it (the node's agent is blind to it,
as when it was restarting), so the repair can only have come through the alert.
The rules file is the chart's own, with ``for:`` shortened so the test takes seconds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from child_servers import ChildServers, binary_or_skip, start_alertmanager, start_prometheus
from e2e_support import NOTIFYING, SandboxFactory, chats, eventually, finished_repair, phase_of, repairs_of, simulated

from repairbot.kube.client import api_client
from repairbot_sim.dcgm_exporter import DcgmExporterSim

RULES = Path(__file__).resolve().parents[2] / "charts" / "repairbot" / "rules" / "gpu-faults.rules.yaml"


def test_rules_fire_through_alertmanager_into_a_repair_with_thread_and_ticket(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    binary_or_skip("prometheus")
    binary_or_skip("prometheus-alertmanager", "alertmanager")
    sandbox = make_sandbox(nodes=3, policy=NOTIFYING)
    kube = api_client(sandbox.state["kubeconfig"])
    slack, jira = chats(sandbox)
    members = {name: simulated(sandbox, name).node for name in ("gpu-node-001", "gpu-node-002")}
    exporter = DcgmExporterSim(members.values())
    targets = sandbox.call(exporter.start())

    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))

    with ChildServers() as children:
        alertmanager = start_alertmanager(children, tmp_path / "alertmanager", yaml.safe_dump({
            "route": {"receiver": "repairbot", "group_by": ["alertname", "Hostname", "gpu"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "repairbot", "webhook_configs": [{
                "url": f"{sandbox.state['webhook']}/webhook/alertmanager", "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials": sandbox.state["webhookToken"]}},
            }]}],
        }))  # fmt: skip
        prometheus = start_prometheus(children, tmp_path / "prometheus", yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yaml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}]},
            "scrape_configs": [{"job_name": "dcgm", "static_configs": [{"targets": sorted(targets.values())}]}],
        }))  # fmt: skip

        time.sleep(3)  # a few healthy scrapes first: nothing may fire on a healthy fleet
        assert repairs_of(kube, "gpu-node-001") == [] and repairs_of(kube, "gpu-node-002") == []
        members["gpu-node-002"].backend.device(4).xids.append((time.monotonic(), 79))

        opened = eventually(lambda: repairs_of(kube, "gpu-node-002"), timeout=60, what="a repair from the alert")
        repair = finished_repair(kube, "gpu-node-002", timeout=60)

    sandbox.call(exporter.stop())
    assert opened[0]["spec"]["source"] == "alertmanager"
    assert phase_of(repair) == "Succeeded", repair["status"]
    [finding] = [f for f in repair["spec"]["findings"] if f["source"] == "alertmanager"]
    assert (finding["code"], finding["xid"], finding["gpu"]["index"]) == ("xid-79", 79, 4)
    evidence = finding["evidence"]
    assert evidence["alertname"] == "GpuXid" and evidence["label.repairbot_class"] == "xid-79"
    assert evidence["generatorURL"].startswith(prometheus)  # a link back to the rule's graph
    assert evidence["runbook_url"].endswith("/runbooks/xid-79.md")
    assert repairs_of(kube, "gpu-node-001") == []  # the healthy node's series fired nothing

    def told() -> dict[str, Any] | None:
        status = repairs_of(kube, "gpu-node-002")[0].get("status") or {}
        return status if (status.get("slack") or {}).get("ts") and (status.get("jira") or {}).get("key") else None

    status = eventually(told, timeout=30, what="a Slack thread and a Jira ticket")
    parent = slack.find(status["slack"]["channel"], status["slack"]["ts"])
    assert parent is not None and "gpu-node-002" in (parent.text or "")
    assert "gpu-node-002" in jira.issues[status["jira"]["key"]].fields["summary"]
