"""The chart's Slurm connection: the policy's slurm section, slurm.conf mounted as SLURM_CONF, JWT or munge key."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_support import name, render

from repairbot.policy import JobTimeoutMode, parse_policy


def operator_pod(chart: Any, values: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    rendered = render(chart, values)
    deployment = rendered.get("Deployment", name("operator"))
    policy = parse_policy(yaml.safe_load(rendered.get("ConfigMap", name("policy"))["data"]["policy.yaml"]))
    return deployment["spec"]["template"]["spec"], policy


def test_slurm_off_by_default_adds_nothing(chart: Any) -> None:
    pod, policy = operator_pod(chart, {})
    assert not policy.slurm.enabled
    assert [c["name"] for c in pod["containers"]] == ["operator"]
    assert not any(v["name"].startswith(("slurm", "munge")) for v in pod["volumes"])


def test_slurm_conf_and_a_jwt_reach_the_operator(chart: Any) -> None:
    values = {"slurm": {"enabled": True, "configMap": "slurm-conf", "onJobTimeout": "requeue",
                        "jwt": {"existingSecret": "slurm-jwt"}}}  # fmt: skip
    pod, policy = operator_pod(chart, values)
    assert policy.slurm.enabled and policy.slurm.slurm_conf == "/etc/slurm/slurm.conf"
    assert policy.slurm.on_job_timeout is JobTimeoutMode.REQUEUE
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["SLURM_CONF"]["value"] == "/etc/slurm/slurm.conf"
    assert env["SLURM_JWT"]["valueFrom"]["secretKeyRef"] == {"name": "slurm-jwt", "key": "token"}
    assert {"name": "slurm-conf", "configMap": {"name": "slurm-conf"}} in pod["volumes"]


def test_a_munge_key_runs_a_munged_sidecar_sharing_its_socket(chart: Any) -> None:
    values = {"slurm": {"enabled": True, "munge": {"existingSecret": "munge-key", "image": "example/munge:0.5"}}}
    pod, _ = operator_pod(chart, values)
    munged = next(c for c in pod["containers"] if c["name"] == "munged")
    assert munged["image"] == "example/munge:0.5"
    operator = pod["containers"][0]
    assert {"name": "munge-socket", "mountPath": "/run/munge"} in operator["volumeMounts"]
    with pytest.raises(helm.HelmError, match=r"slurm\.munge\.image"):
        render(chart, {"slurm": {"enabled": True, "munge": {"existingSecret": "munge-key"}}})
