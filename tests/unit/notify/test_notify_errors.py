"""Which Slack and Jira failures are waited out and which are recorded and skipped, and how long a lane waits."""

from __future__ import annotations

import pytest

from repairbot.notify.backoff import LaneBackoff
from repairbot.notify.errors import NotifyError, jira_retryable, metric_code, retry_after_seconds, slack_retryable


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("invalid_blocks", 200, False),
        ("msg_too_long", 200, False),
        ("channel_not_found", 200, False),
        ("not_in_channel", 200, False),
        ("is_archived", 200, False),
        ("is_inactive", 200, False),
        ("edit_window_closed", 200, False),
        ("cant_update_message", 200, False),
        ("message_not_found", 200, False),
        ("msg_blocks_too_long", 200, False),
        ("invalid_auth", 200, False),
        ("some_new_refusal", 200, False),  # an unknown refusal is this message's: recorded, never spun on
        ("ratelimited", 429, True),
        ("internal_error", 200, True),
        ("fatal_error", 500, True),
        ("service_unavailable", 200, True),
        ("http-502", 502, True),
        ("connection-error", None, True),
    ],
)
def test_slack_errors_sort_into_transient_and_permanent(code: str, status: int | None, retryable: bool) -> None:
    assert slack_retryable(code, status) is retryable


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (404, False), (413, False), (409, True), (429, True), (500, True),
     (503, True), (None, True)],
)  # fmt: skip
def test_jira_errors_sort_by_http_status(status: int | None, retryable: bool) -> None:
    assert jira_retryable(status) is retryable


def test_only_slack_form_refusals_are_worth_a_plain_text_try() -> None:
    assert NotifyError("slack", "chat.postMessage", "invalid_blocks", retryable=False).reducible
    assert NotifyError("slack", "chat.update", "msg_too_long", retryable=False).reducible
    assert not NotifyError("slack", "chat.postMessage", "channel_not_found", retryable=False).reducible
    assert not NotifyError("jira", "comment", "http-400", retryable=False).reducible


@pytest.mark.parametrize(("header", "seconds"), [("3", 3.0), (" 1.5 ", 1.5), ("", None), (None, None),
                                                  ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("-1", None)])  # fmt: skip
def test_retry_after_is_read_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_error_codes_make_bounded_metric_labels() -> None:
    assert metric_code("invalid_blocks") == "invalid_blocks"
    assert metric_code("HTTP 400 {bad}") == "http_400_bad_"
    assert len(metric_code("x" * 500)) == 40 and metric_code("") == "unknown"


def test_a_lane_backs_off_exponentially_up_to_a_cap_and_resets_on_success() -> None:
    backoff = LaneBackoff(base=1.0, cap=8.0)
    assert backoff.ready(0.0)
    delays = [backoff.failed(100.0) for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert not backoff.ready(107.9) and backoff.ready(108.0)
    backoff.succeeded()
    assert backoff.ready(0.0) and backoff.failed(0.0) == 1.0


def test_a_lane_waits_at_least_what_retry_after_says() -> None:
    backoff = LaneBackoff(base=1.0, cap=8.0)
    assert backoff.failed(0.0, retry_after=30.0) == 30.0  # the service's word wins over the schedule
    assert backoff.failed(0.0, retry_after=0.5) == 2.0  # but never shortens it
    assert LaneBackoff(base=1.0, cap=8.0).failed(0.0, retry_after=10_000) == 80.0  # a wild value is bounded


@pytest.mark.parametrize(
    ("code", "reducible"),
    [("invalid_blocks", True), ("invalid_blocks_format", True), ("msg_too_long", True), ("msg_blocks_too_long", True),
     ("is_archived", False), ("not_in_channel", False), ("channel_not_found", False), ("edit_window_closed", False),
     ("cant_update_message", False)],
)  # fmt: skip
def test_only_a_refusal_of_the_messages_form_is_tried_again_as_plain_text(code: str, reducible: bool) -> None:
    """A refused form is sent once more, reduced (never the same message again); a channel's refusal is not."""
    assert NotifyError("slack", "chat.postMessage", code, retryable=False).reducible is reducible
