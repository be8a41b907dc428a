"""The chart fitted to a real cluster: proxy, CA bundle, labels, placement, a mirror, digests, two releases, helm test.

Every value set here is also rendered as the ``real-cluster`` scenario (chart_support.REAL_CLUSTER), which
test_chart_manifests_valid.py validates strictly against the Kubernetes schemas and test_chart_rbac.py checks
for least privilege.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from chart_support import (
    CA_BUNDLE_MOUNT,
    CA_BUNDLE_VOLUME,
    DIGEST,
    NAMESPACE,
    PROXY_ENV,
    REAL_CLUSTER,
    RELEASE,
    Rendered,
    container,
    name,
    render,
)

from repairbot_sim.kube.attributes import RequestAttributes
from repairbot_sim.kube.identity import service_account
from repairbot_sim.kubeapi import KubeApiServer

WORKLOADS = [("Deployment", "operator"), ("DaemonSet", "agent"), ("Deployment", "webhook")]
TEST_POD = "Pod"


def pod_of(out: Rendered, kind: str, component: str) -> dict[str, Any]:
    return dict(out.get(kind, name(component))["spec"]["template"])


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, str]) -> bool:
    """Kubernetes' rule (k8s.io/api/core/v1 Toleration.ToleratesTaint), for the tests' taints."""
    for item in tolerations:
        if item.get("effect") and item["effect"] != taint["effect"]:
            continue
        if item.get("key") and item["key"] != taint["key"]:
            continue
        if item.get("operator", "Equal") == "Exists" or item.get("value", "") == taint.get("value", ""):
            return True
    return False


# --------------------------------------------------------------------------- every component, the same knobs


@pytest.mark.parametrize(("kind", "component"), WORKLOADS)
def test_each_component_takes_a_proxy_a_ca_bundle_labels_and_placement(chart: Any, kind: str, component: str) -> None:
    out = render(chart, REAL_CLUSTER)
    template = pod_of(out, kind, component)
    pod, main = template["spec"], container(out.get(kind, name(component)), component)
    fitted = REAL_CLUSTER[component]

    env = main["env"]
    assert env[-len(PROXY_ENV):] == PROXY_ENV, "extraEnv comes after the chart's own variables"
    assert CA_BUNDLE_VOLUME in pod["volumes"] and CA_BUNDLE_MOUNT in main["volumeMounts"]
    assert {"team": "sre", "cost-center": "gpu-fleet"}.items() <= template["metadata"]["labels"].items()
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert pod["priorityClassName"] == fitted["priorityClassName"]
    assert pod["nodeSelector"] == fitted["nodeSelector"]
    assert pod["tolerations"] == fitted["tolerations"]
    assert pod["affinity"] == fitted["affinity"]
    assert main["resources"] == fitted["resources"]
    assert pod["imagePullSecrets"] == [{"name": "mirror-pull"}]


@pytest.mark.parametrize(("kind", "component"), WORKLOADS)
def test_pod_labels_never_replace_the_labels_the_selectors_match(chart: Any, kind: str, component: str) -> None:
    hijack = {"app.kubernetes.io/component": "other", "app.kubernetes.io/instance": "other", "team": "sre"}
    out = render(chart, {component: {"podLabels": hijack}})
    workload = out.get(kind, name(component))
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels["team"] == "sre"


def test_the_operator_and_webhook_get_no_priority_class_unless_asked(chart: Any) -> None:
    out = render(chart)
    assert "priorityClassName" not in pod_of(out, "Deployment", "operator")["spec"]
    assert "priorityClassName" not in pod_of(out, "Deployment", "webhook")["spec"]
    assert "priorityClassName" not in pod_of(render(chart, {"agent": {"priorityClassName": ""}}), "DaemonSet", "agent")[
        "spec"
    ]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_log_format_reaches_every_component_before_its_subcommand(chart: Any, log_format: str) -> None:
    """``repairbot --log-format json operator ...``: a global option, parsed before the subcommand."""
    out = render(chart, {"logFormat": log_format})
    for kind, component in WORKLOADS:
        args = container(out.get(kind, name(component)), component)["args"]
        assert args.index(f"--log-format={log_format}") < args.index(component), args
        assert len([arg for arg in args if arg.startswith("--log-format")]) == 1


# --------------------------------------------------------------------------- the agent stays on its node


TAINTS = [
    {"key": "repairbot.io/unhealthy", "value": "xid-79", "effect": "NoSchedule"},
    {"key": "repairbot.io/unhealthy", "value": "xid-79", "effect": "NoExecute"},
    {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
    {"key": "dedicated", "value": "training", "effect": "NoSchedule"},
]


@pytest.mark.parametrize("taint", TAINTS, ids=[f"{t['key']}:{t['effect']}" for t in TAINTS])
def test_the_agent_tolerates_every_taint_by_default(chart: Any, taint: dict[str, str]) -> None:
    """As node DaemonSets do: a node RepairBot tainted, or one going bad, keeps the agent that repairs it."""
    pod = pod_of(render(chart), "DaemonSet", "agent")["spec"]
    assert tolerates(pod["tolerations"], taint)
    assert not tolerates(pod_of(render(chart), "Deployment", "operator")["spec"].get("tolerations", []), taint)


# --------------------------------------------------------------------------- image: mirror and digest


def images(out: Rendered) -> list[str]:
    found = [container(out.get(kind, name(component)), component)["image"] for kind, component in WORKLOADS]
    found += [item["image"] for pod in out.of_kind(TEST_POD) for item in pod["spec"]["containers"]]
    return found


@pytest.mark.parametrize(
    ("values", "image"),
    [
        ({}, "repairbot:0.1.0"),
        ({"image": {"tag": "0.2.0"}}, "repairbot:0.2.0"),
        ({"image": {"tag": "0.2.0", "digest": DIGEST}}, f"repairbot@{DIGEST}"),
        ({"global": {"imageRegistry": "mirror.example.com"}}, "mirror.example.com/repairbot:0.1.0"),
        ({"global": {"imageRegistry": "mirror.example.com:5000/"}, "image": {"repository": "sre/repairbot",
          "digest": DIGEST}}, f"mirror.example.com:5000/sre/repairbot@{DIGEST}"),
    ],
    ids=["tag-from-app-version", "tag", "digest-wins-over-tag", "global-registry", "registry-and-digest"],
)  # fmt: skip
def test_every_container_runs_the_one_image_from_the_mirror_by_digest(
    chart: Any, values: dict[str, Any], image: str
) -> None:
    found = images(render(chart, values))
    assert len(found) == 4 and set(found) == {image}


@pytest.mark.parametrize("digest", ["latest", "sha256:abc", "md5:" + "ab" * 16, "ab" * 32])
def test_a_digest_that_is_not_sha256_fails_the_install(chart: Any, digest: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=r"/image/digest"):
        render(chart, {"image": {"digest": digest}})


# --------------------------------------------------------------------------- two releases, one namespace


def operator_names(out: Rendered) -> tuple[str, str]:
    args = container(out.get("Deployment", name_of(out, "operator")), "operator")["args"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)
    return flags["lease-name"], flags["breaker-configmap"]


def name_of(out: Rendered, component: str) -> str:
    (deployment,) = [d for d in out.of_kind("Deployment") if d["metadata"]["name"].endswith(f"-{component}")]
    return str(deployment["metadata"]["name"])


def named_rules(out: Rendered) -> dict[str, list[str]]:
    """resource → resourceNames of the operator Role's rules that name their objects."""
    role = out.get("Role", name_of(out, "operator"), NAMESPACE)
    return {rule["resources"][0]: rule["resourceNames"] for rule in role["rules"] if rule.get("resourceNames")}


def can(server: KubeApiServer, account: str, verb: str, resource: str, group: str, object_name: str) -> bool:
    request = RequestAttributes(verb=verb, path="", resource_request=True, group=group, resource=resource,
                                subresource="", namespace=NAMESPACE, name=object_name)  # fmt: skip
    return server.authorizer.authorize(service_account(NAMESPACE, account), request).allowed


def test_two_releases_in_one_namespace_elect_and_break_storms_apart(chart: Any) -> None:
    """Each release's operator holds its own Lease and breaker ConfigMap, and may touch only its own."""
    prod, canary = render(chart, release=RELEASE), render(chart, release="canary")
    assert operator_names(prod) == ("repairbot-operator", "repairbot-breaker")  # the names of every earlier chart
    assert operator_names(canary) == ("canary-repairbot-operator", "canary-repairbot-breaker")
    for out in (prod, canary):
        lease, breaker = operator_names(out)
        assert named_rules(out) == {"leases": [lease], "configmaps": [breaker]}

    server = KubeApiServer()
    for out in (prod, canary):
        for obj in out.objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
                server.apply_object(obj)
    for own, other in ((prod, canary), (canary, prod)):
        account = name_of(own, "operator")
        (own_lease, own_breaker), (other_lease, other_breaker) = operator_names(own), operator_names(other)
        for verb in ("get", "update"):
            assert can(server, account, verb, "leases", "coordination.k8s.io", own_lease)
            assert can(server, account, verb, "configmaps", "", own_breaker)
            assert not can(server, account, verb, "leases", "coordination.k8s.io", other_lease), (account, verb)
            assert not can(server, account, verb, "configmaps", "", other_breaker), (account, verb)


def test_the_notes_name_the_releases_own_lease_and_offer_helm_test(chart: Any) -> None:
    notes = render(chart, release="canary").notes
    assert f"kubectl -n {NAMESPACE} get lease canary-repairbot-operator" in notes
    assert f"helm test canary -n {NAMESPACE}" in notes


def test_an_upgraded_release_can_keep_the_names_its_operators_already_hold(chart: Any) -> None:
    """A release not named repairbot upgraded from a chart that used repairbot-operator for every release."""
    out = render(chart, {"operator": {"leaseName": "repairbot-operator", "breakerConfigMap": "repairbot-breaker"}},
                 release="prod")  # fmt: skip
    assert operator_names(out) == ("repairbot-operator", "repairbot-breaker")
    assert named_rules(out) == {"leases": ["repairbot-operator"], "configmaps": ["repairbot-breaker"]}


# --------------------------------------------------------------------------- Prometheus credentials


def test_the_prometheus_token_and_ca_bundle_reach_the_operator_as_files(chart: Any) -> None:
    deployment = render(chart, REAL_CLUSTER).get("Deployment", name("operator"))
    operator = container(deployment, "operator")
    assert "--prometheus-ca-file=/etc/repairbot/ca/ca.crt" in operator["args"]
    assert "--prometheus-token-file=/etc/repairbot/prometheus-auth/token" in operator["args"]
    assert not [arg for arg in operator["args"] if arg.startswith("--prometheus-basic-auth-file")]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["prometheus-auth"]["secret"] == {
        "secretName": "prometheus-reader", "items": [{"key": "token", "path": "token"}],
    }  # fmt: skip
    mounts = {m["name"]: m for m in operator["volumeMounts"]}
    assert mounts["prometheus-auth"] == {"name": "prometheus-auth", "mountPath": "/etc/repairbot/prometheus-auth",
                                         "readOnly": True}  # fmt: skip
    assert not [e for e in operator["env"] if "PROMETHEUS" in e["name"]], "credentials are files, never env"
    default = container(render(chart).get("Deployment", name("operator")), "operator")
    assert not [arg for arg in default["args"] if arg.startswith("--prometheus")]


def test_prometheus_basic_auth_reaches_the_operator_as_a_file(chart: Any) -> None:
    auth = {"existingSecret": "prometheus-reader", "tokenKey": "", "basicAuthKey": "basic"}
    operator = container(render(chart, {"operator": {"prometheus": {"auth": auth}}}).get(
        "Deployment", name("operator")), "operator")  # fmt: skip
    assert "--prometheus-basic-auth-file=/etc/repairbot/prometheus-auth/basic-auth" in operator["args"]
    assert not [arg for arg in operator["args"] if arg.startswith(("--prometheus-token-file", "--prometheus-ca"))]


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"existingSecret": "", "tokenKey": "token"}, r"operator\.prometheus\.auth\.tokenKey.*existingSecret"),
        ({"existingSecret": "p"}, r"name its tokenKey or basicAuthKey"),
        ({"existingSecret": "p", "tokenKey": "t", "basicAuthKey": "b"}, r"not both"),
    ],
    ids=["key-without-secret", "secret-without-key", "both-credentials"],
)
def test_half_configured_prometheus_credentials_fail_the_install(
    chart: Any, auth: dict[str, str], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(chart, {"operator": {"prometheus": {"auth": auth}}})


# --------------------------------------------------------------------------- helm test


def hook_pod(out: Rendered) -> dict[str, Any]:
    (pod,) = out.of_kind(TEST_POD)
    return pod


def service_url(out: Rendered, service: str, port_name: str) -> str:
    svc = out.get("Service", service)
    (port,) = [p for p in svc["spec"]["ports"] if p["name"] == port_name]
    return f"http://{service}.{NAMESPACE}.svc:{port['port']}/healthz"


def test_helm_test_asks_the_operator_and_the_webhook_for_their_health(chart: Any) -> None:
    out = render(chart)
    pod = hook_pod(out)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    urls = pod["spec"]["containers"][0]["command"][3:]
    assert urls == [service_url(out, name("operator-metrics"), "health"), service_url(out, name("webhook"), "http")]
    # The Service ports lead to the containers' health endpoints: the operator's /healthz, the webhook's.
    operator_port = [p for p in out.get("Service", name("operator-metrics"))["spec"]["ports"] if p["name"] == "health"]
    assert operator_port[0]["targetPort"] == "health"
    assert {"name": "health", "containerPort": 8081} in container(out.get("Deployment", name("operator")), "operator")[
        "ports"
    ]
    without_webhook = hook_pod(render(chart, {"webhook": {"enabled": False}}))["spec"]["containers"][0]["command"][3:]
    assert without_webhook == urls[:1]


def test_helm_test_needs_no_rbac_and_runs_restricted(chart: Any) -> None:
    for out in (render(chart), render(chart, REAL_CLUSTER)):
        pod = hook_pod(out)
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
        assert spec["restartPolicy"] == "Never"
        (probe,) = spec["containers"]
        security = probe["securityContext"]
        assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]} and security["allowPrivilegeEscalation"] is False
        for version in ("1.30.0", kubernetes_validate.latest_version()):
            kubernetes_validate.validate(pod, version, strict=True)


class _Healthz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name for the GET handler
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def healthz_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_the_helm_test_script_passes_on_healthy_endpoints(chart: Any, healthz_server: str) -> None:
    """The Pod's own command, run by this Python (the image's) against two endpoints that answer 200."""
    command = hook_pod(render(chart))["spec"]["containers"][0]["command"]
    assert command[:2] == ["python", "-c"]
    done = subprocess.run([sys.executable, "-c", command[2], f"{healthz_server}/healthz", f"{healthz_server}/healthz"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": 200") == 2


# --------------------------------------------------------------------------- the flags reach the operator


def test_the_operator_flags_the_chart_renders_are_the_ones_repairbot_operator_runs_with(chart: Any) -> None:
    """The real CLI parser reads the rendered command line (from the subcommand on: ``--log-format`` is a
    global option asserted above) into the options the operator starts with."""
    from repairbot.cli import build_parser, operator_options

    args = container(render(chart, REAL_CLUSTER, release="canary").get("Deployment", "canary-repairbot-operator"),
                     "operator")["args"]  # fmt: skip
    options = operator_options(build_parser().parse_args(args[args.index("operator"):]))
    assert (options.lease_name, options.breaker_configmap) == ("canary-repairbot-operator", "canary-repairbot-breaker")
    assert str(options.prometheus.ca_file) == "/etc/repairbot/ca/ca.crt"
    assert str(options.prometheus.token_file) == "/etc/repairbot/prometheus-auth/token"
    assert options.prometheus.basic_auth_file is None

    defaults = operator_options(build_parser().parse_args(["operator"]))
    assert (defaults.lease_name, defaults.breaker_configmap) == ("repairbot-operator", "repairbot-breaker")
    assert defaults.prometheus.ca_file is None and defaults.prometheus.token_file is None
