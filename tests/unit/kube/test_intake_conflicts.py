"""Intake's door: which repair is a node's record, and what a 409 on create leads to.

The conflict path runs against a small in-memory double of the two API
groups intake calls (CustomObjectsApi, CoreV1Api), so each interleaving can
be forced exactly; the same paths run over a real socket in
tests/e2e/test_intake_and_quarantine.py.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.intake import (
    ApiRecords,
    Intake,
    NodeNotFound,
    NodeOptedOut,
    node_record,
    oldest_active,
    stamp_while_quarantined,
)
from repairbot.model import Action, Finding, GpuRef, Source

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def repair(name: str, phase: str | None, created: str = "2026-11-22T10:00:00Z", **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase} if phase else {}
    status.update(extra)
    return {"metadata": {"name": name, "creationTimestamp": created, "resourceVersion": "1"},
            "spec": {"nodeName": "n", "findings": []}, "status": status}  # fmt: skip


RELEASED = {"conditions": [{"type": "Released", "status": "True"}]}


@pytest.mark.parametrize(
    ("repairs", "record"),
    [
        ([], None),
        ([repair("n-1", "Succeeded")], None),
        ([repair("n-1", "Quarantined"), repair("n-2", "Draining")], "n-1"),  # a quarantine sticks
        ([repair("n-1", "Quarantined", **RELEASED), repair("n-2", "Draining")], "n-2"),
        ([repair("n-1", "Quarantined", **RELEASED)], None),  # released: the next finding opens a fresh repair
        ([repair("n-2", None, "2026-11-22T10:00:02Z"), repair("n-3", None, "2026-11-22T10:00:01Z")], "n-3"),
        ([repair("n-2", None, "2026-11-22T10:00:01Z"), repair("n-3", "Cordoned", "2026-11-22T10:00:02Z")], "n-3"),
    ],
    ids=["none", "finished", "quarantine-first", "released-quarantine", "only-released", "oldest", "admitted-first"],
)
def test_the_nodes_record_is_its_held_quarantine_else_the_admitted_else_the_oldest_active(
    repairs: list[dict[str, Any]], record: str | None
) -> None:
    chosen = node_record(repairs)
    assert (chosen["metadata"]["name"] if chosen else None) == record


def test_a_dry_run_quarantine_holds_nothing() -> None:
    dry = repair("n-1", "Quarantined")
    dry["spec"]["dryRun"] = True
    assert node_record([dry]) is None
    assert oldest_active([dry]) is None


def xid(gpu: int, code: int = 79, source: Source = Source.AGENT) -> Finding:
    return Finding(code=f"xid-{code}", message=f"Xid {code}", action=Action.REBOOT, xid=code, source=source,
                   gpu=GpuRef(index=gpu), first_seen=T0)  # fmt: skip


def test_only_the_items_a_merge_fed_carry_their_count_for_the_quarantine_history() -> None:
    items = [xid(0).to_dict() | {"count": 3}, xid(1).to_dict()]
    stamped = stamp_while_quarantined(items, [xid(0)])
    assert stamped[0]["evidence"] == {"whileQuarantined": "3"}
    assert "evidence" not in stamped[1]


# --------------------------------------------------------------------------- the conflict path


class FakeApi:
    """GPURepairs and nodes in memory, answering as the API server does (409 on a taken name or old version)."""

    def __init__(self, *, labels: dict[str, str] | None = None, node_exists: bool = True) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.labels = labels or {}
        self.node_exists = node_exists
        self.node_reads = 0
        self.node_patches = 0
        self.before_create: list[Any] = []  # callables run once each, just before a create lands
        self.creates: list[str] = []
        self.lists = 0
        self.replaces = 0
        self._version = 0

    # CustomObjectsApi
    def list_cluster_custom_object(self, *_: Any, label_selector: str = "") -> dict[str, Any]:
        self.lists += 1
        node = label_selector.split("=", 1)[1]
        items = [o for o in self.objects.values() if o["metadata"]["labels"]["repairbot.io/node"] == node]
        return {"items": copy.deepcopy(items)}

    def create_cluster_custom_object(self, group: str, version: str, plural: str, body: dict[str, Any]) -> Any:
        if self.before_create:
            self.before_create.pop(0)()
        name = body["metadata"]["name"]
        self.creates.append(name)
        if name in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._store(copy.deepcopy(body))

    def replace_cluster_custom_object(self, group: str, version: str, plural: str, name: str, body: Any) -> Any:
        self.replaces += 1
        if name not in self.objects:
            raise ApiException(status=404, reason="NotFound")
        if body["metadata"].get("resourceVersion") != self.objects[name]["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        return self._store(copy.deepcopy(body))

    def get_cluster_custom_object(self, group: str, version: str, plural: str, name: str) -> Any:
        return copy.deepcopy(self.objects[name])

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        obj["metadata"].setdefault("creationTimestamp", "2026-11-22T10:00:00Z")
        obj.setdefault("status", {})
        self.objects[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    # CoreV1Api (raw: intake reads the JSON)
    def read_node(self, name: str, **_: Any) -> Any:
        self.node_reads += 1
        if not self.node_exists:
            raise ApiException(status=404, reason="NotFound")
        return _Raw({"metadata": {"name": name, "labels": dict(self.labels), "resourceVersion": "7"}})

    def patch_node(self, name: str, body: Any, **_: Any) -> Any:
        self.node_patches += 1  # intake writes no node: any call here is a defect the tests catch
        self.labels.update(body["metadata"]["labels"])
        return _Raw({})


class _Raw:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = json.dumps(data).encode()


def intake_on(fake: FakeApi, records: Any = None) -> Intake:
    intake = Intake(client.ApiClient(), records)
    intake._custom = fake  # type: ignore[assignment]
    intake._core = fake  # type: ignore[assignment]
    intake._api = ApiRecords(client.ApiClient())  # its reads, from the same double
    intake._api._custom = fake  # type: ignore[attr-defined]
    intake._api._core = fake  # type: ignore[attr-defined]
    return intake


def test_a_create_409_from_a_concurrent_reporter_merges_into_its_repair_instead_of_a_twin() -> None:
    fake = FakeApi()
    intake = intake_on(fake)
    other = intake_on(fake)
    # Between our list and our create, another reporter opens the node's repair under the same name.
    fake.before_create.append(lambda: other.report("n", [xid(1, source=Source.GRAFANA)], source=Source.GRAFANA))

    result = intake.report("n", [xid(0)])

    assert len(fake.objects) == 1, f"twins: {sorted(fake.objects)}"
    [stored] = fake.objects.values()
    assert result.name == stored["metadata"]["name"] and not result.created
    assert sorted(f["source"] for f in stored["spec"]["findings"]) == ["agent", "grafana"]


def test_a_name_held_by_a_finished_repair_gets_a_fresh_name() -> None:
    fake = FakeApi()
    intake = intake_on(fake)
    fake.before_create.append(lambda: None)
    finished = intake.report("n", [xid(0)])
    fake.objects[finished.name]["status"] = {"phase": "Succeeded"}

    again = intake.report("n", [xid(1)])  # within the same second: the plain name is taken

    assert again.created and again.name != finished.name and again.name.startswith(finished.name)
    assert len(fake.objects) == 2


def test_opted_out_and_unknown_nodes_are_refused_before_anything_is_written() -> None:
    disabled = FakeApi(labels={"repairbot.io/disabled": "true"})
    with pytest.raises(NodeOptedOut, match="disabled=true"):
        intake_on(disabled).report("n", [xid(0)], source=Source.GRAFANA)
    assert disabled.objects == {} and disabled.creates == [] and "repairbot.io/state" not in disabled.labels

    missing = FakeApi(node_exists=False)
    with pytest.raises(NodeNotFound, match="404"):
        intake_on(missing).report("n", [xid(0)])
    assert missing.objects == {}


def test_a_merge_reads_no_node_and_a_create_reads_it_once() -> None:
    fake = FakeApi()
    intake = intake_on(fake)
    intake.report("n", [xid(0)])
    assert fake.node_reads == 1
    intake.report("n", [xid(1)])
    assert fake.node_reads == 1


def test_an_alert_opening_a_repair_writes_the_repair_only_never_the_node() -> None:
    """The ``faulty`` tag of a repair that waits is the operator's (issue 16): an alert costs its one create."""
    fake = FakeApi()
    result = intake_on(fake).report("n", [xid(0, source=Source.GRAFANA)], source=Source.GRAFANA)
    assert result.created and fake.creates == [result.name]
    assert fake.node_patches == 0 and "repairbot.io/state" not in fake.labels


def test_an_alert_on_a_quarantined_node_is_recorded_on_the_quarantine_and_leaves_its_label() -> None:

    held = FakeApi(labels={"repairbot.io/state": "quarantined"})
    held.objects["n-q"] = repair("n-q", "Quarantined") | {"metadata": {
        "name": "n-q", "labels": {"repairbot.io/node": "n"}, "resourceVersion": "1"}}  # fmt: skip
    result = intake_on(held).report("n", [xid(0, source=Source.GRAFANA)], source=Source.GRAFANA)
    assert result.quarantined and result.name == "n-q"
    assert held.labels["repairbot.io/state"] == "quarantined"
    [item] = held.objects["n-q"]["spec"]["findings"]
    assert item["evidence"]["whileQuarantined"] == "1"
    assert held.node_reads == 0 and held.node_patches == 0


# --------------------------------------------------------------------------- reading from a watch cache


class LaggingCache:
    """A watch cache (synced) that shows only what it was last handed: ``seen``, as it was then."""

    def __init__(self, fake: FakeApi, seen: list[dict[str, Any]] | None = None) -> None:
        self.fake = fake
        self.seen = seen or []

    def repairs_of(self, node: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.seen)

    def node_metadata(self, node: str) -> dict[str, Any]:
        return {"name": node, "labels": dict(self.fake.labels), "resourceVersion": "7"}


def test_a_cache_that_lags_intakes_own_create_makes_no_twin() -> None:
    fake = FakeApi()
    intake = intake_on(fake, LaggingCache(fake))  # the watch has not shown intake's create yet

    first = intake.report("n", [xid(0)])
    second = intake.report("n", [xid(1)])

    assert first.created and not second.created and second.name == first.name
    assert list(fake.objects) == [first.name]
    assert [f["gpu"]["index"] for f in fake.objects[first.name]["spec"]["findings"]] == [0, 1]
    assert (fake.lists, fake.node_reads, len(fake.creates), fake.replaces) == (0, 0, 1, 1)  # two writes, no read


def test_a_stale_cache_write_gets_409_rereads_the_api_and_merges_every_finding() -> None:
    fake = FakeApi()
    intake_on(fake).report("n", [xid(0)])
    stale = copy.deepcopy(list(fake.objects.values()))  # what the cache shows ...
    intake_on(fake).report("n", [xid(1, source=Source.GRAFANA)], source=Source.GRAFANA)  # ... before this merge
    fake.lists = 0
    intake = intake_on(fake, LaggingCache(fake, stale))

    result = intake.report("n", [xid(2)])

    [repair] = fake.objects.values()
    assert result.name == repair["metadata"]["name"] and not result.created
    assert sorted(f["gpu"]["index"] for f in repair["spec"]["findings"]) == [0, 1, 2]
    assert fake.lists == 1  # the 409 sent it to the API once; the first try read the cache


def test_a_cached_repair_that_is_gone_is_reread_from_the_api() -> None:
    fake = FakeApi()
    intake_on(fake).report("n", [xid(0)])
    folded = copy.deepcopy(list(fake.objects.values()))
    fake.objects.clear()  # the operator folded and deleted it; the cache has not seen the delete yet

    result = intake_on(fake, LaggingCache(fake, folded)).report("n", [xid(1)])

    assert result.created and list(fake.objects) == [result.name]


def test_an_alert_on_a_cached_node_already_held_patches_no_label() -> None:
    fake = FakeApi(labels={"repairbot.io/state": "repairing"})
    intake = intake_on(fake, LaggingCache(fake))

    intake.report("n", [xid(0, source=Source.GRAFANA)], source=Source.GRAFANA)

    assert (fake.node_reads, fake.node_patches) == (0, 0) and fake.labels == {"repairbot.io/state": "repairing"}
