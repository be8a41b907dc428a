"""A capped history folds under the real dispatcher without a Slack reply lost or repeated."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from repairbot.bounds import HISTORY_FOLDED_STEP, HISTORY_MAX
from repairbot.machine import Facts, PoolUsage, RepairView, decide
from repairbot.model import GROUP, PLURAL, VERSION, format_time
from repairbot.notify.slack import SlackNotifier
from repairbot.operator.dispatcher import NotificationDispatcher
from repairbot.policy import parse_policy
from repairbot_sim.slack import SlackSim

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
NAME = "gpu-1-20261122030000"


def seed(custom: client.CustomObjectsApi) -> None:
    finding = {"code": "xid-79", "firstSeen": format_time(T0), "gpu": {"index": 3}, "action": "reboot"}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": NAME, "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [finding]}}  # fmt: skip
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    history = [{"step": "queue", "outcome": "BudgetExhausted", "message": f"waiting for the budget ({i})",
                "at": format_time(T0 + timedelta(minutes=i))} for i in range(HISTORY_MAX)]  # fmt: skip
    status = {"phase": "Pending", "message": "waiting", "detectedAt": format_time(T0), "reason": "xid-79",
              "history": history}  # fmt: skip
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, NAME, {"status": status})


def operator_step(custom: client.CustomObjectsApi) -> dict[str, Any]:
    """One step of the state machine written as the reconciler writes it (a status merge patch)."""
    obj = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, NAME)
    decision = decide(RepairView.from_object(obj), Facts(pool=PoolUsage(size=100)),
                      parse_policy({"breaker": {"settleTime": "0s"}}), T0 + timedelta(days=2))  # fmt: skip
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, NAME, {"status": decision.patch})
    return dict(decision.patch)


def test_a_folded_history_delivers_every_new_step_once_and_nothing_twice(
    kube_api: client.ApiClient, slack_sim: SlackSim
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    seed(custom)
    slack = SlackNotifier("xoxb-test-token", "#gpu-repairs", base_url=slack_sim.api_url)

    def repairs() -> list[Any]:
        return list(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])

    dispatcher = NotificationDispatcher(kube_api, repairs, slack=slack)
    dispatcher.deliver_due("slack")
    parent = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, NAME)["status"]["slack"]
    assert len(slack_sim.thread(parent["channel"], parent["ts"])) == HISTORY_MAX

    patch = operator_step(custom)  # the 121st step: the oldest delivered ones fold, the cursor moves with them
    stored = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, NAME)["status"]
    assert stored["history"][0]["step"] == HISTORY_FOLDED_STEP and len(stored["history"]) < HISTORY_MAX
    assert stored["deliveries"]["slack"]["sent"] == len(stored["history"]) - 1
    dispatcher.deliver_due("slack")
    replies = slack_sim.thread(parent["channel"], parent["ts"])
    assert len(replies) == HISTORY_MAX + 1  # exactly the new step, once; no folded step delivered again
    assert patch["message"].split(";")[0] in json.dumps(dataclasses.asdict(replies[-1]), ensure_ascii=False)
