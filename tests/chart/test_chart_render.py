"""What ``helm install`` of the chart puts in a cluster, rendered by Helm's own engine."""

from __future__ import annotations

import base64
from typing import Any

import helm_python as helm
import pytest
from chart_support import (
    CHART_DIR,
    EXPOSED,
    MONITORED,
    NAMESPACE,
    NO_AGENT,
    NOTIFYING,
    SCENARIOS,
    container,
    env_of,
    name,
    render,
)

ERROR = 3


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_finds_no_errors(scenario: str) -> None:
    report = helm.lint(CHART_DIR, SCENARIOS[scenario], strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    errors = [m for m in report["messages"] if m["severity"] >= ERROR]
    assert report["errors"] == [] and errors == []


def test_defaults_install_every_component(chart: Any) -> None:
    out = render(chart)
    assert out.get("Deployment", name("operator"))["spec"]["replicas"] == 2
    assert out.has("DaemonSet", name("agent"))
    assert out.has("Deployment", name("webhook"))
    assert out.has("Service", name("webhook"))
    assert not out.of_kind("Ingress")
    assert not out.of_kind("ServiceMonitor")
    assert {sa["metadata"]["name"] for sa in out.of_kind("ServiceAccount")} == {
        name("operator"),
        name("agent"),
        name("webhook"),
    }
    assert all(obj["metadata"].get("namespace") in (None, NAMESPACE, "default") for obj in out.objects)


def test_the_operator_runs_as_two_replicas_with_one_always_available(chart: Any) -> None:
    out = render(chart)
    pdb = out.get("PodDisruptionBudget", name("operator"))
    assert pdb["spec"]["minAvailable"] == 1
    deployment = out.get("Deployment", name("operator"))
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    operator = container(deployment, "operator")
    assert operator["args"][:3] == ["--log-level=INFO", "--log-format=text", "operator"]
    assert "--metrics-port=9403" in operator["args"] and "--health-port=8081" in operator["args"]
    env = env_of(operator)
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_one_operator_replica_gets_no_budget_that_would_block_drains(chart: Any) -> None:
    out = render(chart, {"operator": {"replicas": 1}})
    assert not out.has("PodDisruptionBudget", name("operator"))


def test_operator_and_webhook_run_non_root_on_a_read_only_root(chart: Any) -> None:
    out = render(chart)
    for component in ("operator", "webhook"):
        deployment = out.get("Deployment", name(component))
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = container(deployment, component)["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "privileged" not in security
        assert not pod.get("hostPID") and not pod.get("hostNetwork")


def test_operator_liveness_asks_healthz_which_the_standby_serves_too(chart: Any) -> None:
    """kopf's /healthz on the leader, StandbyHealth's on the replica waiting for the Lease: same port."""
    operator = container(render(chart).get("Deployment", name("operator")), "operator")
    probe = operator["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8081} in operator["ports"]
    assert "--health-port=8081" in operator["args"]


def test_a_policy_change_rolls_the_operator(chart: Any) -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = render(chart, values).get("Deployment", name("operator"))
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/policy"])

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"policy": {"dryRun": True}})
    assert checksum({}) != checksum({"runbookBaseUrl": "https://runbooks.example.com"})


def test_the_agent_runs_on_every_gpu_node_even_while_repairbot_repairs_it(chart: Any) -> None:
    pod = render(chart).get("DaemonSet", name("agent"))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"operator": "Exists"}]  # every taint: test_chart_fit_cluster.py
    assert pod["priorityClassName"] == "system-node-critical"


def test_the_agent_reaches_the_host_it_repairs(chart: Any) -> None:
    daemonset = render(chart).get("DaemonSet", name("agent"))
    pod = daemonset["spec"]["template"]["spec"]
    agent = container(daemonset, "agent")
    assert pod["hostPID"] is True  # nsenter --target 1 needs the host's init
    assert not pod.get("hostNetwork")
    assert agent["securityContext"]["privileged"] is True
    env = env_of(agent)
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    assert mounts["/dev/kmsg"]["readOnly"] is True
    assert mounts["/host/sys"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/dev/kmsg"]["name"]]["hostPath"] == {"path": "/dev/kmsg", "type": "CharDevice"}
    assert volumes[mounts["/host/sys"]["name"]]["hostPath"] == {"path": "/sys", "type": "Directory"}
    assert "--sysfs-root=/host/sys" in agent["args"] and "--kmsg=/dev/kmsg" in agent["args"]
    # The kernel-log cursor outlives the pod, so a restarted agent reads on where the last one stopped.
    assert volumes[mounts["/var/lib/repairbot"]["name"]]["hostPath"] == {
        "path": "/var/lib/repairbot", "type": "DirectoryOrCreate",
    }  # fmt: skip
    assert "--state-dir=/var/lib/repairbot" in agent["args"]
    assert agent["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_agent_options_reach_its_command_line(chart: Any) -> None:
    values = {
        "agent": {
            "interval": 2.5,
            "expectedGpus": 8,
            "dcgmUrl": "http://$(HOST_IP):9400/metrics",
            "runtimeClassName": "nvidia",
            "metricsPort": 9500,
            "ibPorts": ["mlx5_0/1", "mlx5_1/1"],
            "ibRateGbps": 400,
            "kmsgFirstStartLookbackSeconds": 1800,
        }
    }
    daemonset = render(chart, values).get("DaemonSet", name("agent"))
    agent = container(daemonset, "agent")
    assert "--interval=2.5" in agent["args"]
    assert "--expected-gpus=8" in agent["args"]
    assert "--dcgm-url=http://$(HOST_IP):9400/metrics" in agent["args"]
    assert "--metrics-port=9500" in agent["args"]
    assert "--ib-ports=mlx5_0/1,mlx5_1/1" in agent["args"] and "--ib-rate-gbps=400" in agent["args"]
    assert "--kmsg-first-start-lookback=1800" in agent["args"]
    assert daemonset["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    default_agent = container(render(chart).get("DaemonSet", name("agent")), "agent")
    assert not [arg for arg in default_agent["args"] if arg.startswith(("--expected-gpus", "--dcgm-url"))]
    assert "--kmsg-first-start-lookback=600" in default_agent["args"]


def test_agent_disabled_leaves_no_agent_rights_behind(chart: Any) -> None:
    out = render(chart, NO_AGENT)
    assert not out.of_kind("DaemonSet")
    assert not out.has("ServiceAccount", name("agent"))
    assert not out.has("ClusterRole", name("agent"))
    assert not out.has("ValidatingAdmissionPolicy", name("agent-own-node"))
    assert "agent is disabled" in out.notes


def test_slack_and_jira_credentials_come_from_the_named_secrets(chart: Any) -> None:
    operator = container(render(chart, NOTIFYING).get("Deployment", name("operator")), "operator")
    env = env_of(operator)
    assert env["REPAIRBOT_SLACK_TOKEN"] == {"secretKeyRef": {"name": "repairbot-slack", "key": "bot-token"}}
    assert env["REPAIRBOT_JIRA_URL"] == "https://jira.example.com"
    assert env["REPAIRBOT_JIRA_USER"] == {"secretKeyRef": {"name": "repairbot-jira", "key": "user"}}
    assert env["REPAIRBOT_JIRA_PASSWORD"] == {"secretKeyRef": {"name": "repairbot-jira", "key": "api-token"}}
    assert "REPAIRBOT_JIRA_TOKEN" not in env  # tokenKey "" : basic auth only
    token_only = {"jira": {**NOTIFYING["jira"], "tokenKey": "pat", "userKey": "", "passwordKey": ""}}
    env = env_of(container(render(chart, token_only).get("Deployment", name("operator")), "operator"))
    assert env["REPAIRBOT_JIRA_TOKEN"] == {"secretKeyRef": {"name": "repairbot-jira", "key": "pat"}}
    assert "REPAIRBOT_JIRA_USER" not in env and "REPAIRBOT_SLACK_TOKEN" not in env


def test_without_slack_and_jira_the_notes_warn_and_no_secret_is_referenced(chart: Any) -> None:
    out = render(chart)
    env = env_of(container(out.get("Deployment", name("operator")), "operator"))
    assert not [key for key in env if key.startswith(("REPAIRBOT_SLACK", "REPAIRBOT_JIRA"))]
    assert "WARNING: Slack is disabled" in out.notes
    assert "WARNING: Jira is disabled" in out.notes
    quiet = render(chart, NOTIFYING).notes
    assert "Slack is disabled" not in quiet and "Jira is disabled" not in quiet


def test_notes_give_the_in_cluster_webhook_urls_and_how_to_read_the_generated_token(chart: Any) -> None:
    notes = render(chart).notes
    base = f"http://{name('webhook')}.{NAMESPACE}.svc:80"
    assert f"{base}/webhook/grafana" in notes
    assert f"{base}/webhook/alertmanager" in notes
    assert f"kubectl -n {NAMESPACE} get secret {name('webhook-auth')}" in notes
    assert "kubectl get gpurepairs" in notes
    assert f"kubectl -n {NAMESPACE} get pods" in notes


def test_notes_give_the_ingress_url_when_the_webhook_is_exposed(chart: Any) -> None:
    notes = render(chart, EXPOSED).notes
    assert "https://repairbot.example.com/webhook/grafana" in notes
    assert "https://repairbot.example.com/webhook/alertmanager" in notes
    assert "Secret gpu-ops/repairbot-webhook" in notes


def test_the_ingress_exposes_only_the_receivers(chart: Any) -> None:
    ingress = render(chart, EXPOSED).get("Ingress", name("webhook"))
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["repairbot.example.com"], "secretName": "repairbot-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "repairbot.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/webhook" and path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": name("webhook"), "port": {"name": "http"}}
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}


def test_the_webhook_reads_each_named_credential_from_a_file(chart: Any) -> None:
    out = render(chart, EXPOSED)
    deployment = out.get("Deployment", name("webhook"))
    webhook = container(deployment, "webhook")
    assert "--basic-auth-file=/etc/repairbot/webhook-auth/basic-auth" in webhook["args"]
    assert "--hmac-secret-file=/etc/repairbot/webhook-auth/hmac-secret" in webhook["args"]
    assert "--hmac-timestamp-header=X-Grafana-Alerting-Signature-Timestamp" in webhook["args"]
    assert not [arg for arg in webhook["args"] if arg.startswith("--token-file")]
    assert "--alert-mapping=/etc/repairbot/alert-mapping/alert-mapping.yaml" in webhook["args"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["auth"]["secret"] == {
        "secretName": "repairbot-webhook",
        "items": [{"key": "basic", "path": "basic-auth"}, {"key": "hmac", "path": "hmac-secret"}],
    }
    assert not out.of_kind("Secret")  # the user's Secret is used, none generated
    assert not [key for key in env_of(webhook) if "WEBHOOK" in key]


def test_without_a_secret_the_chart_generates_a_bearer_token(chart: Any) -> None:
    out = render(chart)
    secret = out.get("Secret", name("webhook-auth"))
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) >= 32 and token.isalnum()
    webhook = container(out.get("Deployment", name("webhook")), "webhook")
    assert "--token-file=/etc/repairbot/webhook-auth/token" in webhook["args"]


def test_an_auth_key_without_its_secret_fails_with_the_fields_named(chart: Any) -> None:
    with pytest.raises(helm.HelmError, match=r"webhook\.auth\.basicAuthKey.*webhook\.auth\.existingSecret"):
        render(chart, {"webhook": {"auth": {"basicAuthKey": "basic"}}})
    with pytest.raises(helm.HelmError, match=r"at least one of tokenKey"):
        render(chart, {"webhook": {"auth": {"existingSecret": "mine", "tokenKey": ""}}})


def test_webhook_disabled_renders_no_receiver_and_says_so(chart: Any) -> None:
    out = render(chart, {"webhook": {"enabled": False}})
    assert not out.has("Deployment", name("webhook"))
    assert not out.has("Service", name("webhook"))
    assert not out.has("ConfigMap", name("alert-mapping"))
    assert not out.has("ClusterRole", name("webhook"))
    assert "webhook is disabled" in out.notes and "/webhook/grafana" not in out.notes


def test_service_monitors_scrape_every_component_and_label_agents_by_node(chart: Any) -> None:
    out = render(chart, MONITORED)
    monitors = {m["metadata"]["name"]: m for m in out.of_kind("ServiceMonitor")}
    assert set(monitors) == {name("operator"), name("webhook"), name("agent")}
    services = {s["metadata"]["name"]: s for s in out.of_kind("Service")}
    for monitor in monitors.values():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["interval"] == "15s" and endpoint["path"] == "/metrics"
        selected = [
            s
            for s in services.values()
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert selected, f"{monitor['metadata']['name']} selects no Service"
        assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in selected)
    relabel = monitors[name("agent")]["spec"]["endpoints"][0]["relabelings"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in relabel


def test_names_follow_full_name_overrides(chart: Any) -> None:
    out = render(chart, {"fullnameOverride": "gpu-repair"})
    assert out.has("Deployment", "gpu-repair-operator")
    assert out.has("DaemonSet", "gpu-repair-agent")
    assert out.get("ClusterRoleBinding", "gpu-repair-agent")["subjects"][0]["name"] == "gpu-repair-agent"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_object_carries_the_standard_labels(chart: Any, scenario: str) -> None:
    for obj in render(chart, SCENARIOS[scenario]).objects:
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/name") == "repairbot", obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/instance") == "repairbot", obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", obj["metadata"]["name"]
