"""The gauges RepairBot's own alerts read: repairs by phase, when each entered it, nodes out of service."""

from __future__ import annotations

from prometheus_client import generate_latest

from repairbot.operator.metrics import OperatorMetrics, RepairGauges


def sample(metrics: OperatorMetrics, metric: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(metric, labels)


def test_phase_time_survives_updates_within_a_phase_and_resets_on_a_new_phase() -> None:
    metrics = OperatorMetrics()
    gauges = RepairGauges(metrics)
    gauges.seen("r1", "gpu-1", "Draining", since=100.0)
    gauges.seen("r1", "gpu-1", "Draining", since=150.0)  # a drain-progress update is not a new phase
    entered = "repairbot_repair_phase_entered_timestamp_seconds"
    assert sample(metrics, entered, name="r1", node="gpu-1", phase="Draining") == 100.0
    gauges.seen("r1", "gpu-1", "Remediating", since=200.0)
    assert sample(metrics, entered, name="r1", node="gpu-1", phase="Draining") is None
    assert sample(metrics, entered, name="r1", node="gpu-1", phase="Remediating") == 200.0
    assert sample(metrics, "repairbot_repairs_active", phase="Remediating") == 1


def test_quarantined_nodes_stay_out_finished_ones_come_back() -> None:
    metrics = OperatorMetrics()
    gauges = RepairGauges(metrics)
    gauges.seen("r1", "gpu-1", "Cordoned", since=1.0)
    gauges.seen("r2", "gpu-2", "Blocked", since=1.0)
    gauges.seen("r3", "gpu-3", "Pending", since=1.0)  # queued for budget: still schedulable
    assert sample(metrics, "repairbot_nodes_out_of_service") == 2
    gauges.seen("r1", "gpu-1", "Succeeded", since=2.0)
    gauges.seen("r2", "gpu-2", "Quarantined", since=2.0)
    assert sample(metrics, "repairbot_nodes_out_of_service") == 1
    assert sample(metrics, "repairbot_repairs_active", phase="Blocked") == 0
    gauges.seen("r2", "gpu-2", None, since=3.0)  # the GPURepair was deleted
    assert sample(metrics, "repairbot_nodes_out_of_service") == 0
    assert b'phase="Cordoned"' not in generate_latest(metrics.registry).split(b"entered_timestamp")[-1]
