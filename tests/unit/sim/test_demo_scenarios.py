"""The demo's script fits its policy: single faults never trip the storm breaker, the storm always does."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from repairbot.policy import load_policy
from repairbot.webhook.payloads import SenderKind, parse_notification
from repairbot_sim import fleet
from repairbot_sim.demo import DEMO_POLICY
from repairbot_sim.demo_scenarios import MIN_NODES, Kind, demo_scenarios, grafana_notification

SCENARIOS = demo_scenarios()
OPENS_NO_REPAIR = {"xid13"}


def domain(node: str) -> str:
    return fleet.failure_domain(int(node.removeprefix(fleet.NODE_PREFIX)))


def test_every_scenario_has_its_own_nodes() -> None:
    nodes = [n for s in SCENARIOS for n in s.nodes]
    assert len(nodes) == len(set(nodes))
    assert {i.node for s in SCENARIOS for i in s.injections} <= set(nodes)
    assert [s.key for s in SCENARIOS if s.finale] == ["storm"]


def test_single_faults_stay_under_the_breaker_and_the_storm_trips_it() -> None:
    policy = load_policy(DEMO_POLICY)
    singles = [n for s in SCENARIOS if not s.finale and s.key not in OPENS_NO_REPAIR for n in s.nodes]
    (storm,) = (s for s in SCENARIOS if s.finale)
    per_domain = Counter(domain(n) for n in singles)
    assert max(per_domain.values()) < policy.breaker.max_per_domain
    assert {domain(n) for n in storm.nodes} == {domain(storm.node)} and domain(storm.node) not in per_domain
    assert len(storm.nodes) >= policy.breaker.max_per_domain
    assert len(singles) + len(storm.nodes) <= policy.breaker.max_faults  # only the domain rule trips
    # At the end the quarantined, the held, the human's and the storm's nodes are out of service at once.
    assert policy.budget.max_unavailable.cap(MIN_NODES) >= 3 + len(storm.nodes)


def test_the_demo_needs_sixteen_nodes() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        demo_scenarios(8)
    assert demo_scenarios(32) == SCENARIOS


def test_the_human_cordons_before_the_fault_arrives() -> None:
    (human,) = (s for s in SCENARIOS if s.key == "human")
    assert [i.kind for i in sorted(human.injections, key=lambda i: i.at)] == [Kind.CORDON, Kind.FAULT, Kind.JOB_DONE]


def test_the_grafana_notification_is_what_the_webhook_parses() -> None:
    body = grafana_notification("gpu-node-010", xid="119", gpu=4, now=datetime(2026, 11, 22, tzinfo=UTC),
                                external_url="https://grafana.example/")  # fmt: skip
    parsed = parse_notification(body, SenderKind.GRAFANA)
    (alert,) = parsed.alerts
    assert parsed.receiver == "repairbot" and parsed.status == "firing"
    assert alert.labels["Hostname"] == "gpu-node-010" and alert.labels["xid"] == "119" and alert.firing
    assert alert.fingerprint == body["alerts"][0]["fingerprint"]
