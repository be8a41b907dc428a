"""Every rendered manifest is a valid object of the Kubernetes versions the chart supports."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from chart_support import CHART_DIR, MONITORED, NAMESPACE, SCENARIOS, crds, render

# The oldest Kubernetes the chart allows (Chart.yaml kubeVersion) and the newest the validator knows.
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# Prometheus Operator kinds: CRDs of their own, absent from Kubernetes' schemas; checked by hand below.
NOT_IN_KUBERNETES = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_manifest_validates_strictly(chart: Any, scenario: str, version: str) -> None:
    objects = render(chart, SCENARIOS[scenario]).objects + crds(chart)
    checked = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in NOT_IN_KUBERNETES:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(f"{obj['kind']} {obj['metadata']['name']}: {error.message}") from None
        checked += 1
    assert checked >= 10


def test_prometheus_operator_objects_have_the_shape_the_operator_reads(chart: Any) -> None:
    """No schema to validate against: the fields Prometheus Operator requires are checked by hand."""
    out = render(chart, MONITORED)
    foreign = [obj for obj in out.objects if (obj["apiVersion"], obj["kind"]) in NOT_IN_KUBERNETES]
    rule_template = CHART_DIR / "templates" / "prometheusrule.yaml"
    shipped = {"ServiceMonitor"} | ({"PrometheusRule"} if rule_template.exists() else set())
    assert {obj["kind"] for obj in foreign} == shipped
    for obj in foreign:
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus"
    for monitor in out.of_kind("ServiceMonitor"):
        assert set(monitor["spec"]) <= {"selector", "namespaceSelector", "endpoints"}
        assert monitor["spec"]["selector"]["matchLabels"]
        for endpoint in monitor["spec"]["endpoints"]:
            assert isinstance(endpoint["port"], str) and endpoint["path"].startswith("/")
    for rule in out.of_kind("PrometheusRule"):
        assert rule["spec"]["groups"], "a PrometheusRule with no groups"
        for group in rule["spec"]["groups"]:
            assert group["name"] and group["rules"]
            for item in group["rules"]:
                assert ("alert" in item) != ("record" in item) and item["expr"]


def test_the_crd_installed_is_the_gpurepair_resource(chart: Any) -> None:
    (crd,) = crds(chart)
    assert crd["metadata"]["name"] == "gpurepairs.repairbot.io"
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["plural"] == "gpurepairs"
