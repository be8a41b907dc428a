"""The chart's Prometheus rule files under the real promtool: they load, and their unit tests pass.

The unit tests (gpu-faults.test.yaml, repairbot.test.yaml) feed realistic exporter series and
say, alert by alert, where each one fires — with every label and annotation — and where it must
stay silent. Skipped, with the reason, where promtool is not installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase
from rules_support import (
    PROMETHEUS_RULE_FILES,
    PROMTOOL_TESTS,
    alerting_rules,
    alertnames_tested,
    assert_promtool_ok,
    load_yaml,
    rules_of,
    run_promtool,
)

from repairbot.agent.metrics import AgentMetrics
from repairbot.operator.metrics import OperatorMetrics
from repairbot.webhook.metrics import WebhookMetrics

# Labels Prometheus adds to every scraped series (target labels and a relabelled node name).
SCRAPE_LABELS = frozenset({"instance", "job", "namespace", "pod", "service", "container", "endpoint", "node"})
_SERIES = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"')


@pytest.mark.parametrize("rule_file", PROMETHEUS_RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules_accepts_every_rule(rule_file: Path) -> None:
    result = run_promtool("check", "rules", rule_file)
    assert_promtool_ok(result)
    assert f"SUCCESS: {len(rules_of(rule_file))} rules found" in result.stdout


@pytest.mark.parametrize("rule_file", PROMETHEUS_RULE_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(rule_file: Path) -> None:
    assert_promtool_ok(run_promtool("test", "rules", PROMTOOL_TESTS[rule_file]))


@pytest.mark.parametrize("rule_file", PROMETHEUS_RULE_FILES, ids=lambda p: p.name)
def test_every_alert_is_tested_both_firing_and_silent(rule_file: Path) -> None:
    fires, silent = alertnames_tested(PROMTOOL_TESTS[rule_file])
    alerts = set(alerting_rules(rule_file))
    assert alerts - fires == set(), "alerts no unit test sees fire"
    assert alerts - silent == set(), "alerts no unit test keeps silent"
    assert (fires | silent) - alerts == set(), "unit tests of alerts the rule file does not have"


def _repairbot_label_names() -> dict[str, set[str]]:
    """Every RepairBot series as scraped (counters with _total, histograms' three series) → its labels."""
    names: dict[str, set[str]] = {}
    for owner in (OperatorMetrics(), AgentMetrics(), WebhookMetrics()):
        metrics = [getattr(owner, attr) for attr in dir(owner) if not attr.startswith("_")]
        for metric in (m for m in metrics if isinstance(m, MetricWrapperBase)):
            family = next(iter(metric.describe()))
            labels = set(metric._labelnames)  # prometheus_client keeps a metric's label names only here
            if family.type == "counter":
                names[f"{family.name}_total"] = labels
            elif family.type == "histogram":
                names.update({f"{family.name}_sum": labels, f"{family.name}_count": labels})
                names[f"{family.name}_bucket"] = labels | {"le"}
            else:
                names[family.name] = labels
    return names


@pytest.mark.parametrize("rule_file", PROMETHEUS_RULE_FILES, ids=lambda p: p.name)
def test_unit_tests_feed_repairbot_series_as_repairbot_exports_them(rule_file: Path) -> None:
    """A renamed metric or label in repairbot/*/metrics.py must break these tests, not the alerts in production."""
    exported = _repairbot_label_names()
    for test in load_yaml(PROMTOOL_TESTS[rule_file])["tests"]:
        for item in test.get("input_series") or []:
            match = _SERIES.match(item["series"])
            assert match, f"unreadable input series {item['series']!r}"
            name, labels = match.group(1), set(_LABEL.findall(match.group(2) or ""))
            if not name.startswith("repairbot_"):
                continue
            assert name in exported, f"{test['name']}: RepairBot exports no metric {name}"
            unknown = labels - exported[name] - SCRAPE_LABELS
            assert unknown == set(), f"{test['name']}: {name} has no labels {sorted(unknown)}"
