"""What ``repairbot demo`` breaks, where and when: the fault mix of a bad afternoon on a 16-node GPU pod.

Each :class:`Scenario` names its nodes, the injections that break them (a
fault in a simulated node, a Grafana alert posted to the webhook, a human's
``kubectl cordon``) at offsets into the show, and — in words — what RepairBot
must make of it; :mod:`repairbot_sim.demo_expectations` checks the same thing
in code. Pure data: the demo's director performs the injections.

The layout respects the storm breaker: the single faults sit at most two to a
leaf switch (the demo policy opens the breaker at three nodes of one failure
domain), and the storm gets a leaf of its own and comes last, once every other
repair has taken its destructive steps — an open breaker stops those fleet-wide.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from repairbot.model import format_time
from repairbot_sim import fleet

MIN_NODES = 16
"""Four leaf switches of four nodes: three leaves for the single faults, one for the storm."""

GAP = 4.0
"""Seconds between two single faults at --speed 1: long enough to watch each one start."""


class Kind(enum.StrEnum):
    FAULT = "fault"  # POST {control}/nodes/<node>/faults, as `repairbot inject` does
    ALERT = "alert"  # a Grafana unified-alerting notification POSTed to the webhook
    CORDON = "cordon"  # a human's `kubectl cordon`
    JOB_DONE = "job-done"  # the node's training job finishes; its operator deletes the worker pod


@dataclass(frozen=True, slots=True)
class Injection:
    """One thing done to the cluster, ``at`` seconds into the show (before --speed scaling)."""

    at: float
    node: str
    kind: Kind
    fault: str = ""
    gpu: int = 0
    persistent: bool = False  # hardware that stays broken through resets and reboots

    def describe(self) -> str:
        if self.kind is Kind.CORDON:
            return f"a human runs `kubectl cordon {self.node}` (before RepairBot has any reason to)"
        if self.kind is Kind.JOB_DONE:
            return f"the training job on {self.node} finishes: its worker {self.fault} is deleted by its operator"
        if self.kind is Kind.ALERT:
            return f"Grafana alert GpuXid (xid {self.fault}, GPU {self.gpu}) for {self.node} → POST /webhook/grafana"
        where = f"HCA mlx5_{self.gpu}" if self.fault.startswith("ib-") else f"GPU {self.gpu}"
        lasting = " (persistent: the hardware stays broken)" if self.persistent else ""
        return f"inject {self.fault} into {self.node} {where}{lasting}"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One story of the demo: its nodes, what breaks them, and what RepairBot must make of it."""

    key: str
    title: str
    nodes: tuple[str, ...]
    injections: tuple[Injection, ...]
    expected: str
    finale: bool = False  # played once every other scenario has settled

    @property
    def node(self) -> str:
        return self.nodes[0]


def demo_scenarios(nodes: int = MIN_NODES) -> tuple[Scenario, ...]:
    """The demo's scenarios for a sandbox of ``nodes`` nodes (at least :data:`MIN_NODES`)."""
    if nodes < MIN_NODES:
        raise ValueError(f"the demo needs at least {MIN_NODES} nodes (four leaf switches of four), got {nodes}")
    n = fleet.node_name
    # leaf-0: 001 (human), 002 (Xid 79), 003 (Xid 13, no repair); leaf-1: 005 (DBE), 006 (IB flap);
    # leaf-2: 009 (row remap), 010 (Grafana alert); leaf-3: 012-015, the storm.
    storm = tuple(n(i) for i in range(12, 16))
    return (
        Scenario(
            "xid79", "Xid 79: a GPU fell off the bus", (n(2),),
            (Injection(0 * GAP, n(2), Kind.FAULT, "xid:79", 3),),
            "Succeeded after one reboot",
        ),
        Scenario(
            "dbe", "Xid 48: double-bit ECC error", (n(5),),
            (Injection(1 * GAP, n(5), Kind.FAULT, "ecc-dbe", 1),),
            "Succeeded after a GPU reset, no reboot",
        ),
        Scenario(
            "xid13", "Xid 13: an application's kernel crashed", (n(3),),
            (Injection(2 * GAP, n(3), Kind.FAULT, "xid:13", 2),),
            "no GPURepair: the user's bug, not the GPU's",
        ),
        Scenario(
            "row-remap", "Row-remap failure: no spare memory rows left", (n(9),),
            (Injection(3 * GAP, n(9), Kind.FAULT, "row-remap-failure", 2, persistent=True),),
            "Quarantined after two failed validations",
        ),
        Scenario(
            "ib-flap", "InfiniBand port flapping", (n(6),),
            (Injection(4 * GAP, n(6), Kind.FAULT, "ib-flap", 1),),
            "held cordoned for a human (notify), nothing destructive",
        ),
        Scenario(
            "alert", "Grafana alert: Xid 119 GSP timeout", (n(10),),
            (Injection(5 * GAP, n(10), Kind.ALERT, "119", 4),),
            "a GPURepair from source grafana, Succeeded",
        ),
        Scenario(
            "human", "A node a human cordoned, then a pending row remap", (n(1),),
            (
                Injection(6 * GAP, n(1), Kind.CORDON),
                Injection(6.5 * GAP, n(1), Kind.FAULT, "row-remap-pending", 5),
                Injection(9 * GAP, n(1), Kind.JOB_DONE, f"{fleet.TRAINING_NAMESPACE}/{fleet.training_worker(1)}"),
            ),
            "the reset deferred until the job finished (never evicted), Succeeded, and still cordoned at the end",
        ),
        Scenario(
            "storm", f"Leaf switch {fleet.failure_domain(12)}: four nodes at once", storm,
            tuple(
                Injection(0.0, node, Kind.FAULT, fault, gpu)
                for i, node in enumerate(storm)
                for fault, gpu in (("ib-port-down", 0), ("xid:79", i))
            ),
            "4 repairs Blocked, all cordoned, zero reboots, one incident, one Slack storm message and one Jira ticket; "
            "then Resume storm pressed in Slack: one canary first",
            finale=True,
        ),
    )  # fmt: skip


def grafana_notification(node: str, *, xid: str, gpu: int, now: datetime, external_url: str) -> dict[str, Any]:
    """A Grafana unified-alerting webhook notification for one firing ``GpuXid`` alert about ``node``."""
    labels = {
        "alertname": "GpuXid", "Hostname": node, "gpu": str(gpu), "xid": xid,
        "grafana_folder": "GPU fleet", "severity": "critical",
    }  # fmt: skip
    fingerprint = hashlib.sha256("".join(f"{k}={v}" for k, v in sorted(labels.items())).encode()).hexdigest()[:16]
    started = format_time(now)
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": f"Xid {xid} on {node} GPU {gpu}",
            "description": f"dcgm-exporter reports DCGM_FI_DEV_XID_ERRORS={xid} on {node} GPU {gpu}",
            "runbook_url": f"https://github.com/repairbot/repairbot/blob/main/runbooks/xid-{xid}.md",
        },
        "startsAt": started,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"{external_url}alerting/grafana/gpu-xid/view?orgId=1",
        "fingerprint": fingerprint,
        "silenceURL": f"{external_url}alerting/silence/new?alertmanager=grafana&matcher=Hostname%3D{node}",
        "dashboardURL": f"{external_url}d/gpu-fleet",
        "panelURL": f"{external_url}d/gpu-fleet?viewPanel=4",
        "values": {"A": float(xid), "C": 1.0},
        "valueString": f"[ var='A' labels={{Hostname={node}, gpu={gpu}}} value={xid} ]",
    }
    return {
        "receiver": "repairbot", "status": "firing", "orgId": 1, "alerts": [alert],
        "groupLabels": {"alertname": "GpuXid"}, "commonLabels": labels, "commonAnnotations": alert["annotations"],
        "externalURL": external_url, "version": "1", "groupKey": '{}/{}:{alertname="GpuXid"}',
        "truncatedAlerts": 0, "title": f"[FIRING:1] GpuXid ({node})", "state": "alerting",
        "message": f"**Firing**\n\nValue: A={xid}\nLabels:\n - alertname = GpuXid\n - Hostname = {node}\n",
    }  # fmt: skip
