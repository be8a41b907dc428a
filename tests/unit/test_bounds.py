"""The size bounds of a GPURepair: truncation with a marker, capped findings, folded history (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repairbot.bounds import (
    EVIDENCE_KEY_MAX,
    EVIDENCE_KEYS_MAX,
    EVIDENCE_VALUE_MAX,
    FINDINGS_MAX,
    FOLDED_FINDINGS_CODE,
    HISTORY_FOLDED_STEP,
    HISTORY_MAX,
    MESSAGE_MAX,
    OBJECT_SIZE_TARGET,
    bound_finding,
    cap_findings,
    encoded_size,
    fold_history,
    truncate,
)
from repairbot.model import Action, Finding, GpuRef, Severity, format_time

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def entry(i: int, step: str = "queue") -> dict[str, object]:
    return {"step": step, "outcome": "done", "message": f"step {i}", "at": format_time(T0 + timedelta(minutes=i))}


@pytest.mark.parametrize(
    ("length", "cut"), [(10, False), (MESSAGE_MAX, False), (MESSAGE_MAX + 1, True), (900_000, True)]
)
def test_a_long_message_is_cut_with_a_marker_that_says_how_much(length: int, cut: bool) -> None:
    text = "x" * length
    out = truncate(text)
    assert len(out) <= MESSAGE_MAX
    assert (out != text) is cut
    if cut:
        assert out.endswith(f"of {length} bytes]")
        assert "truncated" in out


@given(st.text(max_size=3000), st.integers(min_value=0, max_value=5000))
def test_truncate_never_exceeds_its_limit_for_any_text(text: str, limit: int) -> None:
    out = truncate(text, limit)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= limit:
        assert out == text
    else:
        assert len(out.encode("utf-8", "surrogatepass")) <= max(limit, 60)  # a tiny limit gets the marker alone
        kept = out.rpartition(" … [truncated ")[0]
        assert text.startswith(kept)
        assert out.endswith(f"of {size} bytes]")


def test_a_finding_with_a_900kb_message_and_many_labels_is_bounded() -> None:
    huge = Finding("alert-x", "y" * 900_000, Action.NOTIFY, evidence={f"label.{i}": "z" * 5000 for i in range(200)})
    small = bound_finding(huge)
    assert len(small.message) <= MESSAGE_MAX and "truncated" in small.message
    assert len(small.evidence) == EVIDENCE_KEYS_MAX
    assert all(len(v) <= EVIDENCE_VALUE_MAX for v in small.evidence.values())
    assert huge.message == "y" * 900_000  # the original is not changed


def finding(i: int, action: Action = Action.NOTIFY, count: int = 1) -> Finding:
    return Finding(f"alert-{i}", f"alert {i}", action, Severity.WARNING, GpuRef(index=i % 8), count=count,
                   first_seen=T0 + timedelta(seconds=i))  # fmt: skip


def test_findings_over_the_cap_keep_the_strongest_and_newest_and_count_the_rest() -> None:
    many = [finding(i, count=2) for i in range(100)] + [finding(1000, Action.REBOOT)]
    capped = cap_findings(many)
    assert len(capped) == FINDINGS_MAX
    codes = [f.code for f in capped]
    assert "alert-1000" in codes  # the strongest stays whatever its age
    assert "alert-99" in codes and "alert-0" not in codes  # newest kept, oldest folded
    folded = capped[-1]
    assert folded.code == FOLDED_FINDINGS_CODE and folded.action is Action.NOTIFY
    assert folded.count == 2 * (101 - (FINDINGS_MAX - 1))
    assert folded.evidence["since"] == format_time(T0)  # when the oldest folded one was first seen
    assert folded.first_seen >= max(f.first_seen for f in capped[:-1])  # never the oldest: a tally drives nothing
    again = cap_findings([*capped[:-1], finding(2000), finding(2001), folded])
    assert len(again) == FINDINGS_MAX
    assert again[-1].count > folded.count  # a second fold adds up


def test_findings_under_the_cap_are_unchanged() -> None:
    few = [finding(i) for i in range(5)]
    assert cap_findings(few) == few


def test_history_under_the_cap_is_kept_whole() -> None:
    fold = fold_history([entry(i) for i in range(10)], [entry(10)], {"slack": 10})
    assert len(fold.history) == 11 and fold.cursors is None


def test_history_over_the_cap_folds_the_oldest_delivered_steps_into_one_summary_and_moves_cursors() -> None:
    stored = [entry(i) for i in range(HISTORY_MAX)]
    fold = fold_history(stored, [entry(HISTORY_MAX, "block")], {"slack": HISTORY_MAX, "jira": HISTORY_MAX})
    assert len(fold.history) < HISTORY_MAX
    summary = fold.history[0]
    assert summary["step"] == HISTORY_FOLDED_STEP
    folded = summary["folded"]
    assert f"{folded} earlier steps folded" in summary["message"]
    assert summary["since"] == stored[0]["at"] and stored[folded - 1]["at"] in summary["message"]
    assert fold.history[-1]["step"] == "block"  # the new entry is whole
    assert fold.history[1] == stored[folded]
    # every cursor points at the same next entry as before: the new one
    assert fold.cursors == {"slack": len(fold.history) - 1, "jira": len(fold.history) - 1}
    assert fold.history[fold.cursors["slack"]]["step"] == "block"


def test_history_is_not_folded_while_a_notifier_still_owes_steps() -> None:
    stored = [entry(i) for i in range(HISTORY_MAX)]
    fold = fold_history(stored, [entry(HISTORY_MAX)], {"slack": HISTORY_MAX, "jira": 3})
    assert len(fold.history) == HISTORY_MAX + 1 and fold.cursors is None


def test_history_folds_anyway_at_twice_the_cap_and_a_lagging_notifier_restarts_at_the_summary() -> None:
    stored = [entry(i) for i in range(2 * HISTORY_MAX)]
    fold = fold_history(stored, [entry(2 * HISTORY_MAX)], {"jira": 3})
    assert len(fold.history) < HISTORY_MAX
    assert fold.cursors == {"jira": 0}


def test_a_second_fold_adds_to_the_first_summary() -> None:
    first = fold_history([entry(i) for i in range(HISTORY_MAX)], [entry(HISTORY_MAX)], {})
    grown = first.history + [entry(1000 + i) for i in range(HISTORY_MAX)]
    second = fold_history(grown, [entry(5000)], {})
    total = len(grown) + 1
    assert second.history[0]["folded"] + len(second.history) - 1 == total + first.history[0]["folded"] - 1
    assert second.history[0]["since"] == first.history[0]["since"]


def test_history_messages_are_cut() -> None:
    fold = fold_history([{**entry(0), "message": "m" * 100_000}], [], {})
    assert len(fold.history[0]["message"]) <= MESSAGE_MAX


def test_the_worst_repair_the_bounds_allow_is_under_the_size_target() -> None:
    """Every cap at its limit at once — widest findings, longest history — still fits in 512 KiB (etcd: 1.5 MiB)."""
    wide = {f"{'k' * 200}{i}": "\U0001f600" * 10_000 for i in range(100)}  # 4-byte characters, huge keys
    findings = [bound_finding(Finding(f"alert-{i}", "\U0001f600" * 10_000, Action.NOTIFY, gpu=GpuRef(index=i),
                                      evidence=wide)) for i in range(200)]  # fmt: skip
    capped = cap_findings(findings)
    assert all(len(k) <= EVIDENCE_KEY_MAX for f in capped for k in f.evidence)
    history = fold_history([{**entry(i), "message": "\U0001f600" * 10_000} for i in range(2 * HISTORY_MAX)], [], {})
    repair = {"spec": {"findings": [f.to_dict() for f in capped]}, "status": {"history": history.history,
              "message": truncate("\U0001f600" * 10_000)}}  # fmt: skip
    assert encoded_size(repair) < OBJECT_SIZE_TARGET, encoded_size(repair)
