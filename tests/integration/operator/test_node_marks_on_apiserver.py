"""Node marks (cordon, taint, state label) through the real client against the emulated API server."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from repairbot.kube.client import raw_call
from repairbot.kube.marks import (
    annotate,
    cordon_and_taint,
    read_node_marks,
    remove_marks,
    set_state_label,
    tag_waiting,
)
from repairbot.model import LABEL_STATE, TAINT_UNHEALTHY, NodeState
from repairbot_sim.kube.faults import FaultRule

FOREIGN_TAINT = {"key": "nvidia.com/gpu-maintenance", "value": "firmware", "effect": "NoExecute"}


def _node(core: client.CoreV1Api, name: str = "gpu-1") -> dict[str, Any]:
    return raw_call(core.read_node, name)


def _seed(apiserver: Any, kube_objects: Any, **spec: Any) -> None:
    node = kube_objects.gpu_node("gpu-1")
    node["spec"].update(spec)
    node["metadata"]["labels"]["team"] = "ml-infra"
    apiserver.server.create_object(node)


def test_cordon_taints_and_labels_the_node(apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any) -> None:
    _seed(apiserver, kube_objects)
    result = cordon_and_taint(api, "gpu-1", reason="xid-79", state=NodeState.REPAIRING)
    assert (result.was_unschedulable, result.had_our_taint, result.changed) == (False, False, True)
    node = _node(core)
    assert node["spec"]["unschedulable"] is True
    assert node["spec"]["taints"] == [{"key": TAINT_UNHEALTHY, "value": "xid-79", "effect": "NoSchedule"}]
    assert node["metadata"]["labels"][LABEL_STATE] == "repairing"
    marks = read_node_marks(api, "gpu-1")
    assert marks is not None
    assert (marks.unschedulable, marks.our_taint, marks.taint_reason, marks.state) == (
        True, True, "xid-79", NodeState.REPAIRING,
    )  # fmt: skip


def test_repeating_the_cordon_writes_nothing(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any
) -> None:
    _seed(apiserver, kube_objects)
    cordon_and_taint(api, "gpu-1", reason="xid-79", state=NodeState.REPAIRING)
    version = _node(core)["metadata"]["resourceVersion"]
    again = cordon_and_taint(api, "gpu-1", reason="xid-79", state=NodeState.REPAIRING)
    assert (again.was_unschedulable, again.had_our_taint, again.changed) == (True, True, False)
    assert not again.cordoned_by_someone_else
    assert _node(core)["metadata"]["resourceVersion"] == version


def test_a_new_reason_replaces_our_taint_value_only(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any
) -> None:
    _seed(apiserver, kube_objects, taints=[FOREIGN_TAINT])
    cordon_and_taint(api, "gpu-1", reason="xid-79", state=NodeState.REPAIRING)
    cordon_and_taint(api, "gpu-1", reason="Fan noise, see ticket OPS-12!", state=NodeState.REPAIRING)
    taints = _node(core)["spec"]["taints"]
    assert taints == [
        FOREIGN_TAINT,
        {"key": TAINT_UNHEALTHY, "value": "Fan-noise-see-ticket-OPS-12", "effect": "NoSchedule"},
    ]


def test_remove_marks_keeps_foreign_taints_and_labels(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any
) -> None:
    _seed(apiserver, kube_objects, taints=[FOREIGN_TAINT])
    cordon_and_taint(api, "gpu-1", reason="xid-79", state=NodeState.REPAIRING)
    assert remove_marks(api, "gpu-1", uncordon=True) is True
    node = _node(core)
    assert node["spec"]["taints"] == [FOREIGN_TAINT]
    assert not node["spec"].get("unschedulable")
    assert LABEL_STATE not in node["metadata"]["labels"]
    assert node["metadata"]["labels"]["team"] == "ml-infra"
    version = node["metadata"]["resourceVersion"]
    assert remove_marks(api, "gpu-1", uncordon=True) is False
    assert _node(core)["metadata"]["resourceVersion"] == version


def test_someone_elses_cordon_stays_when_not_told_to_uncordon(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any
) -> None:
    _seed(apiserver, kube_objects, unschedulable=True)
    result = cordon_and_taint(api, "gpu-1", reason="ecc-dbe", state=NodeState.REPAIRING)
    assert result.cordoned_by_someone_else
    remove_marks(api, "gpu-1", uncordon=False)
    node = _node(core)
    assert node["spec"]["unschedulable"] is True
    assert not node["spec"].get("taints")
    assert LABEL_STATE not in node["metadata"]["labels"]


def test_conflicts_are_reread_and_retried(apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any) -> None:
    _seed(apiserver, kube_objects)
    apiserver.server.faults.add(FaultRule(method="PATCH", path=r"^/api/v1/nodes/gpu-1(\?|$)", status=409, count=2))
    result = cordon_and_taint(api, "gpu-1", reason="xid-79", state=NodeState.REPAIRING)
    assert result.changed
    assert sum(1 for action, method, _ in apiserver.server.faults.fired if (action, method) == ("fail", "PATCH")) == 2
    assert _node(core)["spec"]["unschedulable"] is True


def test_a_taint_added_between_read_and_write_is_not_lost(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The optimistic version check: a stale write is refused (409), re-read, and re-applied."""
    _seed(apiserver, kube_objects)
    original_read = client.CoreV1Api.read_node
    reads = []

    def read_then_race(self: client.CoreV1Api, *args: Any, **kwargs: Any) -> Any:
        answer = original_read(self, *args, **kwargs)
        reads.append(True)
        if len(reads) == 1:  # another controller taints the node right after our first read
            node = apiserver.server.get_object("v1", "Node", "gpu-1")
            node["spec"]["taints"] = [FOREIGN_TAINT]
            apiserver.server.apply_object(node)
        return answer

    monkeypatch.setattr(client.CoreV1Api, "read_node", read_then_race)
    cordon_and_taint(api, "gpu-1", reason="xid-79", state=NodeState.REPAIRING)
    monkeypatch.undo()
    assert len(reads) == 2
    keys = [t["key"] for t in _node(core)["spec"]["taints"]]
    assert sorted(keys) == sorted([FOREIGN_TAINT["key"], TAINT_UNHEALTHY])


def test_state_label_and_annotation_set_and_clear(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any
) -> None:
    _seed(apiserver, kube_objects)
    assert set_state_label(api, "gpu-1", NodeState.QUARANTINED) is True
    assert set_state_label(api, "gpu-1", NodeState.QUARANTINED) is False
    assert _node(core)["metadata"]["labels"][LABEL_STATE] == "quarantined"
    assert set_state_label(api, "gpu-1", None) is True
    assert LABEL_STATE not in _node(core)["metadata"]["labels"]
    assert annotate(api, "gpu-1", "repairbot.io/resume", "true") is True
    assert annotate(api, "gpu-1", "repairbot.io/resume", "true") is False
    assert _node(core)["metadata"]["annotations"]["repairbot.io/resume"] == "true"
    assert annotate(api, "gpu-1", "repairbot.io/resume", None) is True
    assert "repairbot.io/resume" not in (_node(core)["metadata"].get("annotations") or {})


def test_a_missing_node_reads_as_none(apiserver: Any, api: client.ApiClient) -> None:
    assert read_node_marks(api, "gpu-404") is None


def test_cordon_without_a_state_leaves_the_label_alone(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any
) -> None:
    _seed(apiserver, kube_objects)
    set_state_label(api, "gpu-1", NodeState.FAULTY)
    cordon_and_taint(api, "gpu-1", reason="xid-79", state=None)
    node = _node(core)
    assert node["spec"]["unschedulable"] is True
    assert node["metadata"]["labels"][LABEL_STATE] == "faulty"


def test_a_waiting_repairs_tag_is_written_once_and_never_over_repairbots_own_states(
    apiserver: Any, api: client.ApiClient, core: Any, kube_objects: Any
) -> None:
    _seed(apiserver, kube_objects)
    cached = _node(core)
    seen: list[dict[str, Any]] = []
    assert tag_waiting(api, "gpu-1", current=cached, written=seen.append) is True
    assert _node(core)["metadata"]["labels"][LABEL_STATE] == "faulty"
    assert seen and seen[0]["metadata"]["labels"][LABEL_STATE] == "faulty"  # handed back for the cache
    assert tag_waiting(api, "gpu-1", current=seen[0]) is False  # already tagged: nothing written
    set_state_label(api, "gpu-1", NodeState.REPAIRING)
    # A stale cached copy (no state label): the patch is fenced by its resourceVersion, the 409 re-reads
    # the node, finds it repairing, and writes nothing: the label never goes back to faulty.
    assert tag_waiting(api, "gpu-1", current=cached) is False
    assert _node(core)["metadata"]["labels"][LABEL_STATE] == "repairing"

