"""``repairbot_build_info``: which release and Python each component runs, on every /metrics.

During a rolling upgrade the dashboard shows old and new replicas side by
side (``count by (version) (repairbot_build_info)``), and an alert can join
on it to name the version a misbehaving pod runs.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Gauge

from repairbot import __version__


def register_build_info(registry: CollectorRegistry) -> Gauge:
    """The gauge ``repairbot_build_info{version, python} 1`` on ``registry``."""
    info = Gauge(
        "repairbot_build_info", "Always 1: the RepairBot version and the Python it runs on", ["version", "python"],
        registry=registry,
    )  # fmt: skip
    info.labels(__version__, platform.python_version()).set(1)
    return info
