"""The operator's client-side rate limit as client-go's: ``burst`` at once, then ``qps`` a second."""

from __future__ import annotations

import pytest

from repairbot.kube.rate_limit import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_burst_passes_at_once_and_the_rest_wait_their_turn() -> None:
    time = FakeTime()
    bucket = TokenBucket(qps=10, burst=3, clock=time.clock, sleep=time.sleep)

    waits = [bucket.take() for _ in range(5)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.1])
    assert time.now == pytest.approx(0.2)


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    time = FakeTime()
    bucket = TokenBucket(qps=10, burst=2, clock=time.clock, sleep=time.sleep)
    time.now = 100.0  # a long quiet spell

    waits = [bucket.take() for _ in range(3)]

    assert waits == pytest.approx([0.0, 0.0, 0.1])


def test_a_rate_limit_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="qps > 0"):
        TokenBucket(qps=0, burst=1)
