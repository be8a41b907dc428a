"""Alert runbook links: each exists in runbooks/, and it is the runbook Slack and Jira link for the same class.

An SRE paged by an alert and the one reading the repair's Slack thread must land on the same
page: the alerts follow repairbot.runbooks (the index behind every other "Runbook" link).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from rules_support import (
    GPU_RULES,
    GRAFANA_RULES,
    PROMETHEUS_RULE_FILES,
    REPO,
    SELF_RULES,
    SHIPPED_RUNBOOKS,
    alerting_rules,
    load_yaml,
)

from repairbot.runbooks import DRAIN_BLOCKED_RUNBOOK, QUARANTINE_RUNBOOK, STORM_RUNBOOK, runbook_for

RUNBOOK = re.compile(re.escape(SHIPPED_RUNBOOKS) + r"([A-Za-z0-9_.-]+\.md)")
# `{{ if eq $labels.xid "48" "92" }}<url>{{ else if ... }}<url>{{ else }}<url>{{ end }}`, Prometheus or Grafana dialect.
BRANCH = re.compile(r'\{\{ (?:if|else if) eq \S+((?: "\d+")+) \}\}(\S+?)(?=\{\{)')
OTHERWISE = re.compile(r"\{\{ else \}\}(\S+?)\{\{ end \}\}")
SELF_RUNBOOKS = {
    "RepairBotRepairStuck": DRAIN_BLOCKED_RUNBOOK,
    "RepairBotBreakerOpen": STORM_RUNBOOK,
    "RepairBotNodeQuarantined": QUARANTINE_RUNBOOK,
}

GRAFANA = {rule["title"]: rule for group in load_yaml(GRAFANA_RULES)["groups"] for rule in group["rules"]}
GPU_ALERTS = alerting_rules(GPU_RULES)


def all_annotations() -> list[dict[str, Any]]:
    found = [rule.get("annotations", {}) for path in PROMETHEUS_RULE_FILES for rule in alerting_rules(path).values()]
    return found + [rule["annotations"] for rule in GRAFANA.values()]


def xid_runbook(template: str, code: int) -> str:
    """The runbook a per-Xid runbook_url template picks for ``code``."""
    for codes, url in BRANCH.findall(template):
        if str(code) in codes.replace('"', "").split():
            return url
    otherwise = OTHERWISE.search(template)
    assert otherwise, f"no else branch in {template!r}"
    return otherwise.group(1)


def test_every_linked_runbook_exists() -> None:
    linked = {name for a in all_annotations() for name in RUNBOOK.findall(a.get("runbook_url", ""))}
    assert {"xid-79.md", "ecc-dbe.md", "row-remap.md", "gpu-missing.md", "infiniband.md", "xid-other.md"} <= linked
    missing = sorted(name for name in linked if not (REPO / "runbooks" / name).is_file())
    assert missing == [], f"alerts link to runbooks that do not exist: {missing}"


@pytest.mark.parametrize("title", ["GpuXid", "DCGMXidErrors"])
def test_xid_alerts_link_the_runbook_of_each_code(title: str) -> None:
    for template in (GPU_ALERTS[title]["annotations"]["runbook_url"], GRAFANA[title]["annotations"]["runbook_url"]):
        for code in range(1, 200):
            assert xid_runbook(template, code) == SHIPPED_RUNBOOKS + runbook_for(f"xid-{code}"), f"Xid {code}"


@pytest.mark.parametrize("title", sorted(set(GPU_ALERTS) - {"GpuXid", "DCGMXidErrors"}))
def test_fault_alerts_link_the_runbook_of_their_class(title: str) -> None:
    rule = GPU_ALERTS[title]
    expected = SHIPPED_RUNBOOKS + runbook_for(rule["labels"]["repairbot_class"])
    assert rule["annotations"]["runbook_url"] == expected
    assert GRAFANA[title]["annotations"]["runbook_url"] == expected


@pytest.mark.parametrize(("alertname", "runbook"), sorted(SELF_RUNBOOKS.items()))
def test_self_alerts_link_the_runbook_of_their_situation(alertname: str, runbook: str) -> None:
    assert alerting_rules(SELF_RULES)[alertname]["annotations"]["runbook_url"] == SHIPPED_RUNBOOKS + runbook
