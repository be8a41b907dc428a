"""The emulator checks ``metadata.ownerReferences`` as kube-apiserver's ValidateOwnerReferences does."""

from __future__ import annotations

from repairbot_sim.kube.validation import validate_owner_references


def _ref(kind: str, name: str, **extra: object) -> dict[str, object]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": f"uid-{name}", **extra}


def test_a_complete_reference_passes_and_each_missing_part_is_named() -> None:
    assert validate_owner_references({"ownerReferences": [_ref("ReplicaSet", "rs", controller=True)]}) == []
    causes = validate_owner_references({"ownerReferences": [{"apiVersion": "apps/", "kind": "", "name": "x"}]})
    assert [(c["field"], c["message"]) for c in causes] == [
        ("metadata.ownerReferences.apiVersion", 'Invalid value: "apps/": version must not be empty'),
        ("metadata.ownerReferences.kind", 'Invalid value: "": kind must not be empty'),
        ("metadata.ownerReferences.uid", 'Invalid value: "": uid must not be empty'),
    ]


def test_only_one_reference_may_be_the_controller() -> None:
    refs = [_ref("ReplicaSet", "a", controller=True), _ref("StatefulSet", "b", controller=True)]
    [cause] = validate_owner_references({"ownerReferences": refs})
    assert cause["field"] == "metadata.ownerReferences"
    assert 'Found "true" in references for ReplicaSet/a and StatefulSet/b' in cause["message"]
    assert validate_owner_references({"ownerReferences": [*refs[:1], _ref("Job", "c", controller=False)]}) == []
