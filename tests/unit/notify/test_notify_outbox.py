"""The outbox: in order per target, each once, and retry arithmetic that stays bounded."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repairbot.notify.outbox import DeliveryState, Outbox, Target, exponential_backoff

NOW = datetime(2026, 1, 5, 3, 14, tzinfo=UTC)
NO_JITTER = exponential_backoff(base=timedelta(seconds=5), cap=timedelta(minutes=10), jitter=0)


def test_one_due_per_target_oldest_first() -> None:
    box = Outbox()
    box.add(Target.SLACK, "open-thread", {}, id="slack:parent")
    box.add(Target.SLACK, "reply", {"i": 0}, id="slack:reply:0")
    box.add(Target.JIRA, "ensure-ticket", {}, id="jira:ticket")
    assert [n.id for n in box.next_due(NOW)] == ["slack:parent", "jira:ticket"]
    box.mark_sent("slack:parent", {"channel": "C1", "ts": "1.1"})
    assert [n.id for n in box.next_due(NOW)] == ["slack:reply:0", "jira:ticket"]
    assert box.external_id(Target.SLACK, "ts") == "1.1"


def test_add_is_idempotent_on_id() -> None:
    box = Outbox()
    first = box.add(Target.JIRA, "comment", {"text": "a"}, id="jira:comment:3")
    again = box.add(Target.JIRA, "comment", {"text": "changed"}, id="jira:comment:3")
    assert again is first and len(box) == 1 and first.payload == {"text": "a"}


def test_failure_holds_back_only_its_target_until_backoff_passes() -> None:
    box = Outbox()
    box.add(Target.SLACK, "open-thread", {}, id="s1")
    box.add(Target.SLACK, "reply", {}, id="s2")
    box.add(Target.JIRA, "ensure-ticket", {}, id="j1")
    failed = box.mark_failed("s1", now=NOW, error="ratelimited", backoff=NO_JITTER)
    assert failed.state is DeliveryState.FAILED and failed.not_before == NOW + timedelta(seconds=5)
    assert [n.id for n in box.next_due(NOW)] == ["j1"]
    assert [n.id for n in box.next_due(NOW + timedelta(seconds=5))] == ["s1", "j1"]


def test_out_of_order_and_double_sends_are_refused() -> None:
    box = Outbox()
    box.add(Target.SLACK, "open-thread", {}, id="s1")
    box.add(Target.SLACK, "reply", {}, id="s2")
    with pytest.raises(ValueError, match="not next"):
        box.mark_sent("s2")
    box.mark_sent("s1")
    with pytest.raises(ValueError, match="already sent"):
        box.mark_sent("s1")


def test_round_trips_through_plain_dicts() -> None:
    box = Outbox()
    box.add(Target.SLACK, "open-thread", {"view": {"node": "gpu-17"}}, id="s1")
    box.add(Target.JIRA, "comment", {"text": "x"}, id="j1")
    box.mark_sent("s1", {"ts": "1.1"})
    box.mark_failed("j1", now=NOW, error="http-503", backoff=NO_JITTER)
    data = box.to_dicts()
    assert data[1] == {"id": "j1", "target": "jira", "kind": "comment", "payload": {"text": "x"},
                       "state": "failed", "attempts": 1, "notBefore": "2026-01-05T03:14:05.000Z",
                       "lastError": "http-503"}
    assert Outbox.from_dicts(data).to_dicts() == data


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 5), (2, 10), (3, 20), (7, 320), (8, 600), (60, 600)])
def test_backoff_doubles_to_a_cap(attempts: int, seconds: float) -> None:
    assert NO_JITTER(attempts) == timedelta(seconds=seconds)


@given(attempts=st.integers(min_value=0, max_value=10_000), seed=st.integers())
def test_backoff_with_jitter_is_bounded(attempts: int, seed: int) -> None:
    backoff = exponential_backoff(jitter=0.2, rng=random.Random(seed))
    delay = backoff(attempts)
    assert timedelta(seconds=5) <= delay <= timedelta(minutes=12)


@settings(max_examples=200)
@given(
    targets=st.lists(st.sampled_from(list(Target)), min_size=1, max_size=30),
    outcomes=st.lists(st.booleans(), min_size=1, max_size=200),
)
def test_every_item_is_sent_once_in_order_per_target(targets: list[Target], outcomes: list[bool]) -> None:
    """Whatever fails when, draining the outbox delivers each item once, in insertion order per target."""
    box = Outbox()
    for i, target in enumerate(targets):
        box.add(target, "step", {"i": i}, id=f"{target.value}:{i}")
    delivered: list[str] = []
    now = NOW
    failures = iter(outcomes)
    while box.pending():
        now += timedelta(minutes=11)  # past any backoff
        for item in box.next_due(now):
            if next(failures, True):
                box.mark_sent(item.id)
                delivered.append(item.id)
            else:
                box.mark_failed(item.id, now=now, error="down", backoff=NO_JITTER)
        restored = Outbox.from_dicts(box.to_dicts())  # the status survives an operator restart
        box = restored
    assert sorted(delivered) == sorted(f"{t.value}:{i}" for i, t in enumerate(targets))
    for target in Target:
        mine = [int(d.split(":")[1]) for d in delivered if d.startswith(target.value)]
        assert mine == sorted(mine)
