"""Suite-wide hooks.

Tests marked ``@pytest.mark.gpu`` exercise the real NVML and run only where
``pynvml.nvmlInit()`` succeeds — a GPU node or a CI runner with a driver.
Everywhere else they are skipped with the reason, never failed.

The product logs at ``INFO`` in every test, as the Helm chart deploys it: a log call that breaks only
once its level is enabled (a field clashing with ``LogRecord``'s own) must break here, not in a fleet.
"""

from __future__ import annotations

import functools
import logging

import pytest

PRODUCT_LOG_LEVEL = logging.INFO
"""The chart's ``logLevel`` for the operator, the agent and the webhook."""


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("repairbot").setLevel(PRODUCT_LOG_LEVEL)


@functools.cache
def _nvml_unavailable_reason() -> str | None:
    """Why real NVML cannot be used here (None when it can); probed once per session."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as error:  # any failure means "no usable GPU here", whatever its type
        return f"needs a real NVIDIA GPU and driver: {error}"
    pynvml.nvmlShutdown()
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_tests = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_tests:
        return
    reason = _nvml_unavailable_reason()
    if reason is None:
        return
    for item in gpu_tests:
        item.add_marker(pytest.mark.skip(reason=reason))
