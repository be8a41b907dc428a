"""``repairbot_notification_errors_total`` names the service's error, so the dashboard tells an outage from a ban."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from repairbot.model import GROUP, PLURAL, VERSION
from repairbot.notify.slack import SlackNotifier
from repairbot.operator.dispatcher import NotificationDispatcher
from repairbot.operator.metrics import OperatorMetrics
from repairbot_sim.slack import SlackSim


def test_slack_rate_limiting_is_counted_as_ratelimited_for_slack(
    kube_api: client.ApiClient, slack_sim: SlackSim
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": "gpu-1-20261122030000", "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [{"code": "xid-79", "action": "reboot",
                                                                     "firstSeen": "2026-11-22T03:00:00Z"}]}}
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)  # fmt: skip
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, "gpu-1-20261122030000", {"status": {
        "phase": "Pending", "reason": "xid-79", "message": "opened",
        "history": [{"step": "intake", "outcome": "opened", "message": "xid-79", "at": "2026-11-22T03:00:00Z"}],
    }})  # fmt: skip
    slack = SlackNotifier("xoxb-test-token", "#gpu-repairs", base_url=slack_sim.api_url, rate_limit_retries=0)
    metrics = OperatorMetrics()

    def repairs() -> list[Any]:
        return list(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])

    slack_sim.rate_limit(calls=5, retry_after=0)
    NotificationDispatcher(kube_api, repairs, slack=slack, metrics=metrics).deliver_due("slack")

    counted = metrics.registry.get_sample_value(
        "repairbot_notification_errors_total", {"target": "slack", "code": "ratelimited"}
    )
    assert counted == 1
