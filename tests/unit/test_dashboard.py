"""charts/repairbot/dashboards/repairbot.json: a dashboard Grafana imports as is and whose panels show data.

Grafana imports it through the sidecar without an import dialog, so it must pick its Prometheus
through its own `datasource` variable (no `__inputs`), and every query must read a metric that
RepairBot (or dcgm-exporter, node-exporter, Prometheus itself) really exports: a renamed metric
would leave a panel silently empty. Queries are parsed by the real promtool where it is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from repairbot.agent.metrics import AgentMetrics
from repairbot.build_info import register_build_info
from repairbot.operator.metrics import OperatorMetrics
from repairbot.webhook.metrics import WebhookMetrics

DASHBOARD_PATH = Path(__file__).resolve().parents[2] / "charts" / "repairbot" / "dashboards" / "repairbot.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
DATASOURCE_UID = "${datasource}"
GRID_WIDTH = 24
# Names the dashboard may read that RepairBot does not export: Prometheus' own alert series.
EXTERNAL_METRICS = frozenset({"ALERTS", "ALERTS_FOR_STATE", "up"})
EXTERNAL_PREFIXES = ("DCGM_FI_", "DCGM_EXP_", "node_infiniband_")
# Grafana's interval variables, replaced by plausible values so promtool can parse the query.
GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$__interval": "1m", "$__range": "24h"}

_PROMQL_WORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan"})
_PROMQL_WORDS |= {"by", "without", "on", "ignoring", "group_left", "group_right"}
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBERS = re.compile(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*\b")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those folded inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels") or [])


PANELS = list(all_panels(DASHBOARD["panels"]))
QUERY_PANELS = [panel for panel in PANELS if panel["type"] != "row"]
TARGETS = [(panel, target) for panel in QUERY_PANELS for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords and label names left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _LABEL_LISTS.sub("", text)
    text = _NUMBERS.sub("", text)  # numbers and durations (offset 10m)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, after = match.group(), text[match.end() :].lstrip()[:1]
        if after == "(" or word in _PROMQL_WORDS or word.startswith("$"):
            continue
        names.add(word)
    return names


def repairbot_series_names() -> set[str]:
    """Every series name RepairBot's components expose, read from their /metrics text."""
    names: set[str] = set()
    for component in (OperatorMetrics(), AgentMetrics(), WebhookMetrics()):
        text = generate_latest(component.registry).decode("utf-8")
        for family in text_string_to_metric_families(text):
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
            else:
                names.add(family.name)
    return names


def test_dashboard_identity() -> None:
    assert DASHBOARD["uid"] == "repairbot-fleet"
    assert DASHBOARD["title"]
    assert DASHBOARD["schemaVersion"] >= 39
    assert "__inputs" not in DASHBOARD and "__requires" not in DASHBOARD, "the sidecar cannot answer an import dialog"
    assert DASHBOARD.get("id") is None


def test_datasource_variable_picks_a_prometheus() -> None:
    (variable,) = [v for v in DASHBOARD["templating"]["list"] if v["name"] == "datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in PANELS]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= GRID_WIDTH, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells


def test_every_panel_queries_through_the_datasource_variable() -> None:
    for panel in QUERY_PANELS:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
    for panel, target in TARGETS:
        assert target["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert target["expr"].strip(), panel["title"]


def test_refids_are_unique_within_a_panel() -> None:
    for panel in QUERY_PANELS:
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_metric_a_panel_reads_exists() -> None:
    exported = repairbot_series_names()
    read = {name for _, target in TARGETS for name in metric_names(target["expr"])}
    unknown = {
        n for n in read if n not in exported and n not in EXTERNAL_METRICS and not n.startswith(EXTERNAL_PREFIXES)
    }
    assert unknown == set(), f"panels read metrics nobody exports: {sorted(unknown)}"


def test_the_dashboard_shows_what_an_sre_asks_for_first() -> None:
    """Nodes out, repairs by phase, MTTA/MTTR, breaker, failing nodes, Xids, notifications, intake, errors."""
    read = {name for _, target in TARGETS for name in metric_names(target["expr"])}
    assert {
        "repairbot_nodes_out_of_service",
        "repairbot_repairs_active",
        "repairbot_mtta_seconds_bucket",
        "repairbot_mttr_seconds_bucket",
        "repairbot_breaker_open",
        "repairbot_agent_findings_total",
        "repairbot_notifications_pending",
        "repairbot_webhook_alerts_accepted_total",
        "repairbot_webhook_alerts_ignored_total",
        "repairbot_reconcile_errors_total",
    } <= read
    heatmaps = [panel for panel in QUERY_PANELS if panel["type"] == "heatmap"]
    assert {metric for panel in heatmaps for t in panel["targets"] for metric in metric_names(t["expr"])} >= {
        "repairbot_mtta_seconds_bucket",
        "repairbot_mttr_seconds_bucket",
    }
    assert all(t["format"] == "heatmap" for panel in heatmaps for t in panel["targets"])


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (phase) (repairbot_repairs_active{phase=~"Pending|Blocked"})', {"repairbot_repairs_active"}),
        ("histogram_quantile(0.9, sum by (le) (rate(a_bucket[$__rate_interval])))", {"a_bucket"}),
        ("count(time() - b > 60) or vector(0)", {"b"}),
        ("x unless on (UUID) max_over_time(y[1h] offset 10m)", {"x", "y"}),
    ],
)
def test_metric_names_reads_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_query_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian/Ubuntu: apt-get install prometheus); queries not parsed")
    rules = []
    for index, (_, target) in enumerate(TARGETS):
        expr = target["expr"]
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard-queries.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"promtool rejects a dashboard query:\n{result.stdout}{result.stderr}"


def panel_titled(title: str) -> dict[str, Any]:
    (panel,) = [panel for panel in QUERY_PANELS if panel["title"] == title]
    return panel


def test_the_versions_table_shows_each_components_version_so_a_half_finished_rollout_shows_two() -> None:
    panel = panel_titled("Versions")
    (target,) = panel["targets"]
    assert panel["type"] == "table" and target["format"] == "table" and target["instant"]
    assert metric_names(target["expr"]) == {"repairbot_build_info"}
    assert re.search(r"count by \((component, version|version, component)\)", target["expr"]), target["expr"]
    assert "version" in next(iter(register_build_info(CollectorRegistry()).collect())).samples[0].labels
    running = panel_titled("Versions running")
    assert metric_names(running["targets"][0]["expr"]) == {"repairbot_build_info"}


def test_the_leader_stat_shows_no_leader_in_red() -> None:
    panel = panel_titled("Leader")
    (target,) = panel["targets"]
    assert metric_names(target["expr"]) == {"repairbot_operator_leader"}
    defaults = panel["fieldConfig"]["defaults"]
    zero = next(m["options"]["0"] for m in defaults["mappings"] if m["type"] == "value")
    assert zero["color"] == "red"
    steps = defaults["thresholds"]["steps"]
    assert steps[0] == {"color": "red", "value": None} and steps[1] == {"color": "green", "value": 1}
    replica = panel_titled("Leading replica")
    assert "by (pod)" in replica["targets"][0]["expr"] and replica["targets"][0]["legendFormat"] == "{{pod}}"
