"""Intake's merge: one item per finding class per GPU, count up, firstSeen kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from repairbot.kube.intake import corroborate_findings, merge_findings, oldest_active
from repairbot.model import Action, Finding, GpuRef, format_time

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def xid(code: int, gpu: int, when: datetime, action: Action = Action.REBOOT) -> Finding:
    return Finding(
        f"xid-{code}", f"Xid {code}", action, gpu=GpuRef(index=gpu, uuid=f"GPU-{gpu}"), xid=code, first_seen=when
    )


def test_repeat_counts_up_and_keeps_first_seen() -> None:
    merged = merge_findings([xid(79, 2, T0).to_dict()], [xid(79, 2, T0 + timedelta(minutes=1))])
    assert len(merged) == 1
    assert merged[0]["count"] == 2
    assert merged[0]["firstSeen"] == "2026-11-22T10:00:00.000Z"
    assert merged[0]["lastSeen"] == "2026-11-22T10:01:00.000Z"


def test_other_gpu_or_code_is_a_new_item() -> None:
    merged = merge_findings([xid(79, 2, T0).to_dict()], [xid(79, 3, T0), xid(48, 2, T0, Action.GPU_RESET)])
    assert [(m["code"], m["gpu"]["index"]) for m in merged] == [("xid-79", 2), ("xid-79", 3), ("xid-48", 2)]


@given(st.lists(st.tuples(st.sampled_from([13, 48, 79]), st.integers(0, 7), st.integers(0, 3600)), max_size=40))
def test_merge_conserves_counts(events: list[tuple[int, int, int]]) -> None:
    merged: list[dict] = []
    for code, gpu, offset in events:
        merged = merge_findings(merged, [xid(code, gpu, T0 + timedelta(seconds=offset))])
    assert sum(m["count"] for m in merged) == len(events)
    assert len(merged) == len({(c, g) for c, g, _ in events})
    for item in merged:
        offsets = [o for c, g, o in events if f"xid-{c}" == item["code"] and g == item["gpu"]["index"]]
        assert item["firstSeen"] == format_time(T0 + timedelta(seconds=min(offsets)))


def test_oldest_active_wins_and_terminal_ignored() -> None:
    def obj(name: str, created: str, phase: str | None) -> dict:
        return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": phase} if phase else {}}

    repairs = [
        obj("n-3", "2026-11-22T10:03:00Z", None),
        obj("n-1", "2026-11-22T10:01:00Z", "Succeeded"),
        obj("n-2", "2026-11-22T10:02:00Z", "Draining"),
    ]
    chosen = oldest_active(repairs)
    assert chosen is not None and chosen["metadata"]["name"] == "n-2"
    assert oldest_active([obj("n-1", "x", "Quarantined")]) is None


def _xid13_line(seq: int, pid: int, at: datetime) -> Finding:
    evidence = {"kmsgSeq": str(seq), "kmsgBoot": "boot-1", "pid": str(pid), "process": "python3"}
    return Finding("xid-13", "Xid 13", Action.NONE, gpu=GpuRef(index=3), first_seen=at, evidence=evidence)


def test_a_batch_sent_again_after_a_lost_reply_counts_each_kernel_log_record_once() -> None:
    """The agent re-sends what intake did not confirm; the repair must not count those Xids twice."""
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    first = merge_findings([], [_xid13_line(7, 101, t0)])
    batch = [_xid13_line(9, 202, t0 + timedelta(minutes=5))]
    once = merge_findings(first, batch)
    twice = merge_findings(once, batch)
    assert twice == once
    assert once[0]["count"] == 2
    assert [o["job"] for o in once[0]["occurrences"]] == ["python3[101]", "python3[202]"]


def _corroboration(seq: int, pid: int, at: datetime) -> Finding:
    """What the agent sends when a kernel-log line corroborates an Xid NVML told first: count 0, the job."""
    line = _xid13_line(seq, pid, at)
    line.count = 0
    line.occurrences = line.sightings()
    return line


def _nvml_xid13(at: datetime) -> Finding:
    return Finding("xid-13", "Xid 13", Action.NONE, gpu=GpuRef(index=3), first_seen=at, last_seen=at)


def test_a_corroboration_names_the_job_of_the_occurrence_it_corroborates_and_counts_nothing() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    stored = merge_findings([], [_nvml_xid13(t0)])
    (item,) = merge_findings(stored, [_corroboration(7, 101, t0 + timedelta(seconds=1))])
    assert item["count"] == 1
    assert item["occurrences"] == [{"at": format_time(t0), "job": "python3[101]", "ref": "boot-1:7"}]
    # Sent again after a lost reply: nothing changes.
    assert merge_findings([item], [_corroboration(7, 101, t0 + timedelta(seconds=1))]) == [item]


def test_a_corroboration_fills_only_a_jobless_occurrence_within_the_window() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    stored = merge_findings([], [_xid13_line(5, 100, t0)])  # an occurrence that already names its job
    stored = merge_findings(stored, [_nvml_xid13(t0 + timedelta(minutes=5))])
    late = merge_findings(stored, [_corroboration(7, 101, t0 + timedelta(minutes=6))])  # a minute after: no match
    assert late == stored
    (item,) = merge_findings(stored, [_corroboration(7, 101, t0 + timedelta(minutes=5, seconds=2))])
    assert item["count"] == 2
    assert [o.get("job") for o in item["occurrences"]] == ["python3[100]", "python3[101]"]


def test_a_corroboration_alone_never_makes_a_finding() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    assert merge_findings([], [_corroboration(7, 101, t0)]) == []
    other = merge_findings([], [xid(79, 2, t0)])
    assert merge_findings(other, [_corroboration(7, 101, t0)]) == other


def test_a_corroboration_is_placed_once_in_whichever_repair_holds_its_occurrence() -> None:
    """A lone Xid 13's repair ends at once: its line's job may arrive after, and goes to that older repair."""
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    older = merge_findings([], [_nvml_xid13(t0)])
    record = merge_findings([], [_xid13_line(9, 202, t0 + timedelta(minutes=5))])
    line = _corroboration(7, 101, t0 + timedelta(milliseconds=300))
    placed: set[tuple[str, str, str]] = set()
    unchanged, left = corroborate_findings(record, [line], placed)
    assert unchanged is None and left == [line]  # nothing of its own in the node's record
    filled, left = corroborate_findings(older, left, placed)
    assert left == [] and filled is not None
    assert filled[0]["count"] == 1 and [o["job"] for o in filled[0]["occurrences"]] == ["python3[101]"]
    # Sent again: its record is placed, so no repair takes it twice.
    assert corroborate_findings(older, [line], placed) == (None, [])
