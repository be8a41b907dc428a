"""Detector thresholds and the escalation rules' finding classes reach the agent from the chart's values."""

from __future__ import annotations

from typing import Any

import pytest
from chart_support import container, name, render

from repairbot.agent.assemble import polled_detectors
from repairbot.cli import agent_options, build_parser
from repairbot.detectors.gpu_health import NvmlHealthDetector, NvmlThresholds
from repairbot.detectors.infiniband import InfinibandDetector


def _agent_options(chart: Any, values: dict[str, Any]) -> Any:
    """The options the agent pod starts with: the DaemonSet's args through the agent's own parser."""
    daemonset = render(chart, values).get("DaemonSet", name("agent"))
    args = [arg.replace("$(NODE_NAME)", "gpu-node-1") for arg in container(daemonset, "agent")["args"]]
    return agent_options(build_parser().parse_args(args))


def test_default_values_keep_every_detector_default(chart: Any) -> None:
    options = _agent_options(chart, {})
    config = options.config()
    assert config.nvml_thresholds() == NvmlThresholds()
    assert config.infiniband_knobs() == {}
    assert config.counted_codes == ()


def test_pcie_and_infiniband_thresholds_set_in_values_reach_the_detectors(chart: Any) -> None:
    thresholds = {
        "pcieReplaysPerMinute": 12.5,
        "pcieDegradedPolls": 5,
        "ibFlapThreshold": 4,
        "ibFlapWindowSeconds": 300,
    }
    options = _agent_options(chart, {"agent": {"thresholds": thresholds}})
    detectors = polled_detectors(options.config(expected_gpus=8), backend=_NoGpus())
    nvml = next(d for d in detectors if isinstance(d, NvmlHealthDetector))
    infiniband = next(d for d in detectors if isinstance(d, InfinibandDetector))
    assert nvml._thresholds.pcie_replays_per_minute == 12.5
    assert nvml._thresholds.pcie_degraded_polls == 5
    assert infiniband._flap_threshold == 4
    assert infiniband._flap_window_s == 300


def test_kernel_log_burst_knobs_set_in_values_reach_the_kmsg_detector(chart: Any) -> None:
    from repairbot.agent.assemble import event_sources
    from repairbot.detectors.kmsg import KmsgDetector

    thresholds = {"kmsgBurstWindowSeconds": 90, "kmsgReportIntervalSeconds": 15}
    options = _agent_options(chart, {"agent": {"thresholds": thresholds}})
    sources = event_sources(options.config(expected_gpus=8), _NoGpus(), boot_id=lambda: "b", uptime=lambda: 1.0)
    kmsg = next(s for s in sources if isinstance(s, KmsgDetector))
    assert (kmsg.window_s, kmsg.report_interval_s) == (90, 15)
    defaults = event_sources(_agent_options(chart, {}).config(), _NoGpus(), boot_id=lambda: "b", uptime=lambda: 1.0)
    assert next(s for s in defaults if isinstance(s, KmsgDetector)).report_interval_s == 60


def test_a_negative_threshold_is_refused_by_the_chart_schema(chart: Any) -> None:
    with pytest.raises(Exception, match="pcieDegradedPolls"):
        render(chart, {"agent": {"thresholds": {"pcieDegradedPolls": -1}}})


def test_escalation_rules_make_the_agent_report_the_classes_they_count(chart: Any) -> None:
    rules = [
        {"match": "xid-13", "distinctJobs": True, "count": 3, "window": "1h", "action": "gpu-reset"},
        {"match": "xid-31", "count": 5, "window": "10m", "action": "notify"},
        {"match": "xid-13", "scope": "node", "count": 6, "window": "1h", "action": "reboot"},
    ]
    options = _agent_options(chart, {"policy": {"escalations": rules}})
    assert sorted(options.counted_codes) == ["xid-13", "xid-31"]


class _NoGpus:
    """A GPU backend with no GPUs: building the detectors reads nothing."""

    def __getattr__(self, attribute: str) -> Any:
        raise AssertionError(f"building detectors must not touch the backend ({attribute})")


def test_xid_overrides_and_escalations_in_values_reach_the_operators_policy(chart: Any, tmp_path: Any) -> None:
    from repairbot.policy import load_policy

    values = {
        "policy": {
            "xid": {"overrides": {"13": {"action": "notify", "applicationClass": False}}},
            "escalations": [{"match": "xid-13", "count": 3, "window": "1h", "action": "gpu-reset"}],
        }
    }
    configmap = render(chart, values).get("ConfigMap", name("policy"))
    path = tmp_path / "policy.yaml"
    path.write_text(configmap["data"]["policy.yaml"], encoding="utf-8")
    policy = load_policy(path)
    assert policy.xid.catalog().lookup(13).action.value == "notify"
    assert [rule.match for rule in policy.escalations] == ["xid-13"]


def test_xids_the_policy_overrides_are_reported_by_the_agent_for_the_operator_to_decide(chart: Any) -> None:
    """The agent reads the packaged catalog: an Xid it thinks needs nothing must still reach the operator."""
    values = {
        "policy": {
            "xid": {"overrides": {"13": {"action": "notify", "applicationClass": False}}},
            "escalations": [{"match": "xid-31", "count": 5, "window": "10m", "action": "notify"}],
        }
    }
    assert sorted(_agent_options(chart, values).counted_codes) == ["xid-13", "xid-31"]
