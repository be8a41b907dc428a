"""Which Alertmanager silence a repair should hold now: a table of phases, records and clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from repairbot.model import SilenceRecord, format_time
from repairbot.notify.alertmanager import Matcher
from repairbot.operator.silence_plan import SilenceMove, plan_silence, repair_marker, silence_matchers
from repairbot.policy import AlertmanagerPolicy, PolicyError, parse_policy

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
POLICY = AlertmanagerPolicy(url="http://alertmanager:9093")
DRAIN = {"step": "start-drain", "outcome": "started", "message": "draining", "at": format_time(NOW)}
DEFER = {"step": "defer", "outcome": "deferred", "message": "waits", "at": format_time(NOW)}
CORDON = {"step": "cordon", "outcome": "done", "message": "cordoned", "at": format_time(NOW)}


def repair(phase: str, *, history: tuple[dict[str, Any], ...] = (CORDON, DRAIN), silence: Any = None,
           dry_run: bool = False) -> dict[str, Any]:  # fmt: skip
    status: dict[str, Any] = {"phase": phase, "reason": "xid-79", "history": list(history)}
    if silence is not None:
        status["silence"] = silence
    return {"metadata": {"name": "gpu-1-20261202080000"}, "spec": {"nodeName": "gpu-1", "dryRun": dry_run},
            "status": status}  # fmt: skip


def held(ends_in: timedelta, *, expired: bool = False) -> dict[str, Any]:
    return SilenceRecord("s-1", NOW + ends_in, NOW if expired else None).to_dict()


@pytest.mark.parametrize(
    ("obj", "move"),
    [
        (repair("Pending", history=()), SilenceMove.NONE),
        (repair("Cordoned", history=(CORDON,)), SilenceMove.NONE),  # cordoned, nothing disturbed yet
        (repair("Cordoned", history=(CORDON, DEFER)), SilenceMove.NONE),  # deferred: nothing evicted
        (repair("Draining"), SilenceMove.CREATE),
        (repair("Remediating", history=(CORDON,)), SilenceMove.CREATE),  # a rung that needs no drain
        (repair("Validating"), SilenceMove.CREATE),
        (repair("Blocked"), SilenceMove.CREATE),  # drained, then blocked between rungs: the node is still out
        (repair("Draining", dry_run=True), SilenceMove.NONE),
        (repair("Draining", silence=held(timedelta(minutes=29))), SilenceMove.KEEP),
        (repair("Remediating", silence=held(timedelta(minutes=16))), SilenceMove.KEEP),
        (repair("Remediating", silence=held(timedelta(minutes=15))), SilenceMove.RENEW),  # half of 30m left
        (repair("Validating", silence=held(-timedelta(minutes=1))), SilenceMove.RENEW),  # lapsed: renewed/remade
        (repair("Remediating", silence=held(timedelta(minutes=5), expired=True)), SilenceMove.CREATE),
        (repair("Succeeded", silence=held(timedelta(minutes=20))), SilenceMove.EXPIRE),
        (repair("Quarantined", silence=held(timedelta(minutes=20))), SilenceMove.EXPIRE),
        (repair("Failed", silence=held(timedelta(minutes=20))), SilenceMove.EXPIRE),
        (repair("Cancelled", silence=held(timedelta(minutes=20))), SilenceMove.EXPIRE),
        (repair("Succeeded", silence=held(timedelta(minutes=20), expired=True)), SilenceMove.NONE),
        (repair("Succeeded"), SilenceMove.NONE),  # ended before a silence was made: nothing to expire
    ],
)
def test_the_silence_a_repair_should_hold_now(obj: dict[str, Any], move: SilenceMove) -> None:
    assert plan_silence(obj, POLICY, NOW).move is move


def test_a_new_or_renewed_silence_ends_one_duration_from_now_and_names_its_repair_and_runbook() -> None:
    plan = plan_silence(repair("Draining"), POLICY, NOW, runbook_url="https://runbooks.example/xid-79.md")
    assert plan.ends_at == NOW + timedelta(minutes=30)
    assert repair_marker("gpu-1-20261202080000") in plan.comment
    assert "https://runbooks.example/xid-79.md" in plan.comment and "gpu-1" in plan.comment


def test_matchers_are_the_nodes_labels_and_one_regex_over_the_alert_names() -> None:
    policy = AlertmanagerPolicy(url="http://am", matchers={"instance": "$node:9100", "cluster": "gpu-east"},
                                alertnames=("KubeNodeNotReady", "Target.Down"))  # fmt: skip
    assert silence_matchers(policy, "gpu-7") == (
        Matcher("instance", "gpu-7:9100"),
        Matcher("cluster", "gpu-east"),
        Matcher("alertname", r"KubeNodeNotReady|Target\.Down", is_regex=True),
    )
    assert Matcher("alertname", "A|B", is_regex=True).to_api() == {"name": "alertname", "value": "A|B",
                                                                   "isRegex": True, "isEqual": True}  # fmt: skip
    everything = AlertmanagerPolicy(url="http://am", alertnames=())
    assert silence_matchers(everything, "gpu-7") == (Matcher("node", "gpu-7"),)


def test_the_policy_reads_alertmanager_and_grafana_sections_and_refuses_what_would_mute_a_fleet() -> None:
    policy = parse_policy({"alertmanager": {"url": "http://am:9093", "alertnames": ["KubeNodeNotReady"],
                                            "duration": "1h", "matchers": {"instance": "$node"}},
                           "grafana": {"url": "https://grafana.example", "dashboardUid": "gpu-fleet",
                                       "tags": ["gpu"]}})  # fmt: skip
    assert policy.alertmanager.enabled and policy.alertmanager.duration == timedelta(hours=1)
    assert dict(policy.alertmanager.matchers) == {"instance": "$node"}
    assert policy.grafana.dashboard_uid == "gpu-fleet" and policy.grafana.tags == ("gpu",)
    assert parse_policy({}).alertmanager.enabled is False and parse_policy({}).grafana.enabled is False
    with pytest.raises(PolicyError) as refused:
        parse_policy({"alertmanager": {"matchers": {"cluster": "gpu-east"}, "duration": "30s", "urll": "x"},
                      "grafana": {"url": "grafana"}})  # fmt: skip
    text = str(refused.value)
    assert "policy.alertmanager.matchers" in text and "$node" in text
    assert "policy.alertmanager.duration" in text and 'did you mean "url"' in text
    assert "policy.grafana.url" in text
