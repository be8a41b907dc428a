"""The operator's client-side rate limit as client-go's: ``burst`` at once, then ``qps`` a second."""

from __future__ import annotations

from typing import Any

import pytest

from repairbot.kube.rate_limit import TokenBucket, prepaid


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


class Recorded:
    """The REST client under the limit: records when each request went (by the fake clock)."""

    def __init__(self, time: FakeTime) -> None:
        self.time, self.sent = time, list[float]()

    def request(self, *args: object, **kwargs: object) -> None:
        self.sent.append(self.time.now)


def limited(time: FakeTime, *, qps: float, burst: int) -> tuple[Any, Recorded, TokenBucket]:
    from kubernetes import client

    from repairbot.kube.rate_limit import _LimitedRest

    api, rest = client.ApiClient(), Recorded(time)
    bucket = TokenBucket(qps=qps, burst=burst, clock=time.clock, sleep=time.sleep)
    api.rest_client = _LimitedRest(rest, bucket)
    return api, rest, bucket


def test_a_prepaid_step_waits_before_it_reads_and_its_writes_then_go_at_once() -> None:
    time = FakeTime()
    api, rest, _ = limited(time, qps=10, burst=1)

    with prepaid(api, 2):
        read_at = time.now  # the step reads the watch cache here, after the wait
        api.rest_client.request("PATCH", "/node")
        api.rest_client.request("PATCH", "/status")

    assert read_at == pytest.approx(0.1)  # the wait came first
    assert rest.sent == pytest.approx([0.1, 0.1])  # then both writes within the same instant


def test_tokens_a_prepaid_step_did_not_spend_are_given_back() -> None:
    time = FakeTime()
    api, _, bucket = limited(time, qps=10, burst=3)

    with prepaid(api, 3):
        api.rest_client.request("PATCH", "/status")  # the decision needed one write, not three

    assert bucket.take() == 0.0 and bucket.take() == 0.0  # the two unspent are back in the bucket


def test_prepaid_on_a_client_without_a_limit_changes_nothing() -> None:
    from kubernetes import client

    api = client.ApiClient()
    rest = api.rest_client
    with prepaid(api, 2):
        assert api.rest_client is rest
