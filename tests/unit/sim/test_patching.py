"""The three patch flavours, as the API server applies them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repairbot_sim.kube.patching import PatchError, apply_json_patch, json_merge_patch, strategic_merge_patch

NODE = {
    "metadata": {"name": "gpu-1", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {"taints": [{"key": "k1", "effect": "NoSchedule"}]},
    "status": {
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "GPUHealthy", "status": "True"},
        ],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
    },
}


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [  # RFC 7386 appendix A examples
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_json_merge_patch_rfc7386(target: object, patch: object, expected: object) -> None:
    assert json_merge_patch(target, patch) == expected


def test_strategic_merges_conditions_by_type_and_keeps_others() -> None:
    patch = {"status": {"conditions": [{"type": "GPUHealthy", "status": "False", "reason": "Xid79"}]}}
    result = strategic_merge_patch(NODE, patch, "Node")
    assert result["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "GPUHealthy", "status": "False", "reason": "Xid79"},
    ]
    assert NODE["status"]["conditions"][1]["status"] == "True"  # input untouched


def test_strategic_replaces_taints_wholesale_like_kubernetes() -> None:
    patch = {"spec": {"taints": [{"key": "repairbot.io/unhealthy", "value": "xid", "effect": "NoSchedule"}]}}
    result = strategic_merge_patch(NODE, patch, "Node")
    assert result["spec"]["taints"] == patch["spec"]["taints"]


def test_strategic_directives() -> None:
    delete = {"status": {"conditions": [{"type": "Ready", "$patch": "delete"}]}}
    assert [c["type"] for c in strategic_merge_patch(NODE, delete, "Node")["status"]["conditions"]] == ["GPUHealthy"]
    replace = {"metadata": {"labels": {"$patch": "replace", "c": "3"}}}
    assert strategic_merge_patch(NODE, replace, "Node")["metadata"]["labels"] == {"c": "3"}
    drop_map = {"status": {"$patch": "delete"}}
    assert "status" not in strategic_merge_patch(NODE, drop_map, "Node")
    finalizers = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "$setElementOrder/finalizers": []}}
    assert strategic_merge_patch(NODE, finalizers, "Node")["metadata"]["finalizers"] == []
    union = {"metadata": {"finalizers": ["y", "x"]}}
    assert strategic_merge_patch(NODE, union, "Node")["metadata"]["finalizers"] == ["x", "y"]
    whole_list = {"status": {"conditions": [{"$patch": "replace"}, {"type": "Only", "status": "True"}]}}
    assert strategic_merge_patch(NODE, whole_list, "Node")["status"]["conditions"] == [
        {"type": "Only", "status": "True"}
    ]


def test_strategic_merges_containers_by_name() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]},
                {"name": "b", "image": "y"},
            ]
        }
    }
    patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "F", "value": "2"}]}]}}
    result = strategic_merge_patch(pod, patch, "Pod")
    assert result["spec"]["containers"][0]["env"] == [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]
    assert result["spec"]["containers"][1] == {"name": "b", "image": "y"}


def test_strategic_list_item_without_merge_key_is_an_error() -> None:
    with pytest.raises(PatchError):
        strategic_merge_patch(NODE, {"status": {"conditions": [{"status": "True"}]}}, "Node")


def test_json_patch() -> None:
    ops = [
        {"op": "add", "path": "/metadata/labels/c", "value": "3"},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "replace", "path": "/spec/taints/0/key", "value": "k2"},
        {"op": "test", "path": "/metadata/name", "value": "gpu-1"},
    ]
    result = apply_json_patch(NODE, ops)
    assert result["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert result["spec"]["taints"][0]["key"] == "k2"
    with pytest.raises(PatchError):
        apply_json_patch(NODE, [{"op": "test", "path": "/metadata/name", "value": "other"}])
    with pytest.raises(PatchError):
        apply_json_patch(NODE, [{"op": "remove", "path": "/nope/x"}])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.dictionaries(st.text(max_size=2), json_values, max_size=4),
    st.dictionaries(st.text(max_size=2), json_values, max_size=4),
)
def test_merge_patch_is_idempotent(target: dict, patch: dict) -> None:
    once = json_merge_patch(target, patch)
    assert json_merge_patch(once, patch) == once
