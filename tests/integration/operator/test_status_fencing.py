"""Fenced status writes: a decision made on an old read never lands (the emulated API server answers 409).

Two reconcilers stand for two operator replicas, 12 s apart on the wall
clock: the deposed one read the repair and decided, but its write reached
the API server only after the new leader had already cordoned. The write
carries the resourceVersion it was decided on, so it fails; the deposed
replica then decides again from a fresh read, and the record is the new
leader's alone.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from repairbot.kube.events import EventRecorder
from repairbot.kube.intake import Intake
from repairbot.model import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    Action,
    Finding,
    GpuRef,
    Severity,
    Source,
    format_time,
)
from repairbot.operator.breaker_store import BreakerStore
from repairbot.operator.reconciler import Reconciler
from repairbot.policy import parse_policy
from repairbot_sim.kube.faults import FaultRule

NAME = "gpu-1-20261122120000"
T0 = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def repair(apiserver: Any, api: client.ApiClient, kube_objects: Any) -> dict[str, Any]:
    apiserver.server.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "repairbot"}})
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    finding = {"code": "xid-79", "gpu": {"index": 0}, "action": "reboot", "firstSeen": format_time(T0), "count": 1,
               "source": "agent", "message": "Xid 79: GPU has fallen off the bus"}  # fmt: skip
    body = {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": NAME, "labels": {"repairbot.io/node": "gpu-1"}},
            "spec": {"nodeName": "gpu-1", "source": "agent", "findings": [finding]}}  # fmt: skip
    return dict(client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, PLURAL, body))


def reconciler(api: client.ApiClient, offset: timedelta) -> Reconciler:
    policy = parse_policy({"breaker": {"settleTime": "30s"}})
    return Reconciler(api=api, policy=policy, breakers=BreakerStore(api, "repairbot"), events=EventRecorder(api),
                      clock=lambda: datetime.now(UTC) + offset)  # fmt: skip


def reconcile_held(apiserver: Any, held_back: Reconciler, *, seconds: float) -> tuple[threading.Thread, dict[str, Any]]:
    """Reconcile NAME in a thread whose status write the API server holds for ``seconds``; return once it is held.

    The outcome dict gets ``result`` when the reconcile returns: join the thread first.
    """
    faults = apiserver.server.faults
    held = faults.add(FaultRule(action="delay", method="PATCH", path=rf"gpurepairs/{NAME}/status$", seconds=seconds))
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(result=held_back.reconcile(NAME)))
    worker.start()
    deadline = time.monotonic() + 10
    while held in faults.rules() and time.monotonic() < deadline:  # the rule is used up once the write is held
        time.sleep(0.01)
    assert held not in faults.rules(), "the status write never reached the API server"
    return worker, outcome


def status_of(api: client.ApiClient) -> dict[str, Any]:
    return dict(client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL, NAME)["status"])


def test_a_deposed_leaders_status_write_fails_instead_of_landing(
    apiserver: Any, api: client.ApiClient, repair: dict[str, Any]
) -> None:
    deposed, leader = reconciler(api, timedelta(seconds=12)), reconciler(api, timedelta(0))
    worker, outcome = reconcile_held(apiserver, deposed, seconds=2)  # the deposed write is in flight, held back

    leader.reconcile(NAME)  # the new leader cordons meanwhile
    worker.join(20)
    assert not worker.is_alive()

    status = status_of(api)
    cordons = [e for e in status["history"] if e["step"] == "cordon"]
    assert [e["outcome"] for e in cordons] == ["started", "done"], status["history"]
    leader_time = datetime.fromisoformat(status["receivedAt"].replace("Z", "+00:00"))
    # the leader's time, not the deposed replica's +12 s: its stale write did not land
    assert abs(leader_time - datetime.now(UTC)) < timedelta(seconds=6), status
    assert all(abs(datetime.fromisoformat(e["at"].replace("Z", "+00:00")) - leader_time) < timedelta(seconds=3)
               for e in cordons)  # fmt: skip
    assert outcome["result"] is not None  # the deposed replica decided again, from the fresh read


def test_a_status_patch_with_a_stale_resource_version_is_refused_and_lands_nothing(
    api: client.ApiClient, repair: dict[str, Any]
) -> None:
    custom = client.CustomObjectsApi(api)
    stale = repair["metadata"]["resourceVersion"]
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, NAME, {"status": {"message": "first"}})
    body = {"metadata": {"resourceVersion": stale}, "status": {"message": "stale"}}
    with pytest.raises(client.ApiException) as refused:
        custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, NAME, body)
    assert refused.value.status == 409
    assert status_of(api)["message"] == "first"


def test_an_intake_merge_between_read_and_write_is_decided_again_not_lost(
    apiserver: Any, api: client.ApiClient, repair: dict[str, Any]
) -> None:
    """A new finding merged into the spec bumps the resourceVersion: the held write fails, the step is re-decided."""
    worker_reconciler = reconciler(api, timedelta(0))
    worker, outcome = reconcile_held(apiserver, worker_reconciler, seconds=1.5)
    ecc = Finding(code="ecc-dbe", message="double-bit ECC error", action=Action.REBOOT, severity=Severity.CRITICAL,
                  gpu=GpuRef(index=1), source=Source.AGENT)  # fmt: skip
    Intake(api).report("gpu-1", [ecc], source=Source.AGENT)
    worker.join(20)

    obj = client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL, NAME)
    assert {f["code"] for f in obj["spec"]["findings"]} == {"xid-79", "ecc-dbe"}  # the merge is kept
    status = obj["status"]
    assert status["phase"] == "Cordoned", status  # the step was taken, once, after deciding again
    assert [(e["step"], e["outcome"]) for e in status["history"]] == [("cordon", "started"), ("cordon", "done")]
    assert outcome["result"].decision.step.value == "cordon"


def test_a_repair_that_keeps_changing_yields_to_the_scheduler_instead_of_spinning(
    apiserver: Any, api: client.ApiClient, repair: dict[str, Any]
) -> None:
    apiserver.server.faults.add(FaultRule(action="fail", method="PATCH", path=rf"gpurepairs/{NAME}/status$",
                                          status=409, count=-1))  # fmt: skip
    result = reconciler(api, timedelta(0)).reconcile(NAME)
    assert result is not None and result.decision.step.value == "nothing"
    assert result.requeue_after is not None and result.requeue_after > timedelta(0)
    assert not client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL, NAME).get("status")
