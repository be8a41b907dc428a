"""The operator's Prometheus metrics: what the fleet dashboard and RepairBot's own alerts read."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# MTTA is seconds (sub-second when it works); MTTR is minutes to hours.
MTTA_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
MTTR_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.repairs = Counter(
            "repairbot_repairs", "Finished repairs by finding class and outcome", ["reason", "outcome"], registry=r
        )
        self.steps = Counter("repairbot_steps", "Steps taken, by step and event reason", ["step", "event"], registry=r)
        self.mtta = Histogram(
            "repairbot_mtta_seconds", "Finding detected → node cordoned", buckets=MTTA_BUCKETS, registry=r
        )
        self.mttr = Histogram(
            "repairbot_mttr_seconds", "Finding detected → node back in service", buckets=MTTR_BUCKETS, registry=r
        )
        self.phase_seconds = Histogram(
            "repairbot_phase_seconds", "Time spent in each phase", ["phase"], buckets=MTTR_BUCKETS, registry=r
        )
        self.active = Gauge("repairbot_repairs_active", "Repairs not yet finished, by phase", ["phase"], registry=r)
        self.breaker_open = Gauge(
            "repairbot_breaker_open", "1 while the storm breaker is open or half-open", registry=r
        )
        self.reconcile_errors = Counter(
            "repairbot_reconcile_errors", "Reconciles that failed (retried)", ["kind"], registry=r
        )
        self.reconcile_seconds = Histogram(
            "repairbot_reconcile_seconds",
            "Time for one reconcile of one repair",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        # What RepairBot's own alerts read (charts/repairbot/rules): a repair stuck in a phase, a nodes-out
        # count that should stay within budget, and notifications owed to Slack/Jira that are not going out.
        self.phase_entered = Gauge(
            "repairbot_repair_phase_entered_timestamp_seconds",
            "Unix time the repair entered its current phase (unfinished repairs only)",
            ["name", "node", "phase"],
            registry=r,
        )
        self.nodes_out = Gauge(
            "repairbot_nodes_out_of_service",
            "Nodes cordoned by RepairBot (repairing, blocked or quarantined)",
            registry=r,
        )
        self.notifications_pending = Gauge(
            "repairbot_notifications_pending",
            "Repair steps recorded but not yet delivered, by target (slack, jira)",
            ["target"],
            registry=r,
        )
        self.notification_errors = Counter(
            "repairbot_notification_errors",
            "Deliveries that failed after their retries (they are tried again later)",
            ["target"],
            registry=r,
        )
