"""Paths, promtool and chart rendering for the alert-rule tests in tests/rules/.

The rule files under charts/repairbot/rules/ are plain Prometheus (and Grafana) provisioning
files; these helpers run the real ``promtool`` on them and read back what its unit tests expect
to fire, so the Python tests can hand exactly those alerts to RepairBot's webhook mapping.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "repairbot"
RULES_DIR = CHART / "rules"
GPU_RULES = RULES_DIR / "gpu-faults.rules.yaml"
SELF_RULES = RULES_DIR / "repairbot.rules.yaml"
GRAFANA_RULES = RULES_DIR / "grafana-alerts.yaml"
ALERT_MAPPING = CHART / "files" / "alert-mapping.yaml"
DASHBOARD = CHART / "dashboards" / "repairbot.json"
TESTS_DIR = Path(__file__).resolve().parent
GPU_TESTS = TESTS_DIR / "gpu-faults.test.yaml"
SELF_TESTS = TESTS_DIR / "repairbot.test.yaml"
PROMETHEUS_RULE_FILES = (GPU_RULES, SELF_RULES)
PROMTOOL_TESTS = {GPU_RULES: GPU_TESTS, SELF_RULES: SELF_TESTS}
SHIPPED_RUNBOOKS = "https://github.com/repairbot/repairbot/blob/main/runbooks/"
PROMTOOL_TIMEOUT_S = 60


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules_of(path: Path) -> list[dict[str, Any]]:
    """Every rule (alerting and recording) of a Prometheus rule file, in file order."""
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def alerting_rules(path: Path) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules_of(path) if "alert" in rule}


def recording_rules(path: Path) -> dict[str, str]:
    return {rule["record"]: rule["expr"] for rule in rules_of(path) if "record" in rule}


def inline_recording_rules(expr: str, records: Mapping[str, str], step: str = "5m") -> str:
    """``expr`` with each recorded series written out: ``name[1d]`` becomes a subquery ``(body)[1d:step]``."""
    for name, body in records.items():
        written_out = "(" + " ".join(body.split()) + ")"
        expr = re.sub(re.escape(name) + r"\[([^\]]+)\]", rf"{written_out}[\1:{step}]", expr)
        expr = re.sub(re.escape(name) + r"(?![\w:])", written_out, expr)
    return " ".join(expr.split())


# --- promtool


def promtool_path() -> str:
    """promtool's path, or skip the calling test (Debian: apt-get install prometheus)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not on PATH (Debian/Ubuntu: apt-get install prometheus); rule files not checked")
    return path


def run_promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool_path(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        cwd=cwd,
        check=False,
    )


def assert_promtool_ok(result: subprocess.CompletedProcess[str]) -> None:
    """promtool exited 0; otherwise fail with everything it said."""
    said = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"promtool {' '.join(result.args[1:])} failed ({result.returncode}):\n{said}"


def check_exprs_parse(exprs: Mapping[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``promtool check rules`` over ``exprs`` written as recording rules (promtool parses each one)."""
    rules = [{"record": f"check:expr_{index}", "expr": expr} for index, expr in enumerate(exprs.values())]
    path = workdir / "exprs.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}, sort_keys=False), encoding="utf-8")
    return run_promtool("check", "rules", path)


def retarget_promtool_tests(test_file: Path, rule_file: Path, workdir: Path) -> Path:
    """A copy of ``test_file`` whose ``rule_files`` is ``rule_file`` (to run the same tests on other rules)."""
    doc = load_yaml(test_file)
    doc["rule_files"] = [str(rule_file)]
    copy = workdir / test_file.name
    copy.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return copy


@dataclass(frozen=True, slots=True)
class ExpectedAlert:
    """One alert a promtool unit test expects to fire."""

    test: str
    alertname: str
    eval_time: str
    labels: dict[str, str]
    annotations: dict[str, str]


def expected_alerts(test_file: Path) -> Iterator[ExpectedAlert]:
    for test in load_yaml(test_file)["tests"]:
        for case in test.get("alert_rule_test") or []:
            for alert in case.get("exp_alerts") or []:
                yield ExpectedAlert(
                    test=test["name"],
                    alertname=case["alertname"],
                    eval_time=str(case["eval_time"]),
                    labels={str(k): str(v) for k, v in (alert.get("exp_labels") or {}).items()},
                    annotations={str(k): str(v) for k, v in (alert.get("exp_annotations") or {}).items()},
                )


def alertnames_tested(test_file: Path) -> tuple[set[str], set[str]]:
    """(alertnames some test expects to fire, alertnames some test expects to stay silent)."""
    fires: set[str] = set()
    silent: set[str] = set()
    for test in load_yaml(test_file)["tests"]:
        for case in test.get("alert_rule_test") or []:
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    return fires, silent


# --- the chart


def render_chart(values: Mapping[str, Any]) -> dict[str, str]:
    """The chart rendered offline with ``values``: template path → rendered text.

    Skips when Helm's engine (helm-python-sdk) is not installed or the chart is incomplete.
    """
    pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's engine) is not installed")
    if not (CHART / "Chart.yaml").is_file():
        pytest.skip("charts/repairbot/Chart.yaml is missing: the chart cannot be rendered yet")
    rendered: dict[str, str] = _chart().render(dict(values), name="repairbot", namespace="gpu-ops")
    return rendered


@functools.cache
def _chart() -> Any:
    import helm_python

    return helm_python.Chart.load(str(CHART))


def rendered_object(values: Mapping[str, Any], template: str) -> dict[str, Any] | None:
    """The single object ``templates/<template>`` renders with ``values``, or None when it renders nothing."""
    text = render_chart(values).get(f"repairbot/templates/{template}", "")
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    assert len(documents) <= 1, f"{template} rendered {len(documents)} objects"
    return documents[0] if documents else None
