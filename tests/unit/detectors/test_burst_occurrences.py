"""A kernel-log burst is one finding, but each of its lines stays an occurrence an escalation rule can count."""

from __future__ import annotations

from repairbot.detectors.bursts import Debouncer
from repairbot.model import Action, Finding, GpuRef


def _line(seq: int, pid: int) -> Finding:
    evidence = {"kmsgSeq": str(seq), "kmsgBoot": "b1", "pid": str(pid), "process": "python3"}
    return Finding("xid-13", "Xid 13", Action.NONE, gpu=GpuRef(index=3), evidence=evidence)


def test_three_jobs_folded_into_one_burst_are_still_three_jobs_once_merged() -> None:
    now = [1000.0]
    debouncer = Debouncer(window_s=180, report_interval_s=60, clock=lambda: now[0])
    first = debouncer.observe(_line(1, 101))
    assert first is not None
    for seq, pid in ((2, 202), (3, 303)):
        now[0] += 10
        assert debouncer.observe(_line(seq, pid)) is None
    now[0] += 60
    (delta,) = debouncer.due_reports()
    assert delta.count == 2
    assert [o.job for o in delta.occurrences] == ["python3[202]", "python3[303]"]
    first.merge(delta)
    assert first.count == 3
    assert [o.job for o in first.sightings()] == ["python3[101]", "python3[202]", "python3[303]"]
