"""The side lanes' shared lifecycle: a pass at once, one every interval, a failing pass logged, a prompt stop."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from repairbot.operator.background import BackgroundLoop


def test_a_lane_runs_at_once_keeps_going_after_a_failing_pass_and_stops_promptly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes: list[int] = []
    twice = threading.Event()

    def work() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise RuntimeError("the service is down")
        twice.set()

    lane = BackgroundLoop("test-lane", work, lambda: 0.01, failed="test pass failed; retrying",
                          logger=logging.getLogger("test.lane"))  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="test.lane"):
        lane.start()
        assert twice.wait(5), "the lane stopped after its first pass failed"
        lane.stop()
    assert "test pass failed; retrying" in caplog.text and "the service is down" in caplog.text
    assert not any(t.name == "test-lane" for t in threading.enumerate())


def test_stop_wakes_a_long_wait_at_once() -> None:
    ran = threading.Event()
    lane = BackgroundLoop("test-slow-lane", ran.set, lambda: 3600.0, failed="never", logger=logging.getLogger())
    lane.start()
    assert ran.wait(5)
    started = time.monotonic()
    lane.stop()
    assert time.monotonic() - started < 2
