"""Pure parts of the EventRecorder: reasons, message limits, involved objects."""

from __future__ import annotations

import pytest

from repairbot.kube.events import ObjectRef, camel_reason, clip_message


@pytest.mark.parametrize(
    ("reason", "camel"),
    [("DrainTimedOut", "DrainTimedOut"), ("drain-timed-out", "DrainTimedOut"), ("next rung", "NextRung"),
     ("", "Unknown"), ("--", "Unknown")],
)  # fmt: skip
def test_reasons_are_camel_case(reason: str, camel: str) -> None:
    assert camel_reason(reason) == camel


def test_messages_are_clipped_to_1024_bytes() -> None:
    assert clip_message("short") == "short"
    clipped = clip_message("é" * 600)  # 1200 bytes of UTF-8
    assert len(clipped.encode()) <= 1024 and clipped.endswith("...")


def test_cluster_scoped_objects_report_into_default() -> None:
    repair = ObjectRef.from_object(
        {"apiVersion": "repairbot.io/v1alpha1", "kind": "GPURepair", "metadata": {"name": "r", "uid": "u"}}
    )
    assert repair.event_namespace == "default"
    assert repair.as_involved_object() == {
        "kind": "GPURepair",
        "name": "r",
        "apiVersion": "repairbot.io/v1alpha1",
        "uid": "u",
    }
    pod = ObjectRef.from_object({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml"}})
    assert pod.event_namespace == "ml" and pod.as_involved_object()["namespace"] == "ml"
    assert ObjectRef.node("gpu-1").as_involved_object() == {"kind": "Node", "name": "gpu-1", "apiVersion": "v1"}
