"""CRD structural schemas on the emulated API server: defaults, CEL rules, formats, list types, GPURepair rules."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from repairbot_sim.crd import load_crd
from repairbot_sim.kube.api import KubeApi, Selector, WriteOptions
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.resources import Registry, ResourceInfo
from repairbot_sim.kube.store import Store

MERGE = "application/merge-patch+json"


def _crd(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min) + ' above max'"}
            ],
            "properties": {
                "min": {"type": "integer", "default": 0},
                "max": {"type": "integer", "default": 10},
                "mode": {"type": "string", "default": "auto", "enum": ["auto", "manual"]},
                "owner": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "owner is immutable"}],
                },
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                    },
                },
                "nested": {"type": "object", "properties": {"level": {"type": "integer", "default": 3}}},
            },
        },
        "status": {
            "type": "object",
            "properties": {"seenAt": {"type": "string", "format": "date-time"}, "count": {"type": "integer"}},
        },
    },
}


class Widgets:
    def __init__(self, schema: dict[str, Any] = SCHEMA) -> None:
        self.api = KubeApi(Store(), Registry())
        crds = self.api.registry.by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        assert crds is not None
        self.crds = crds
        self.api.create(crds, None, _crd(schema), WriteOptions())

    @property
    def info(self) -> ResourceInfo:
        info = self.api.registry.lookup("example.com", "v1", "widgets")
        assert info is not None
        return info

    def create(self, spec: dict[str, Any], name: str = "w") -> dict[str, Any]:
        body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
        return self.api.create(self.info, None, body, WriteOptions())

    def patch(self, body: dict[str, Any], subresource: str = "") -> dict[str, Any]:
        raw = json.dumps(body).encode()
        return self.api.patch(self.info, None, "w", MERGE, raw, WriteOptions(), subresource=subresource)


def _invalid(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.code == 422, caught.value.message
    return caught.value


def test_defaults_fill_missing_fields_of_objects_that_are_present() -> None:
    widgets = Widgets()
    stored = widgets.create({"max": 5})
    assert stored["spec"] == {"min": 0, "max": 5, "mode": "auto"}  # no "nested": defaults never create parents
    stored = widgets.patch({"spec": {"nested": {}}})
    assert stored["spec"]["nested"] == {"level": 3}


def test_a_default_added_to_the_crd_later_shows_when_the_object_is_read() -> None:
    widgets = Widgets()
    widgets.create({})
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["properties"]["colour"] = {"type": "string", "default": "blue"}
    crd = widgets.api.get(widgets.crds, None, "widgets.example.com")
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = schema
    widgets.api.update(widgets.crds, None, "widgets.example.com", crd, WriteOptions())
    assert widgets.api.get(widgets.info, None, "w")["spec"]["colour"] == "blue"
    items, _, _ = widgets.api.list(widgets.info, None, Selector())
    assert items[0]["spec"]["colour"] == "blue"


def test_a_failing_rule_is_a_422_with_the_message_expression_at_the_rules_path() -> None:
    error = _invalid(lambda: Widgets().create({"min": 7, "max": 3}))
    assert error.message == 'Widget.example.com "w" is invalid: spec: Invalid value: min 7 above max'
    assert error.details is not None
    assert error.details["causes"] == [
        {"reason": "FieldValueInvalid", "field": "spec", "message": "Invalid value: min 7 above max"}
    ]


def test_a_transition_rule_runs_only_when_there_is_an_old_value() -> None:
    widgets = Widgets()
    widgets.create({})
    widgets.patch({"spec": {"owner": "team-a"}})  # no old owner: the rule is not evaluated
    error = _invalid(lambda: widgets.patch({"spec": {"owner": "team-b"}}))
    assert error.message.endswith('spec.owner: Invalid value: "team-b": owner is immutable')
    assert widgets.api.get(widgets.info, None, "w")["spec"]["owner"] == "team-a"


def test_type_errors_block_the_rules_as_on_a_real_server() -> None:
    error = _invalid(lambda: Widgets().create({"min": "seven", "max": 3}))
    assert [c["reason"] for c in (error.details or {})["causes"]] == ["FieldValueTypeInvalid", "FieldValueInvalid"]
    assert "some validation rules were not checked because the object was invalid" in error.message


def test_set_and_map_lists_refuse_duplicates() -> None:
    error = _invalid(lambda: Widgets().create({"tags": ["a", "a"]}))
    assert 'spec.tags[1]: Duplicate value: "a"' in error.message
    error = _invalid(lambda: Widgets().create({"ports": [{"name": "http", "port": 1}, {"name": "http", "port": 2}]}))
    assert "spec.ports[1]: Duplicate value" in error.message


def test_status_writes_are_validated_and_pruned_too() -> None:
    widgets = Widgets()
    widgets.create({})
    stored = widgets.patch({"status": {"count": 2, "unknown": "x"}}, subresource="status")
    assert stored["status"] == {"count": 2}
    error = _invalid(lambda: widgets.patch({"status": {"seenAt": "2024-05-01 10:00:00"}}, subresource="status"))
    assert 'status.seenAt in body must be of type date-time: "2024-05-01 10:00:00"' in error.message
    assert widgets.patch({"status": {"seenAt": "2024-05-01T10:00:00+00:00"}}, subresource="status")


def test_null_in_a_non_nullable_field_is_dropped_but_a_null_list_item_is_an_error() -> None:
    widgets = Widgets()
    assert "owner" not in widgets.create({"owner": None})["spec"]
    error = _invalid(lambda: widgets.patch({"spec": {"tags": ["a", None]}}))
    assert 'spec.tags[1]: Invalid value: "null": spec.tags[1] in body must be of type string: "null"' in error.message


def test_a_crd_whose_rule_does_not_compile_is_refused() -> None:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.a >"}]}},
    }
    api = KubeApi(Store(), Registry())
    crds = api.registry.by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert crds is not None
    error = _invalid(lambda: api.create(crds, None, _crd(schema), WriteOptions()))
    (cause,) = (error.details or {})["causes"]
    assert cause["field"] == "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    assert "compilation failed: ERROR: <input>:1:" in cause["message"]
    assert api.registry.lookup("example.com", "v1", "widgets") is None


# -------------------------------------------------------------- the GPURepair CRD


@pytest.fixture
def repairs() -> tuple[KubeApi, ResourceInfo]:
    api = KubeApi(Store(), Registry())
    crds = api.registry.by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert crds is not None
    api.create(crds, None, load_crd(), WriteOptions())
    info = api.registry.lookup("repairbot.io", "v1alpha1", "gpurepairs")
    assert info is not None
    spec = {"nodeName": "gpu-1", "source": "agent", "findings": []}
    api.create(
        info,
        None,
        {"apiVersion": "repairbot.io/v1alpha1", "kind": "GPURepair", "metadata": {"name": "r"}, "spec": spec},
        WriteOptions(),
    )
    return api, info


def _patch_repair(repairs: tuple[KubeApi, ResourceInfo], body: dict[str, Any], subresource: str = "") -> dict[str, Any]:
    api, info = repairs
    return api.patch(info, None, "r", MERGE, json.dumps(body).encode(), WriteOptions(), subresource=subresource)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodeName": "gpu-2"}, 'spec.nodeName: Invalid value: "gpu-2": spec.nodeName is immutable'),
        ({"source": "manual"}, 'spec.source: Invalid value: "manual": spec.source is immutable'),
        ({"dryRun": True}, "spec.dryRun: Invalid value: spec.dryRun is immutable"),
    ],
)
def test_a_repair_never_changes_its_node_its_source_or_its_dry_run(
    repairs: tuple[KubeApi, ResourceInfo], change: dict[str, Any], message: str
) -> None:
    error = _invalid(lambda: _patch_repair(repairs, {"spec": change}))
    assert error.message.endswith(message)


def test_a_repair_takes_new_findings(repairs: tuple[KubeApi, ResourceInfo]) -> None:
    finding = {"code": "xid-79", "firstSeen": "2024-05-01T10:00:00Z", "count": 1}
    assert _patch_repair(repairs, {"spec": {"findings": [finding]}})["spec"]["findings"] == [finding]


def test_repair_conditions_are_keyed_by_type(repairs: tuple[KubeApi, ResourceInfo]) -> None:
    twice = [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]
    error = _invalid(lambda: _patch_repair(repairs, {"status": {"conditions": twice}}, "status"))
    assert "status.conditions[1]: Duplicate value" in error.message
