"""The chart's Alertmanager TLS and credentials: the operator gets a CA path and credentials files from a Secret."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from chart_support import name, render

SECURED: dict[str, Any] = {
    "alertmanager": {"url": "https://alertmanager.monitoring:9093", "caFile": "/etc/repairbot/ca/ca.crt",
                     "auth": {"existingSecret": "am-auth", "basicAuthKey": "basic"}},
}  # fmt: skip


def operator_pod(chart: Any, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = render(chart, values).get("Deployment", name("operator"))
    spec = deployment["spec"]["template"]["spec"]
    [container] = [c for c in spec["containers"] if c["name"] == "operator"]
    return deployment, container


def test_the_operator_reaches_alertmanager_with_its_ca_and_basic_auth_from_the_secret(chart: Any) -> None:
    deployment, container = operator_pod(chart, SECURED)

    assert "--alertmanager-ca-file=/etc/repairbot/ca/ca.crt" in container["args"]
    assert "--alertmanager-basic-auth-file=/etc/repairbot/alertmanager-auth/basic-auth" in container["args"]
    assert not any(a.startswith("--alertmanager-token-file") for a in container["args"])
    [volume] = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "alertmanager-auth"]
    assert volume["secret"] == {"secretName": "am-auth", "items": [{"key": "basic", "path": "basic-auth"}]}
    assert {"name": "alertmanager-auth", "mountPath": "/etc/repairbot/alertmanager-auth", "readOnly": True} in (
        container["volumeMounts"])  # fmt: skip
    kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_a_bearer_token_for_alertmanager(chart: Any) -> None:
    values = {"alertmanager": {**SECURED["alertmanager"], "auth": {"existingSecret": "am-auth", "tokenKey": "t"}}}

    _, container = operator_pod(chart, values)

    assert "--alertmanager-token-file=/etc/repairbot/alertmanager-auth/token" in container["args"]


def test_by_default_no_alertmanager_credentials_are_mounted(chart: Any) -> None:
    deployment, container = operator_pod(chart, {})

    assert not any(a.startswith("--alertmanager-") for a in container["args"])
    assert "alertmanager-auth" not in [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]]


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"existingSecret": "am-auth"}, "alertmanager.auth.existingSecret"),
        ({"existingSecret": "am-auth", "tokenKey": "t", "basicAuthKey": "b"}, "not both"),
        ({"tokenKey": "t"}, "set it too"),
    ],
)
def test_incomplete_alertmanager_credentials_fail_the_install_naming_the_field(
    chart: Any, auth: dict[str, str], message: str
) -> None:
    with pytest.raises(Exception, match=message):
        render(chart, {"alertmanager": {"url": "https://am:9093", "auth": auth}})


def test_a_relative_ca_path_is_refused_by_the_schema(chart: Any) -> None:
    with pytest.raises(helm.HelmValuesError, match="/alertmanager/caFile"):
        render(chart, {"alertmanager": {"url": "https://am:9093", "caFile": "ca.crt"}})
