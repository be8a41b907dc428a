"""Label and field selectors behave like kube-apiserver's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repairbot_sim.kube.selectors import (
    SelectorError,
    label_selector_from_object,
    match_fields,
    match_labels,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "train", "tier": "gpu", "nvidia.com/gpu.present": "true"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=train", True),
        ("app==train", True),
        ("app!=train", False),
        ("app!=serve", True),
        ("missing!=x", True),  # != matches objects without the key
        ("app in (train,serve)", True),
        ("app in (serve)", False),
        ("app notin (serve, infer)", True),
        ("app notin (train)", False),
        ("missing notin (x)", True),
        ("nvidia.com/gpu.present", True),
        ("!nvidia.com/gpu.present", False),
        ("!missing", True),
        ("missing", False),
        ("app=train,tier=gpu", True),
        ("app=train,tier in (cpu, gpu),!missing", True),
        ("app=train,tier=cpu", False),
    ],
)
def test_label_selector(selector: str, expected: bool) -> None:
    assert match_labels(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize("bad", ["app in (x", "a b", "=x", "app=(x)"])
def test_label_selector_rejects_garbage(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_structured_selector_none_matches_nothing_and_empty_matches_all() -> None:
    assert match_labels(label_selector_from_object(None), LABELS) is False
    assert match_labels(label_selector_from_object({}), LABELS) is True
    selector = {
        "matchLabels": {"app": "train"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["gpu"]},
            {"key": "gone", "operator": "DoesNotExist"},
        ],
    }
    assert match_labels(label_selector_from_object(selector), LABELS) is True
    assert match_labels(label_selector_from_object(selector), {"app": "train"}) is False


POD = {
    "metadata": {"name": "p1", "namespace": "ml"},
    "spec": {"nodeName": "gpu-1"},
    "status": {"phase": "Running"},
}
NODE = {"metadata": {"name": "gpu-1"}, "spec": {}}


@pytest.mark.parametrize(
    ("obj", "selector", "expected"),
    [
        (POD, "spec.nodeName=gpu-1", True),
        (POD, "spec.nodeName==gpu-1", True),
        (POD, "spec.nodeName!=gpu-1", False),
        (POD, "spec.nodeName=gpu-1,status.phase!=Succeeded", True),
        (POD, "metadata.name=p1,metadata.namespace=ml", True),
        (POD, "status.phase=Pending", False),
        (POD, "spec.missing=", True),  # absent fields compare as ""
        (NODE, "spec.unschedulable=false", True),  # Go zero value
        ({**NODE, "spec": {"unschedulable": True}}, "spec.unschedulable=true", True),
    ],
)
def test_field_selector(obj: dict, selector: str, expected: bool) -> None:
    assert match_fields(parse_field_selector(selector), obj) is expected


def test_field_selector_rejects_clause_without_operator() -> None:
    with pytest.raises(SelectorError):
        parse_field_selector("spec.nodeName")


label_values = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "x.io/d"]), label_values, max_size=4),
    st.sampled_from(["a", "b", "c", "x.io/d"]),
    label_values,
)
def test_equality_and_inequality_are_complements(labels: dict[str, str], key: str, value: str) -> None:
    equal = match_labels(parse_label_selector(f"{key}={value}"), labels)
    unequal = match_labels(parse_label_selector(f"{key}!={value}"), labels)
    assert equal != unequal
    assert equal == match_labels(parse_label_selector(f"{key} in ({value})"), labels)
