"""Reports to intake at the chart's log level (INFO), against the emulated API server.

A log field named ``created`` clashes with ``LogRecord.created``: ``logging`` raised ``KeyError`` after the
repair was written, but only when INFO was enabled, as it is in every deployment and in no test. The agent
then took each report for failed and re-sent it every second; the operator's manual-label path logged
"could not open a manual repair" for a repair it had opened.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kubernetes import client

from repairbot.agent.service import IntakeSink
from repairbot.kube.intake import Intake
from repairbot.model import GROUP, PLURAL, VERSION, Action, Finding, Severity, Source
from repairbot.operator.handlers import _open_manual, manual_finding


def repairs(kube_api: client.ApiClient) -> list[dict[str, Any]]:
    listed = client.CustomObjectsApi(kube_api).list_cluster_custom_object(GROUP, VERSION, PLURAL)
    return list(listed["items"])


def test_an_agent_logging_at_info_reports_an_xid_once_and_logs_the_repair_it_opened(
    apiserver: Any, kube_api: client.ApiClient, kube_objects: Any, caplog: pytest.LogCaptureFixture
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    xid = Finding("xid-79", "Xid 79: GPU fell off the bus", Action.REBOOT, severity=Severity.CRITICAL)
    with caplog.at_level(logging.INFO, logger="repairbot"):
        IntakeSink(Intake(kube_api)).report("gpu-1", [xid])  # raised KeyError before: the agent re-sent it
    [repair] = repairs(kube_api)
    assert [f["count"] for f in repair["spec"]["findings"]] == [1]
    [line] = [r for r in caplog.records if r.getMessage().startswith("findings reported")]
    assert line.__dict__["opened"] is True and line.__dict__["repair"] == repair["metadata"]["name"]


def test_a_faulty_label_at_info_opens_its_repair_without_a_warning_that_it_could_not(
    apiserver: Any, kube_api: client.ApiClient, kube_objects: Any, caplog: pytest.LogCaptureFixture
) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    finding = manual_finding("gpu-1", {"repairbot.io/reason": "fans loud"})
    with caplog.at_level(logging.INFO, logger="repairbot"):
        _open_manual(Intake(kube_api), "gpu-1", finding)
    [repair] = repairs(kube_api)
    assert repair["spec"]["source"] == Source.MANUAL.value
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
