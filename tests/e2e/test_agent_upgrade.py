"""Upgrading the agent (a DaemonSet rollout from a release that kept no kernel-log cursor) repairs nothing twice.

On the first start of this version on a node nothing says which of this
boot's Xids an earlier agent reported: the state dir is new and the repairs
that held their marks were deleted long ago, while the node's ring buffer still
holds every Xid of a boot that may be weeks old. The agent must report only
what is recent (``--kmsg-first-start-lookback``) and everything from its start
on, or a fleet-wide upgrade would reset GPUs that were repaired days ago.
"""

from __future__ import annotations

import shutil
from typing import Any

from e2e_support import SandboxFactory, eventually, inject, inject_now, repairs_of, simulated
from kubernetes import client

from repairbot.agent.service import KMSG_CURSOR_FILE
from repairbot.kube.client import api_client
from repairbot.model import GROUP, PLURAL, VERSION

NODE = "gpu-node-001"
THREE_HOURS_S = 3 * 3600.0


def gpus_of(repairs: list[dict[str, Any]]) -> set[int]:
    """The GPUs the node's repairs hold findings for."""
    return {f["gpu"]["index"] for r in repairs for f in r["spec"]["findings"] if "index" in (f.get("gpu") or {})}


def test_an_xid_logged_hours_before_the_agents_first_start_opens_no_repair_while_a_fresh_one_does(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(nodes=2, operator=False)
    kube = api_client(sandbox.state["kubeconfig"])
    custom = client.CustomObjectsApi(kube)
    member = simulated(sandbox, NODE)

    # The previous agent reported an Xid on GPU 2; it was dealt with, and three hours went by in the same boot.
    member.node.log_xid(48, gpu=2)  # the kernel-log line alone: NVML's event died with the old agent
    eventually(lambda: gpus_of(repairs_of(kube, NODE)) == {2}, timeout=30, what="the old Xid's repair")
    cursor = member.node.root / "var-lib-repairbot" / KMSG_CURSOR_FILE
    eventually(cursor.exists, timeout=30, what="the old agent's kernel-log cursor")  # written, so deleted for good
    member.node.pass_time(THREE_HOURS_S)

    # The upgrade: the old release kept no cursor file, its repairs are gone, and the new agent starts.
    for repair in repairs_of(kube, NODE):
        custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, repair["metadata"]["name"])
    eventually(lambda: not repairs_of(kube, NODE), timeout=30, what="the old repairs deleted")
    shutil.rmtree(cursor.parent)
    before = member.restarts
    inject(sandbox, NODE, "agent-restart")
    eventually(
        lambda: member.restarts > before and member.agent.ready and member.agent.polls >= 3,
        timeout=30, what="the new agent up, its kernel log read",
    )  # fmt: skip
    assert repairs_of(kube, NODE) == []  # the three-hour-old Xid opened nothing

    # A fresh Xid after the start is news as ever; the old one is still not among the findings.
    inject_now(sandbox, [(NODE, "xid:48", 5)])
    eventually(lambda: repairs_of(kube, NODE), timeout=30, what="the fresh Xid's repair")
    assert gpus_of(repairs_of(kube, NODE)) == {5}, repairs_of(kube, NODE)
