"""Pure reads of a Node into NodeMarks, and taint values built from free text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repairbot.kube.marks import node_marks, taint_value
from repairbot.model import LABEL_STATE, TAINT_UNHEALTHY, NodeState

DELETED_AT = "2026-01-01T00:00:00Z"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _node(**parts: object) -> dict[str, object]:
    node: dict[str, object] = {
        "metadata": {"name": "gpu-1", "uid": "u-1", "labels": {"team": "ml"}},
        "spec": {},
        "status": {},
    }
    node.update(parts)
    return node


def test_a_fresh_node_has_no_marks() -> None:
    marks = node_marks(_node())
    assert (marks.name, marks.uid, marks.unschedulable, marks.our_taint, marks.state) == (
        "gpu-1",
        "u-1",
        False,
        False,
        None,
    )
    assert (marks.ready, marks.boot_id, marks.deleting, marks.taint_reason) == (False, "", False, None)
    assert marks.labels == {"team": "ml"}


def test_our_marks_and_the_node_status_are_read() -> None:
    marks = node_marks(
        _node(
            metadata={"name": "gpu-1", "labels": {LABEL_STATE: "repairing"}, "deletionTimestamp": DELETED_AT},
            spec={"unschedulable": True, "taints": [
                {"key": "other", "effect": "NoSchedule"},
                {"key": TAINT_UNHEALTHY, "value": "xid-79", "effect": "NoSchedule"},
            ]},
            status={"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"bootID": "b-2"}},
        )
    )  # fmt: skip
    assert marks.unschedulable and marks.our_taint and marks.taint_reason == "xid-79"
    assert marks.state is NodeState.REPAIRING
    assert marks.ready and marks.boot_id == "b-2" and marks.deleting


@pytest.mark.parametrize(
    ("taints", "ours"),
    [
        ([{"key": TAINT_UNHEALTHY, "effect": "NoExecute"}], False),  # same key, not our effect
        ([{"key": "repairbot.io/other", "effect": "NoSchedule"}], False),
        ([{"key": TAINT_UNHEALTHY, "effect": "NoSchedule"}], True),  # value-less still ours
    ],
)
def test_only_our_key_and_effect_is_our_taint(taints: list[dict[str, str]], ours: bool) -> None:
    assert node_marks(_node(spec={"taints": taints})).our_taint is ours


@pytest.mark.parametrize(
    ("condition", "ready"),
    [({"type": "Ready", "status": "Unknown"}, False), ({"type": "Ready", "status": "False"}, False),
     ({"type": "GPUHealthy", "status": "True"}, False)],
)  # fmt: skip
def test_ready_only_when_the_kubelet_says_so(condition: dict[str, str], ready: bool) -> None:
    assert node_marks(_node(status={"conditions": [condition]})).ready is ready


def test_a_foreign_state_value_is_kept_raw_but_not_a_state() -> None:
    marks = node_marks(_node(metadata={"name": "gpu-1", "labels": {LABEL_STATE: "broken"}}))
    assert marks.state_label == "broken" and marks.state is None


@pytest.mark.parametrize(
    ("reason", "value"),
    [
        ("xid-79", "xid-79"),
        ("Fan noise, see ticket OPS-12!", "Fan-noise-see-ticket-OPS-12"),
        ("  --row_remap.pending--  ", "row_remap.pending"),
        ("", "unknown"),
        ("!!!", "unknown"),
        ("x" * 80, "x" * 63),
        ("a" * 62 + "-b", "a" * 62),
    ],
)
def test_taint_values_are_valid_label_values(reason: str, value: str) -> None:
    assert taint_value(reason) == value


@given(st.text())
def test_any_reason_becomes_a_valid_label_value(reason: str) -> None:
    value = taint_value(reason)
    assert 0 < len(value) <= 63
    assert LABEL_VALUE.match(value)
