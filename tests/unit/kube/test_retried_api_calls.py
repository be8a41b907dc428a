"""The one bounded retry every API read-modify-write goes through (:func:`repairbot.kube.client.retried`)."""

from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException

from repairbot.kube.client import retried


class Flaky:
    """A call that fails with ``errors`` in turn, then answers ``value``; counts its calls."""

    def __init__(self, *errors: BaseException, value: str = "written") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def test_a_conflict_and_a_server_error_are_retried_until_the_write_goes_through() -> None:
    call = Flaky(ApiException(status=409, reason="Conflict"), ApiException(status=500, reason="Internal"))
    assert retried(call, max_wait=0.01) == "written"
    assert call.calls == 3


def test_an_error_that_outlives_the_bound_is_raised_as_the_last_one_seen() -> None:
    errors = [ApiException(status=503, reason=f"Unavailable {n}") for n in range(4)]
    call = Flaky(*errors)
    with pytest.raises(ApiException) as raised:
        retried(call, attempts=3, max_wait=0.01)
    assert raised.value is errors[2]
    assert call.calls == 3


def test_the_default_bound_is_six_attempts() -> None:
    call = Flaky(*(ApiException(status=429, reason="TooManyRequests") for _ in range(10)))
    with pytest.raises(ApiException):
        retried(call, max_wait=0.01)
    assert call.calls == 6


def test_a_refusal_no_retry_can_fix_is_raised_at_once() -> None:
    call = Flaky(ApiException(status=403, reason="Forbidden"))
    with pytest.raises(ApiException, match="Forbidden"):
        retried(call, max_wait=0.01)
    assert call.calls == 1


def test_a_fenced_write_passes_its_own_predicate_and_its_409_is_not_retried() -> None:
    def unless_conflict(error: BaseException) -> bool:
        return isinstance(error, ApiException) and error.status != 409

    fenced = Flaky(ApiException(status=409, reason="Conflict"))
    with pytest.raises(ApiException, match="Conflict"):
        retried(fenced, retry=unless_conflict, max_wait=0.01)
    assert fenced.calls == 1
    hiccup = Flaky(ApiException(status=502, reason="BadGateway"))
    assert retried(hiccup, retry=unless_conflict, max_wait=0.01) == "written"
    assert hiccup.calls == 2
