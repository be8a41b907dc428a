"""A repair's history entries as Grafana annotations: tags, text in the history's words, regions for done steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from repairbot.model import format_time
from repairbot.notify.grafana import annotation_for, epoch_ms

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def entry(step: str, outcome: str, message: str, seconds: float) -> dict[str, str]:
    return {"step": step, "outcome": outcome, "message": message, "at": format_time(T0 + timedelta(seconds=seconds))}


HISTORY = [
    entry("cordon", "started", "cordoning gpu-1: Xid 79", 0),
    entry("cordon", "done", "cordoning gpu-1: Xid 79", 1),
    entry("start-drain", "started", "draining 3 pods", 2),
    entry("reboot", "done", "reboot came back", 120),
    entry("return-to-service", "started", "validated; returning gpu-1", 130),
]


def test_each_step_is_an_annotation_tagged_repairbot_node_phase_and_repair_with_the_historys_words() -> None:
    marks = [annotation_for(HISTORY, i, node="gpu-1", repair="gpu-1-x", phase="Validating") for i in range(5)]
    assert [m.text for m in marks] == [h["message"] for h in HISTORY]
    assert [m.tags[2] for m in marks] == ["Cordoned", "Cordoned", "Draining", "Validating", "Succeeded"]
    assert all(m.tags[:2] == ("repairbot", "gpu-1") and "repair:gpu-1-x" in m.tags for m in marks)
    assert marks[2].to_api() == {"time": epoch_ms(T0 + timedelta(seconds=2)), "tags": list(marks[2].tags),
                                 "text": "draining 3 pods"}  # fmt: skip


def test_a_done_step_right_after_its_start_is_a_region_from_start_to_end() -> None:
    done = annotation_for(HISTORY, 1, node="gpu-1", repair="gpu-1-x", phase="Cordoned")
    assert (done.time_ms, done.time_end_ms) == (epoch_ms(T0), epoch_ms(T0 + timedelta(seconds=1)))
    lone = annotation_for(HISTORY, 3, node="gpu-1", repair="gpu-1-x", phase="Remediating")
    assert lone.time_end_ms is None  # no started line for it: a point


def test_the_policy_tags_and_dashboard_are_added_and_an_empty_message_still_has_text() -> None:
    history = [{"step": "validate", "outcome": "done", "message": "", "at": format_time(T0)}]
    mark = annotation_for(history, 0, node="gpu-1", repair="r", phase="Validating", extra_tags=("gpu", "repairbot"),
                          dashboard_uid="fleet")  # fmt: skip
    assert mark.text == "validate done" and mark.tags.count("repairbot") == 1 and "gpu" in mark.tags
    assert mark.to_api()["dashboardUID"] == "fleet"
