"""The silence keeper against Debian's real Alertmanager and the emulated API server: a drained node's alerts
stay quiet until it is back, on-call's own silences are never touched, and a restart never leaks a silence.

Skipped where ``prometheus-alertmanager`` is not installed (Debian: apt-get install prometheus-alertmanager).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from child_servers import ChildServers, free_port, start_alertmanager
from kubernetes import client
from tenacity import wait_none

from repairbot.model import GROUP, PLURAL, VERSION, format_time, parse_time
from repairbot.notify.alertmanager import CREATED_BY, AlertmanagerSilences, Matcher, Silence
from repairbot.operator.metrics import OperatorMetrics
from repairbot.operator.silence_plan import repair_marker, silence_matchers
from repairbot.operator.silences import CONDITION_SILENCED, SilenceKeeper
from repairbot.policy import AlertmanagerPolicy

AM_CONFIG = """
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""
NODE = "gpu-node-007"
REPAIR = "gpu-node-007-20261202080000"
POLICY = AlertmanagerPolicy(url="http://unused", alertnames=("KubeNodeNotReady", "TargetDown"))


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    with ChildServers() as children:
        yield start_alertmanager(children, tmp_path / "alertmanager", AM_CONFIG)


@pytest.fixture
def custom(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def seed_repair(
    custom: client.CustomObjectsApi, phase: str, *, drained: bool = True, name: str = REPAIR, dry_run: bool = False
) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": name, "labels": {"repairbot.io/node": NODE}},
            "spec": {"nodeName": NODE, "source": "agent", "dryRun": dry_run}}  # fmt: skip
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    set_phase(custom, phase, drained=drained, name=name)


def set_phase(custom: client.CustomObjectsApi, phase: str, *, drained: bool = True, name: str = REPAIR) -> None:
    at = format_time(datetime.now(UTC))
    history = [{"step": "cordon", "outcome": "done", "message": "cordoned", "at": at}]
    if drained:
        history.append({"step": "start-drain", "outcome": "started", "message": "draining 3 pods", "at": at})
    status = {"phase": phase, "reason": "xid-79", "history": history}
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, {"status": status})


def repair(custom: client.CustomObjectsApi, name: str = REPAIR) -> dict[str, Any]:
    found: dict[str, Any] = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    return found


def keeper(kube_api: client.ApiClient, url: str, clock: Any = None, **options: Any) -> SilenceKeeper:
    custom = client.CustomObjectsApi(kube_api)

    def listing() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        return items

    return SilenceKeeper(kube_api, listing, AlertmanagerSilences(url, wait=wait_none(), timeout=2), POLICY,
                         runbook_base_url="https://runbooks.example/gpu", clock=clock or (lambda: datetime.now(UTC)),
                         **options)  # fmt: skip


def silences(url: str) -> list[Silence]:
    return [Silence.from_api(s) for s in httpx.get(f"{url}/api/v2/silences").json()]


def live_ours(url: str) -> list[Silence]:
    return [s for s in silences(url) if s.ours and not s.expired]


def condition(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"].get("conditions") or () if c["type"] == CONDITION_SILENCED)



def notification_errors(metrics: OperatorMetrics, target: str) -> float:
    """``repairbot_notification_errors_total`` of ``target``, summed over its error codes."""
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "repairbot_notification_errors_total" and sample.labels.get("target") == target
    )

def test_a_draining_repair_holds_one_silence_for_its_node_covering_the_policy_alertnames(
    kube_api: client.ApiClient, custom: client.CustomObjectsApi, alertmanager: str
) -> None:
    seed_repair(custom, "Draining")
    assert keeper(kube_api, alertmanager).keep_all() == 1
    [held] = live_ours(alertmanager)
    assert held.state == "active" and held.created_by == CREATED_BY
    assert set(held.matchers) == {Matcher("node", NODE), Matcher("alertname", "KubeNodeNotReady|TargetDown",
                                                                 is_regex=True)}  # fmt: skip
    assert repair_marker(REPAIR) in held.comment and "https://runbooks.example/gpu/" in held.comment
    status = repair(custom)["status"]
    assert status["silence"]["id"] == held.id
    assert abs((parse_time(status["silence"]["endsAt"]) - held.ends_at).total_seconds()) < 1
    assert condition(repair(custom))["status"] == "True" and held.id in condition(repair(custom))["message"]
    # Alertmanager itself says the node's NotReady alert is silenced by it, and another node's is not.
    alerts = [{"labels": {"alertname": "KubeNodeNotReady", "node": n}} for n in (NODE, "gpu-node-008")]
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts).status_code == 200
    states = {a["labels"]["node"]: a["status"] for a in httpx.get(f"{alertmanager}/api/v2/alerts").json()}
    assert states[NODE]["silencedBy"] == [held.id] and states["gpu-node-008"]["silencedBy"] == []


def test_a_cordoned_repair_that_has_not_drained_holds_no_silence(
    kube_api: client.ApiClient, custom: client.CustomObjectsApi, alertmanager: str
) -> None:
    seed_repair(custom, "Cordoned", drained=False)
    assert keeper(kube_api, alertmanager).keep_all() == 0
    assert silences(alertmanager) == [] and "silence" not in repair(custom)["status"]


def test_the_silence_is_renewed_while_the_repair_runs_and_only_one_stays_live(
    kube_api: client.ApiClient, custom: client.CustomObjectsApi, alertmanager: str
) -> None:
    seed_repair(custom, "Draining")
    keeper(kube_api, alertmanager).keep_all()
    first = repair(custom)["status"]["silence"]
    later = datetime.now(UTC) + POLICY.duration * 0.6  # more than half gone: renew
    set_phase(custom, "Remediating")
    assert keeper(kube_api, alertmanager, clock=lambda: later).keep_all() == 1
    renewed = repair(custom)["status"]["silence"]
    assert parse_time(renewed["endsAt"]) > parse_time(first["endsAt"])
    [live] = live_ours(alertmanager)
    assert live.id == renewed["id"]  # Alertmanager swaps the id when it cannot update in place: recorded
    assert abs((live.ends_at - (later + POLICY.duration)).total_seconds()) < 1
    # A pass with time to spare left changes nothing.
    assert keeper(kube_api, alertmanager).keep_all() == 0
    assert [s.id for s in live_ours(alertmanager)] == [renewed["id"]]


@pytest.mark.parametrize("end", ["Succeeded", "Quarantined", "Failed", "Cancelled"])
def test_the_silence_is_expired_when_the_repair_ends(
    kube_api: client.ApiClient, custom: client.CustomObjectsApi, alertmanager: str, end: str
) -> None:
    seed_repair(custom, "Validating")
    keeper(kube_api, alertmanager).keep_all()
    held = repair(custom)["status"]["silence"]["id"]
    set_phase(custom, end)
    assert keeper(kube_api, alertmanager).keep_all() == 1
    assert live_ours(alertmanager) == []
    assert next(s for s in silences(alertmanager) if s.id == held).state == "expired"
    obj = repair(custom)
    assert obj["status"]["silence"]["id"] == held and "expiredAt" in obj["status"]["silence"]
    assert condition(obj)["status"] == "False" and condition(obj)["reason"] == "Expired"
    assert keeper(kube_api, alertmanager).keep_all() == 0  # expired once, never again


def test_a_humans_silence_for_the_same_node_is_never_touched(
    kube_api: client.ApiClient, custom: client.CustomObjectsApi, alertmanager: str
) -> None:
    now = datetime.now(UTC)
    human = {"matchers": [m.to_api() for m in silence_matchers(POLICY, NODE)], "startsAt": format_time(now),
             "endsAt": format_time(now + timedelta(hours=4)), "createdBy": "alice",
             "comment": f"maintenance on {NODE} {repair_marker(REPAIR)}"}  # fmt: skip
    human_id = httpx.post(f"{alertmanager}/api/v2/silences", json=human).json()["silenceID"]
    seed_repair(custom, "Draining")
    keeper(kube_api, alertmanager).keep_all()
    ours = repair(custom)["status"]["silence"]["id"]
    assert ours != human_id  # not adopted, though its matchers and comment look like ours
    # Even a status that names the human's silence (edited by hand) never renews or expires it.
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, REPAIR, {"status": {"silence": {
        "id": human_id, "endsAt": format_time(now + timedelta(minutes=1))}}})  # fmt: skip
    keeper(kube_api, alertmanager).keep_all()
    set_phase(custom, "Succeeded")
    keeper(kube_api, alertmanager).keep_all()
    left = next(s for s in silences(alertmanager) if s.id == human_id)
    assert left.state == "active" and left.created_by == "alice"
    assert abs((left.ends_at - (now + timedelta(hours=4))).total_seconds()) < 1


def test_a_restarted_operator_reuses_its_silence_and_never_leaks_one(
    kube_api: client.ApiClient, custom: client.CustomObjectsApi, alertmanager: str
) -> None:
    seed_repair(custom, "Draining")
    keeper(kube_api, alertmanager).keep_all()
    held = repair(custom)["status"]["silence"]["id"]
    # A new operator process: nothing in memory, the status and Alertmanager as they are.
    assert keeper(kube_api, alertmanager).keep_all() == 0
    later = datetime.now(UTC) + POLICY.duration * 0.6
    keeper(kube_api, alertmanager, clock=lambda: later).keep_all()
    assert len(live_ours(alertmanager)) == 1
    set_phase(custom, "Succeeded")
    keeper(kube_api, alertmanager).keep_all()
    assert live_ours(alertmanager) == []
    assert held in {s.id for s in silences(alertmanager)}


def test_a_silence_made_just_before_a_crash_is_adopted_not_doubled(
    kube_api: client.ApiClient, custom: client.CustomObjectsApi, alertmanager: str
) -> None:
    """The crash came between Alertmanager's answer and the status write: the silence exists, no id is recorded."""
    seed_repair(custom, "Draining")
    now = datetime.now(UTC)
    orphan = AlertmanagerSilences(alertmanager).create(silence_matchers(POLICY, NODE), now, now + timedelta(minutes=30),
                                                       f"RepairBot {repair_marker(REPAIR)}")  # fmt: skip
    keeper(kube_api, alertmanager).keep_all()
    [live] = live_ours(alertmanager)
    assert repair(custom)["status"]["silence"]["id"] == live.id
    assert orphan in {s.id for s in silences(alertmanager)}


def test_an_unreachable_alertmanager_is_recorded_on_the_repair_and_retried(
    kube_api: client.ApiClient, custom: client.CustomObjectsApi, alertmanager: str
) -> None:
    seed_repair(custom, "Draining")
    metrics = OperatorMetrics()
    now = [0.0]
    down = keeper(kube_api, f"http://127.0.0.1:{free_port()}", metrics=metrics, monotonic=lambda: now[0])
    assert down.keep_all() == 0
    obj = repair(custom)
    assert condition(obj)["reason"] == "AlertmanagerError" and "connection-error" in condition(obj)["message"]
    assert "silence" not in obj["status"]
    assert notification_errors(metrics, "alertmanager") == 1
    assert down.keep_all() == 0  # backing off: the next pass does not ask the dead Alertmanager again
    assert notification_errors(metrics, "alertmanager") == 1
    now[0] += 120
    down.keep_all()
    assert notification_errors(metrics, "alertmanager") == 2
    # Alertmanager is back: the next pass makes the silence and the condition says so.
    assert keeper(kube_api, alertmanager).keep_all() == 1
    obj = repair(custom)
    assert condition(obj)["status"] == "True" and condition(obj)["reason"] == "Held"
    assert obj["status"]["silence"]["id"] == live_ours(alertmanager)[0].id


def test_a_dry_run_repair_holds_no_silence(
    kube_api: client.ApiClient, custom: client.CustomObjectsApi, alertmanager: str
) -> None:
    seed_repair(custom, "Draining", dry_run=True)
    assert keeper(kube_api, alertmanager).keep_all() == 0
    assert silences(alertmanager) == []
