"""The operator's Prometheus metrics: what the fleet dashboard and RepairBot's own alerts read."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from repairbot.build_info import register_build_info
from repairbot.notify.errors import NotifyError, metric_code

# MTTA is seconds (sub-second when it works); MTTR is minutes to hours.
MTTA_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
MTTR_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
# A phase lasts seconds (Pending, Cordoned) to hours (a drain behind a PDB, a Blocked repair waiting for a human).
PHASE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)


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
            "repairbot_phase_seconds", "Time spent in each phase", ["phase"], buckets=PHASE_BUCKETS, registry=r
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
            "Deliveries that failed after their retries (they are tried again later), by target and the "
            "service's error code (ratelimited, http-503, connection-error, ...)",
            ["target", "code"],
            registry=r,
        )
        self.repairs_deleted = Counter(
            "repairbot_repairs_deleted",
            "Finished GPURepairs deleted by the retention policy, by phase",
            ["phase"],
            registry=r,
        )
        self.notifications_refused = Counter(
            "repairbot_notifications_refused",
            "Messages Slack or Jira refused for good (recorded in the repair's history, skipped or sent plain), "
            "by target and the service's error code",
            ["target", "code"],
            registry=r,
        )
        self.build_info = register_build_info(r)
        self.leader = Gauge(
            "repairbot_operator_leader",
            "1 while this replica holds the Lease and acts, 0 while it stands by",
            registry=r,
        )
        self.leader.set(0)

    def count_notification_error(self, target: str, error: NotifyError) -> None:
        """One failed delivery to ``target`` (retried), labelled by the service's code made fit for a label.

        The code is the service's own word, so it is folded by
        :func:`~repairbot.notify.errors.metric_code` (bounded, label-safe) in
        this one place for every lane: Slack, Jira, Grafana and Alertmanager.
        """
        self.notification_errors.labels(target, metric_code(error.code)).inc()

    def count_notification_refused(self, target: str, code: str) -> None:
        """One message ``target`` refused for good, labelled as :meth:`count_notification_error` labels."""
        self.notifications_refused.labels(target, metric_code(code)).inc()

    def set_leader(self, leading: bool) -> None:
        """What the leader election tells: this replica became (True) or stopped being (False) the leader."""
        self.leader.set(1 if leading else 0)


# Phases in which RepairBot holds a node out of service (Quarantined stays out until a human acts).
OUT_OF_SERVICE_PHASES = frozenset({"Cordoned", "Draining", "Remediating", "Validating", "Blocked", "Quarantined"})
ACTIVE_PHASES = ("Pending", "Cordoned", "Draining", "Remediating", "Validating", "Blocked")


class RepairGauges:
    """Keeps the per-phase gauges current from the repairs the operator's watch sees.

    ``since`` is when this operator first saw the repair in its phase; after a
    restart the caller passes the repair's last history time instead, so a
    repair stuck for hours does not look fresh to the "stuck" alert.
    """

    def __init__(self, metrics: OperatorMetrics) -> None:
        self._metrics = metrics
        self._repairs: dict[str, tuple[str, str, float]] = {}  # name → (node, phase, since)
        # Kept incrementally: a burst of a thousand repairs must not cost a thousand scans per event.
        self._by_phase: dict[str, int] = dict.fromkeys(ACTIVE_PHASES, 0)
        self._out_nodes: dict[str, int] = {}  # node → its repairs holding it out of service

    def seen(self, name: str, node: str, phase: str | None, *, since: float) -> None:
        """A repair's latest phase (None: the repair is gone)."""
        previous = self._repairs.pop(name, None)
        if previous is not None:
            self._count(previous[0], previous[1], -1)
            if previous[1] in ACTIVE_PHASES:
                self._metrics.phase_entered.remove(name, previous[0], previous[1])
        if phase in ACTIVE_PHASES or phase in OUT_OF_SERVICE_PHASES:
            assert phase is not None
            same_phase = previous is not None and previous[1] == phase
            started = previous[2] if previous is not None and same_phase else since
            self._repairs[name] = (node, phase, started)
            self._count(node, phase, +1)
            if phase in ACTIVE_PHASES:
                self._metrics.phase_entered.labels(name, node, phase).set(started)
        for value in ACTIVE_PHASES:
            self._metrics.active.labels(value).set(self._by_phase[value])
        self._metrics.nodes_out.set(len(self._out_nodes))

    def _count(self, node: str, phase: str, delta: int) -> None:
        if phase in self._by_phase:
            self._by_phase[phase] += delta
        if phase in OUT_OF_SERVICE_PHASES:
            left = self._out_nodes.get(node, 0) + delta
            if left > 0:
                self._out_nodes[node] = left
            else:
                self._out_nodes.pop(node, None)
