"""What every component's /metrics says about itself: its release, and (the operator) whether it leads."""

from __future__ import annotations

import platform

import pytest
from prometheus_client import CollectorRegistry

from repairbot import __version__
from repairbot.agent.metrics import AgentMetrics
from repairbot.operator.metrics import PHASE_BUCKETS, OperatorMetrics
from repairbot.webhook.metrics import WebhookMetrics


@pytest.mark.parametrize("component", [OperatorMetrics, AgentMetrics, WebhookMetrics])
def test_a_rolling_upgrade_shows_which_version_each_component_runs(component: type) -> None:
    registry: CollectorRegistry = component().registry
    labels = {"version": __version__, "python": platform.python_version()}
    assert registry.get_sample_value("repairbot_build_info", labels) == 1


def test_a_standby_operator_says_0_until_it_wins_the_lease() -> None:
    metrics = OperatorMetrics()
    assert metrics.registry.get_sample_value("repairbot_operator_leader") == 0
    metrics.set_leader(True)
    assert metrics.registry.get_sample_value("repairbot_operator_leader") == 1
    metrics.set_leader(False)
    assert metrics.registry.get_sample_value("repairbot_operator_leader") == 0


def test_phase_durations_from_a_second_to_a_day_fall_in_distinct_buckets() -> None:
    metrics = OperatorMetrics()
    for seconds in (0.5, 3, 45, 400, 5000, 20000, 80000):
        metrics.phase_seconds.labels("Draining").observe(seconds)
    sample = metrics.registry.get_sample_value
    buckets = [sample("repairbot_phase_seconds_bucket", {"phase": "Draining", "le": str(float(b))})
               for b in PHASE_BUCKETS]
    assert PHASE_BUCKETS[0] == 1 and PHASE_BUCKETS[-1] == 86400
    assert len(set(buckets)) == 7  # each observation moved the cumulative count at a different bucket
