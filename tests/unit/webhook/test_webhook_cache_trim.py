"""What the webhook's repair cache keeps: enough to write the repair back whole, not its history."""

from __future__ import annotations

from repairbot.webhook.cache import trim_node, trim_repair


def repair(phase: str | None) -> dict:
    return {
        "apiVersion": "repairbot.io/v1alpha1", "kind": "GPURepair",
        "metadata": {"name": "n-1", "resourceVersion": "5", "labels": {"repairbot.io/node": "n"},
                     "annotations": {"repairbot.io/resume": "alice"}, "finalizers": ["repairbot.io/cleanup"],
                     "managedFields": [{"manager": "kopf"}]},
        "spec": {"nodeName": "n", "findings": [{"code": "xid-79"}]},
        "status": {"phase": phase, "history": [{"step": "cordon"}] * 100, "conditions": []},
    }  # fmt: skip


def test_a_cached_repair_keeps_its_annotations_and_finalizers_so_a_merge_written_back_drops_none() -> None:
    kept = trim_repair(repair("Cordoned"))
    assert kept is not None
    assert kept["metadata"]["annotations"] == {"repairbot.io/resume": "alice"}
    assert kept["metadata"]["finalizers"] == ["repairbot.io/cleanup"]
    assert "managedFields" not in kept["metadata"] and "history" not in kept["status"]
    assert kept["spec"]["findings"] == [{"code": "xid-79"}]


def test_a_finished_repair_is_not_cached_but_a_held_quarantine_is() -> None:
    assert trim_repair(repair("Succeeded")) is None
    assert trim_repair(repair("Quarantined")) is not None


def test_a_cached_node_is_its_name_labels_version_and_addresses() -> None:
    node = {"metadata": {"name": "n", "labels": {"a": "b"}, "resourceVersion": "3", "annotations": {"x": "y"}},
            "spec": {"taints": []}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                                               "capacity": {"cpu": "8"}}}  # fmt: skip
    assert trim_node(node) == {"metadata": {"name": "n", "labels": {"a": "b"}, "resourceVersion": "3"},
                               "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}  # fmt: skip
