"""The webhook end to end: real HTTP in, real kubernetes client out, against the emulated API server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from repairbot.model import GROUP, LABEL_STATE, PLURAL, VERSION
from repairbot.webhook.auth import WebhookAuth, sign

GRAFANA = "/webhook/grafana"
ALERTMANAGER = "/webhook/alertmanager"


def grafana_alert(host: str, *, status: str = "firing", fp: str = "", xid: str = "79", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "GpuXid", "Hostname": host, "gpu": "3", "UUID": f"GPU-{host}", "xid": xid, **labels},
        "annotations": {"summary": f"Xid {xid} on {host} GPU 3", "runbook_url": f"https://runbooks/xid-{xid}"},
        "startsAt": "2026-05-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-05-01T10:05:00Z",
        "generatorURL": "https://grafana.example/alerting/grafana/abc/view",
        "fingerprint": fp or f"fp-{host}",
        "dashboardURL": "https://grafana.example/d/gpu",
        "panelURL": "https://grafana.example/d/gpu?viewPanel=2",
    }


def grafana(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {
        "receiver": "gpu-remediator", "status": status, "orgId": 1, "alerts": list(alerts),
        "groupLabels": {"alertname": "GpuXid"}, "commonLabels": {"alertname": "GpuXid"}, "commonAnnotations": {},
        "externalURL": "https://grafana.example/", "version": "1", "groupKey": "{}:{alertname=\"GpuXid\"}",
        "truncatedAlerts": 0, "title": "[FIRING] GpuXid", "state": "alerting", "message": "",
    }  # fmt: skip


async def test_grafana_payload_for_two_nodes_opens_two_repairs(webhook: Any) -> None:
    status, answer = await webhook.post(GRAFANA, grafana(grafana_alert("gpu-1"), grafana_alert("gpu-2")))
    assert status == 202, answer
    assert answer["ignored"] == []
    assert sorted((r["node"], r["alert"]) for r in answer["repairs"]) == [("gpu-1", "GpuXid"), ("gpu-2", "GpuXid")]
    repairs = {r["spec"]["nodeName"]: r for r in webhook.repairs()}
    assert set(repairs) == {"gpu-1", "gpu-2"}
    assert {r["name"] for r in answer["repairs"]} == {r["metadata"]["name"] for r in repairs.values()}
    spec = repairs["gpu-1"]["spec"]
    assert spec["source"] == "grafana"
    [finding] = spec["findings"]
    assert (finding["code"], finding["xid"], finding["source"]) == ("xid-79", 79, "grafana")
    assert finding["gpu"] == {"index": 3, "uuid": "GPU-gpu-1"}
    evidence = finding["evidence"]
    assert evidence["alertname"] == "GpuXid"
    assert evidence["fingerprint"] == "fp-gpu-1"
    assert evidence["generatorURL"] == "https://grafana.example/alerting/grafana/abc/view"
    assert evidence["dashboardURL"] == "https://grafana.example/d/gpu"
    assert evidence["runbook_url"] == "https://runbooks/xid-79"
    assert evidence["summary"] == "Xid 79 on gpu-1 GPU 3"
    assert evidence["receiver"] == "gpu-remediator"
    assert evidence["label.UUID"] == "GPU-gpu-1"
    # the webhook writes no node: the operator tags a node faulty only if its repair has to wait
    assert LABEL_STATE not in webhook.node_labels("gpu-1") and LABEL_STATE not in webhook.node_labels("gpu-2")


async def test_same_payload_twice_is_still_one_repair_per_node(webhook: Any) -> None:
    body = grafana(grafana_alert("gpu-1"), grafana_alert("gpu-2"))
    first = await webhook.post(GRAFANA, body)
    second = await webhook.post(GRAFANA, body)
    assert first == second
    repairs = webhook.repairs()
    assert len(repairs) == 2
    assert all(r["spec"]["findings"][0]["count"] == 1 for r in repairs)


async def test_refire_of_same_label_set_merges_into_the_active_repair(webhook: Any) -> None:
    await webhook.post(GRAFANA, grafana(grafana_alert("gpu-1")))
    again = grafana_alert("gpu-1")
    again["startsAt"] = "2026-05-01T11:00:00Z"
    status, answer = await webhook.post(GRAFANA, grafana(again))
    assert status == 202
    [repair] = webhook.repairs()
    assert answer["repairs"][0]["name"] == repair["metadata"]["name"]
    assert repair["spec"]["findings"][0]["count"] == 2


async def test_resolved_creates_nothing(webhook: Any) -> None:
    status, answer = await webhook.post(GRAFANA, grafana(grafana_alert("gpu-1", status="resolved"), status="resolved"))
    assert (status, answer) == (202, {"repairs": [], "ignored": [{"fingerprint": "fp-gpu-1", "reason": "resolved"}]})
    assert webhook.repairs() == []
    assert LABEL_STATE not in webhook.node_labels("gpu-1")


async def test_resolved_is_marked_on_the_active_repair_it_fed(webhook: Any) -> None:
    await webhook.post(GRAFANA, grafana(grafana_alert("gpu-1")))
    status, answer = await webhook.post(GRAFANA, grafana(grafana_alert("gpu-1", status="resolved"), status="resolved"))
    assert (status, answer["ignored"]) == (202, [{"fingerprint": "fp-gpu-1", "reason": "resolved"}])
    [repair] = webhook.repairs()
    [finding] = repair["spec"]["findings"]
    assert finding["evidence"]["resolvedAt"] == "2026-05-01T10:05:00.000Z"  # the alert's endsAt
    assert finding["count"] == 1  # noted, not counted as another firing


async def test_unknown_node_and_missing_node_label_are_ignored(webhook: Any) -> None:
    nameless = grafana_alert("x", fp="fp-none")
    del nameless["labels"]["Hostname"]
    status, answer = await webhook.post(GRAFANA, grafana(grafana_alert("gpu-99"), nameless))
    assert status == 202
    assert answer == {"repairs": [], "ignored": [
        {"fingerprint": "fp-gpu-99", "reason": "unknown-node"}, {"fingerprint": "fp-none", "reason": "no-node-label"},
    ]}  # fmt: skip
    assert webhook.repairs() == []


async def test_alertmanager_by_instance_address(webhook: Any) -> None:
    body = {
        "version": "4", "status": "firing", "receiver": "repairbot", "groupKey": "k", "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "startsAt": "2026-05-01T10:00:00.123456789Z",
                    "labels": {"alertname": "DCGMXidErrors", "instance": "10.0.0.2:9400", "err_code": "48"}}],
    }  # fmt: skip
    status, answer = await webhook.post(ALERTMANAGER, body)
    assert status == 202, answer
    [repair] = webhook.repairs()
    assert (repair["spec"]["nodeName"], repair["spec"]["source"]) == ("gpu-2", "alertmanager")
    assert repair["spec"]["findings"][0]["code"] == "xid-48"


async def test_node_already_repairing_keeps_its_label(webhook: Any, apiserver: Any) -> None:
    client.CoreV1Api(webhook.api).patch_node("gpu-1", {"metadata": {"labels": {LABEL_STATE: "repairing"}}})
    status, _ = await webhook.post(GRAFANA, grafana(grafana_alert("gpu-1")))
    assert status == 202
    assert webhook.node_labels("gpu-1")[LABEL_STATE] == "repairing"


async def test_disabled_node_is_ignored(webhook: Any) -> None:
    client.CoreV1Api(webhook.api).patch_node("gpu-1", {"metadata": {"labels": {"repairbot.io/disabled": "true"}}})
    _, answer = await webhook.post(GRAFANA, grafana(grafana_alert("gpu-1")))
    assert answer["ignored"] == [{"fingerprint": "fp-gpu-1", "reason": "node-disabled"}]
    assert webhook.repairs() == []


@pytest.mark.parametrize(
    ("kwargs", "code", "reason"),
    [
        ({"headers": {"Authorization": "Bearer wrong"}}, 401, "bearer token does not match"),
        ({"method": "GET"}, 405, "Method Not Allowed"),
        ({"raw": b"x" * (64 * 1024 + 1)}, 413, "over the limit"),
        ({"raw": b"{not json"}, 400, "body is not JSON"),
        ({"body": {"alerts": [{"status": "firing", "labels": {"node": "gpu-1"}}, {"status": "firing", "labels": []}]}},
         400, "alerts[1].labels must be an object, not an array"),
    ],
)  # fmt: skip
async def test_refusals_apply_nothing(webhook: Any, kwargs: dict[str, Any], code: int, reason: str) -> None:
    status, answer = await webhook.post(GRAFANA, **kwargs)
    assert status == code
    assert reason in answer["error"]
    assert webhook.repairs() == []
    assert LABEL_STATE not in webhook.node_labels("gpu-1")


async def test_chunked_body_over_the_limit_is_413(webhook: Any) -> None:
    async def chunks() -> Any:
        for _ in range(80):
            yield b"x" * 1024

    headers = {"Authorization": "Bearer test-token"}
    async with webhook.session.post(webhook.url + GRAFANA, data=chunks(), headers=headers) as response:
        assert response.status == 413


async def test_health_metrics_and_openapi(webhook: Any) -> None:
    await webhook.post(GRAFANA, grafana(grafana_alert("gpu-1"), grafana_alert("gpu-99")))
    async with webhook.session.get(webhook.url + "/healthz") as response:
        assert response.status == 200
    async with webhook.session.get(webhook.url + "/openapi.json") as response:
        document = await response.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {GRAFANA, ALERTMANAGER}
    assert "202" in document["paths"][GRAFANA]["post"]["responses"]
    async with webhook.session.get(webhook.url + "/metrics") as response:
        text = await response.text()
    assert 'repairbot_webhook_alerts_accepted_total{source="grafana"} 1.0' in text
    assert 'repairbot_webhook_alerts_ignored_total{reason="unknown-node",source="grafana"} 1.0' in text
    assert 'repairbot_webhook_alerts_received_total{source="grafana",status="firing"} 2.0' in text
    assert "repairbot_webhook_request_seconds_bucket" in text


@pytest.fixture
def hmac_auth() -> WebhookAuth:
    return WebhookAuth(hmac_secret=b"grafana-secret", timestamp_header="X-Grafana-Alerting-Signature-Timestamp")


@pytest.mark.parametrize("case", ["good", "bad", "stale"])
async def test_grafana_hmac(
    apiserver: Any, kube_api: Any, kube_objects: Any, hmac_auth: WebhookAuth, case: str
) -> None:
    import time

    import aiohttp

    from repairbot.webhook.main import WebhookOptions, start_webhook

    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    runner, url = await start_webhook(kube_api, WebhookOptions(host="127.0.0.1", port=0), auth=hmac_auth)
    try:
        body = json.dumps(grafana(grafana_alert("gpu-1"))).encode()
        stamp = str(int(time.time()) - (1000 if case == "stale" else 0))
        signature = sign(b"grafana-secret" if case != "bad" else b"guess", stamp.encode() + b":" + body)
        headers = {"X-Grafana-Alerting-Signature": signature, "X-Grafana-Alerting-Signature-Timestamp": stamp}
        async with aiohttp.ClientSession() as session, session.post(url + GRAFANA, data=body, headers=headers) as r:
            assert r.status == (202 if case == "good" else 401)
        listing = client.CustomObjectsApi(kube_api).list_cluster_custom_object(GROUP, VERSION, PLURAL)
        assert len(listing["items"]) == (1 if case == "good" else 0)
    finally:
        await runner.cleanup()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=20,
)
# no digits: no value can name gpu-1/gpu-2 or their 10.0.0.x addresses
NOT_A_NODE = st.text(alphabet="abgpuXYZ-.:[]/ \u00e9\x00", max_size=10)
GARBAGE_ALERT = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved"]) | JSONISH},
    optional={"labels": st.dictionaries(st.sampled_from(["node", "instance", "alertname"]) | st.text(max_size=4),
                                        NOT_A_NODE) | JSONISH,
              "startsAt": st.text(max_size=30) | JSONISH, "fingerprint": JSONISH},
)  # fmt: skip
GARBAGE = JSONISH | st.fixed_dictionaries({"alerts": st.lists(GARBAGE_ALERT | JSONISH, max_size=3)})


async def test_fuzzed_bodies_never_5xx_and_never_repair_from_garbage(webhook: Any) -> None:
    """Garbage names no existing node (gpu-1/gpu-2 are not in the alphabet), so it may not open a repair."""
    bodies: list[Any] = []

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=GARBAGE, endpoint=st.sampled_from([GRAFANA, ALERTMANAGER]))
    def collect(body: Any, endpoint: str) -> None:
        bodies.append((endpoint, body))

    collect()
    for endpoint, body in bodies:
        status, answer = await webhook.post(endpoint, body)
        assert status in (202, 400), (status, answer, body)
        if status == 202:
            assert answer["repairs"] == []
    assert webhook.repairs() == []


HOSTILE_RAW = st.sampled_from([
    b'{"alerts":[],"truncatedAlerts":' + b"9" * 5000 + b"}",
    b'{"alerts":[{"status":"firing","labels":{"node":' + b"1" * 4400 + b"}}]}",
    b'{"alerts":[],"orgId":NaN}',
    b'{"alerts":' + b"[" * 20000 + b"]" * 20000 + b"}",
    b'{"alerts":' + b'{"a":' * 900 + b"1" + b"}" * 900 + b"}",
    '{"alerts":[]}'.encode("utf-16"),
    '{"alerts":[]}'.encode("utf-32"),
    b"\xef\xbb\xbf" + b'{"alerts":[]}',
    b'{"alerts":[{"status":"firing","labels":{"node":"caf\xe9"}}]}',
    b'{"alerts":[{"status":"firing","labels":{"node":"\\ud800"}}]}',
]) | st.builds(
    lambda text: json.dumps(
        {"alerts": [{"status": "firing", "labels": {"node": "nowhere", "x": text}}]}, ensure_ascii=False
    ).encode(),
    st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=8, alphabet="ab\u00e9\U0001f600\x00"),
              st.integers(min_value=500, max_value=1_000)),
)  # fmt: skip


async def test_hostile_bodies_get_400_with_a_reason_never_5xx(webhook: Any) -> None:
    """Large numbers, deep nesting, huge strings and odd encodings: each a 400 naming why (or ignored), never a 500."""
    bodies: list[bytes] = []

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(raw=HOSTILE_RAW)
    def collect(raw: bytes) -> None:
        bodies.append(raw)

    collect()
    for raw in bodies:
        status, answer = await webhook.post(GRAFANA, raw=raw)
        assert status in (202, 400), (status, answer, raw[:80])
        if status == 400:
            assert answer["error"].startswith("body is not JSON"), answer
    status, answer = await webhook.post(GRAFANA, raw=b'{"alerts":[],"truncatedAlerts":' + b"9" * 5000 + b"}")
    assert (status, answer["error"]) == (400, "body is not JSON we accept: a number with 5000 digits (at most 40)")
    assert webhook.repairs() == []


async def test_a_900kb_alert_summary_makes_a_repair_under_the_size_limit(
    apiserver: Any, kube_api: client.ApiClient, kube_objects: Any
) -> None:
    import aiohttp

    from repairbot.webhook.main import WebhookOptions, start_webhook

    apiserver.server.create_object(kube_objects.gpu_node("gpu-1", ip="10.0.0.1"))
    runner, url = await start_webhook(kube_api, WebhookOptions(host="127.0.0.1", port=0),
                                      auth=WebhookAuth(bearer_token="test-token"))  # fmt: skip
    try:
        huge = grafana_alert("gpu-1")
        huge["annotations"]["summary"] = "GPU fell off the bus; dmesg follows: " + "x" * 900_000
        async with aiohttp.ClientSession() as session, session.post(
            url + GRAFANA, data=json.dumps(grafana(huge)).encode(), headers={"Authorization": "Bearer test-token"}
        ) as response:
            assert response.status == 202, await response.text()
    finally:
        await runner.cleanup()
    (repair,) = client.CustomObjectsApi(kube_api).list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
    assert len(json.dumps(repair)) < 64 * 1024
    message = repair["spec"]["findings"][0]["message"]
    assert message.startswith("GPU fell off the bus") and "truncated" in message
