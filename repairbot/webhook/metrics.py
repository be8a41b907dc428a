"""The webhook's Prometheus metrics, on a registry of its own.

An own registry (not the process-global one) lets the sandbox and tests run
several webhooks in one process without duplicate-metric errors, and keeps
/metrics to what an SRE dashboards for this component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from repairbot.build_info import register_build_info

__all__ = ["CONTENT_TYPE_LATEST", "WebhookMetrics"]


@dataclass
class WebhookMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.build_info = register_build_info(self.registry)
        self.received = Counter(
            "repairbot_webhook_alerts_received_total",
            "Alerts received in valid, authenticated notifications",
            ["source", "status"],
            registry=self.registry,
        )
        self.accepted = Counter(
            "repairbot_webhook_alerts_accepted_total",
            "Firing alerts handed to intake (repeats of one firing included)",
            ["source"],
            registry=self.registry,
        )
        self.ignored = Counter(
            "repairbot_webhook_alerts_ignored_total",
            "Alerts that opened no repair, by reason",
            ["source", "reason"],
            registry=self.registry,
        )
        self.requests = Counter(
            "repairbot_webhook_requests_total",
            "Webhook HTTP requests by endpoint and status code",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "repairbot_webhook_request_seconds",
            "Time to answer a webhook request",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.truncated = Counter(
            "repairbot_webhook_truncated_alerts_total",
            "Alerts the sender cut from its notifications (truncatedAlerts: over the receiver's max_alerts)",
            ["source"],
            registry=self.registry,
        )

        self.slack_actions = Counter(
            "repairbot_webhook_slack_actions_total",
            "Slack button clicks by outcome: done, refused (not allowed), unverified (group membership unknown)",
            ["outcome"],
            registry=self.registry,
        )
        self.slack_group_errors = Counter(
            "repairbot_webhook_slack_group_lookup_errors_total",
            "Slack usergroups.users.list lookups that failed (the click was refused), by Slack's error code",
            ["code"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
