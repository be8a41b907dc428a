"""Server-side Table output, as kubectl prints it."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repairbot_sim.kube.resources import Registry
from repairbot_sim.kube.tables import build_table, human_duration, jsonpath_values

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
CRD = {
    "spec": {
        "group": "repairbot.io",
        "scope": "Cluster",
        "names": {"plural": "gpurepairs", "singular": "gpurepair", "kind": "GPURepair", "shortNames": ["gpr"]},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Node", "type": "string", "jsonPath": ".spec.nodeName"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt"},
                    {"name": "Ticket", "type": "string", "jsonPath": ".status.jira.key"},
                    {"name": "Last", "type": "string", "jsonPath": ".status.history[-1:].what"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }
        ],
    }
}


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: int, expected: str) -> None:
    assert human_duration(seconds) == expected


OBJ = {"a": {"b": [{"c": 1}, {"c": 2}, {"c": 3}], "d.e": "dotted"}, "s": "x"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".s", ["x"]),
        (".a.b[0].c", [1]),
        (".a.b[*].c", [1, 2, 3]),
        (".a.b[-1:].c", [3]),
        (".a.b[-1].c", [3]),
        (".a.b[0:2].c", [1, 2]),
        (".a['d.e']", ["dotted"]),
        ("{.a.b[1].c}", [2]),
        (".missing.x", []),
        (".a.b[9].c", []),
    ],
)
def test_jsonpath_subset(path: str, expected: list[Any]) -> None:
    assert jsonpath_values(OBJ, path) == expected


@given(st.lists(st.integers(), max_size=6))
def test_jsonpath_star_returns_every_element(values: list[int]) -> None:
    assert jsonpath_values({"v": [{"x": v} for v in values]}, ".v[*].x") == values


def test_crd_table_uses_printer_columns() -> None:
    registry = Registry()
    (info,) = registry.register_crd(CRD)
    obj = {
        "metadata": {"name": "gpu-1-x", "creationTimestamp": "2026-01-01T11:55:00Z"},
        "spec": {"nodeName": "gpu-1"},
        "status": {
            "phase": "Draining",
            "attempt": 2,
            "jira": {"key": "OPS-1"},
            "history": [{"what": "a"}, {"what": "b"}],
        },
    }
    table = build_table(info, [obj, {"metadata": {"name": "bare"}}], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Node",
        "Phase",
        "Attempt",
        "Ticket",
        "Last",
        "Age",
    ]
    assert table["rows"][0]["cells"] == ["gpu-1-x", "gpu-1", "Draining", 2, "OPS-1", "b", "5m"]
    assert table["rows"][1]["cells"] == ["bare", None, None, None, None, None, None]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


@pytest.mark.parametrize(
    ("include", "kind"), [("Object", "GPURepair"), ("Metadata", "PartialObjectMetadata"), ("None", None)]
)
def test_include_object(include: str, kind: str | None) -> None:
    (info,) = Registry().register_crd(CRD)
    obj = {"kind": "GPURepair", "metadata": {"name": "r"}}
    row = build_table(info, [obj], include_object=include, now=NOW)["rows"][0]
    assert (row.get("object") or {}).get("kind") == kind


def test_node_table_like_kubectl() -> None:
    info = Registry().lookup("", "v1", "nodes")
    assert info is not None
    node = {
        "metadata": {
            "name": "gpu-1",
            "creationTimestamp": "2026-01-01T10:00:00Z",
            "labels": {"node-role.kubernetes.io/gpu": "", "node-role.kubernetes.io/worker": ""},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.37.0"},
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
        },
    }
    cells = build_table(info, [node], now=NOW)["rows"][0]["cells"]
    assert cells[:6] == ["gpu-1", "Ready,SchedulingDisabled", "gpu,worker", "120m", "v1.37.0", "10.0.0.1"]
    not_ready = {
        **node,
        "spec": {},
        "metadata": {"name": "n"},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    }
    assert build_table(info, [not_ready], now=NOW)["rows"][0]["cells"][1:3] == ["NotReady", "<none>"]


def test_pod_table_like_kubectl() -> None:
    info = Registry().lookup("", "v1", "pods")
    assert info is not None
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T11:59:30Z"},
        "spec": {"nodeName": "gpu-1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 2},
                {"name": "b", "ready": False, "restartCount": 1},
            ],
        },
    }
    assert build_table(info, [pod], now=NOW)["rows"][0]["cells"][:5] == ["p", "1/2", "Running", "3", "30s"]
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    assert build_table(info, [pod], now=NOW)["rows"][0]["cells"][2] == "Terminating"


def test_default_table_is_name_and_age() -> None:
    info = Registry().lookup("", "v1", "configmaps")
    assert info is not None
    table = build_table(info, [{"metadata": {"name": "cm", "creationTimestamp": "2026-01-01T11:00:00Z"}}], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"] == ["cm", "60m"]


def test_events_print_like_kubectl() -> None:
    """``kubectl get events`` shows when, what kind, why, about what, and the words — not just names."""
    from repairbot_sim.kube.tables import _EVENT_COLUMNS, _event_row

    now = datetime.datetime(2026, 11, 22, 12, 0, 10, tzinfo=datetime.UTC)
    event = {
        "metadata": {"name": "gpu-node-002.1", "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": "gpu-node-002"},
        "type": "Warning",
        "reason": "DrainTimedOut",
        "message": "eviction blocked by PDB train/llama",
        "lastTimestamp": "2026-11-22T12:00:00Z",
    }
    assert [c["name"] for c in _EVENT_COLUMNS] == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert _event_row(event, now) == ["10s", "Warning", "DrainTimedOut", "node/gpu-node-002", event["message"]]
