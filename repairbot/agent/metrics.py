"""The agent's Prometheus metrics, one registry per agent so a sandbox can run many in one process."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from repairbot.build_info import register_build_info


@dataclass(slots=True)
class AgentMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    findings: Counter = field(init=False)
    detector_errors: Counter = field(init=False)
    intake_errors: Counter = field(init=False)
    intake_dropped: Counter = field(init=False)
    poll_duration: Histogram = field(init=False)
    last_successful_poll: Gauge = field(init=False)
    signal_readable: Gauge = field(init=False)
    build_info: Gauge = field(init=False)
    last_poll_at: float = 0.0  # Unix time of the last completed poll; 0 before the first

    def __post_init__(self) -> None:
        self.build_info = register_build_info(self.registry)
        self.findings = Counter(
            "repairbot_agent_findings",
            "Findings seen by the agent, by finding class and action",
            ["code", "action"],
            registry=self.registry,
        )
        self.detector_errors = Counter(
            "repairbot_agent_detector_errors",
            "Polls whose signal could not be read, by detector",
            ["detector"],
            registry=self.registry,
        )
        self.intake_errors = Counter(
            "repairbot_agent_intake_errors",
            "Findings intake could not take (they are retried on the next cycle)",
            registry=self.registry,
        )
        self.intake_dropped = Counter(
            "repairbot_agent_intake_dropped",
            "Findings dropped because the API server refused them as too large even shrunk (never retried)",
            registry=self.registry,
        )
        self.poll_duration = Histogram(
            "repairbot_agent_poll_duration_seconds",
            "Time to poll every detector once",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=self.registry,
        )
        self.last_successful_poll = Gauge(
            "repairbot_agent_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll cycle that completed",
            registry=self.registry,
        )
        self.signal_readable = Gauge(
            "repairbot_agent_signal_readable",
            "1 if the detector could read its signal on the last poll, 0 if not",
            ["detector"],
            registry=self.registry,
        )

    def mark_poll(self, at: float) -> None:
        self.last_poll_at = at
        self.last_successful_poll.set(at)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
