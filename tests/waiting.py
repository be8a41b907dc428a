"""Waiting in tests for something a background thread (an operator, a watch) will do: poll, then fail by name."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(condition: Callable[[], Any], timeout: float = 20, message: str = "condition") -> Any:
    """``condition()``'s first truthy value, polled every 0.1 s; AssertionError naming ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")
