"""Grafana v1 and Alertmanager v4 bodies → Alerts; every wrong shape → a PayloadError naming the field."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repairbot.webhook.payloads import (
    AlertStatus,
    PayloadError,
    SenderKind,
    label_fingerprint,
    parse_body,
    parse_notification,
)

# REFERENCE.md §6.1, verbatim apart from the elided URLs.
GRAFANA_EXAMPLE = """
{"receiver":"gpu-remediator","status":"firing","orgId":1,
 "alerts":[{"status":"firing",
   "labels":{"alertname":"GpuXid","Hostname":"node-17","gpu":"3","UUID":"GPU-1234","xid":"79"},
   "annotations":{"summary":"Xid 79 on node-17 GPU 3"},
   "startsAt":"2026-05-01T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",
   "generatorURL":"https://grafana.example/alerting/grafana/abc/view","fingerprint":"1a2b3c4d5e6f7a8b",
   "silenceURL":"https://grafana.example/silence","dashboardURL":"","panelURL":"","values":{"A":79}}],
 "groupLabels":{"alertname":"GpuXid"},"commonLabels":{"alertname":"GpuXid"},"commonAnnotations":{},
 "externalURL":"https://grafana.example/","version":"1","groupKey":"{}:{alertname=\\"GpuXid\\"}",
 "truncatedAlerts":0,"title":"[FIRING:1] GpuXid","state":"alerting","message":"..."}
"""

ALERTMANAGER_EXAMPLE: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="DCGMXidErrors"}',
    "truncatedAlerts": 0,
    "status": "resolved",
    "receiver": "repairbot",
    "groupLabels": {"alertname": "DCGMXidErrors"},
    "commonLabels": {},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "resolved",
            "labels": {"alertname": "DCGMXidErrors", "instance": "10.0.0.7:9400", "err_code": "48"},
            "annotations": {"runbook_url": "https://runbooks/xid-48"},
            "startsAt": "2026-05-01T10:00:00.123456789Z",
            "endsAt": "2026-05-01T10:05:00.5+02:00",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        }
    ],
}


def test_reference_grafana_example_parses() -> None:
    note = parse_body(GRAFANA_EXAMPLE.encode(), SenderKind.GRAFANA)
    assert (note.receiver, note.status, note.truncated_alerts) == ("gpu-remediator", "firing", 0)
    [alert] = note.alerts
    assert alert.status is AlertStatus.FIRING and alert.firing
    assert alert.labels["Hostname"] == "node-17"
    assert alert.alertname == "GpuXid"
    assert alert.summary == "Xid 79 on node-17 GPU 3"
    assert alert.fingerprint == "1a2b3c4d5e6f7a8b"
    assert alert.starts_at == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert alert.ends_at is None  # Go's zero time while firing
    assert alert.generator_url.endswith("/abc/view")
    assert alert.identity() == ("1a2b3c4d5e6f7a8b", "2026-05-01T10:00:00Z")


def test_alertmanager_v4_with_nanoseconds_and_computed_fingerprint() -> None:
    note = parse_notification(ALERTMANAGER_EXAMPLE, SenderKind.ALERTMANAGER)
    [alert] = note.alerts
    assert alert.status is AlertStatus.RESOLVED
    assert alert.starts_at == datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert alert.ends_at == datetime(2026, 5, 1, 8, 5, 0, 500000, tzinfo=UTC)
    assert alert.runbook_url == "https://runbooks/xid-48"
    assert alert.fingerprint == label_fingerprint(alert.labels)
    assert len(alert.fingerprint) == 16


def test_fingerprint_ignores_label_order_but_not_values() -> None:
    assert label_fingerprint({"a": "1", "b": "2"}) == label_fingerprint({"b": "2", "a": "1"})
    assert label_fingerprint({"a": "1", "b": "2"}) != label_fingerprint({"a": "1", "b": "3"})
    assert label_fingerprint({"a": "1b"}) != label_fingerprint({"a1": "b"})


def _with_alert(**changes: Any) -> dict[str, Any]:
    alert = {"status": "firing", "labels": {"alertname": "X", "node": "n1"}, **changes}
    return {"version": "1", "alerts": [{"status": "firing", "labels": {}}, {"status": "firing", "labels": {}}, alert]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "body must be a JSON object, not an array"),
        ({"version": "1"}, "alerts is required"),
        ({"alerts": {}}, "alerts must be an array, not an object"),
        ({"version": "2", "alerts": []}, "version must be '1' for a grafana webhook (got '2')"),
        ({"alerts": [], "truncatedAlerts": "3"}, "truncatedAlerts must be an integer, not a string"),
        ({"alerts": [7]}, "alerts[0] must be an object, not a number"),
        (_with_alert(labels=[]), "alerts[2].labels must be an object, not an array"),
        (_with_alert(labels={"gpu": 3}), "alerts[2].labels.'gpu' must be a string, not a number"),
        (_with_alert(annotations="x"), "alerts[2].annotations must be an object, not a string"),
        (_with_alert(status="pending"), "alerts[2].status must be 'firing' or 'resolved' (got 'pending')"),
        (_with_alert(startsAt="yesterday"), "alerts[2].startsAt must be an RFC 3339 time (got 'yesterday')"),
        (_with_alert(fingerprint=12), "alerts[2].fingerprint must be a string, not a number"),
        ({"alerts": [{"status": "firing"}]}, "alerts[0].labels is required"),
    ],
)
def test_wrong_shapes_name_the_field(body: Any, reason: str) -> None:
    with pytest.raises(PayloadError) as raised:
        parse_notification(body, SenderKind.GRAFANA)
    assert str(raised.value) == reason


@pytest.mark.parametrize(
    ("raw", "start"),
    [(b"", "body is not JSON"), (b"{", "body is not JSON"), (b"\xff\xfe", "body is not JSON"), (b"[" * 100000, "body")],
)
def test_not_json(raw: bytes, start: str) -> None:
    with pytest.raises(PayloadError, match=f"^{start}"):
        parse_body(raw, SenderKind.ALERTMANAGER)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)
ALERTISH = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved", "x"]) | JSON},
    optional={
        "labels": st.dictionaries(st.sampled_from(["alertname", "node", "gpu"]) | st.text(max_size=5), st.text())
        | JSON,
        "annotations": JSON,
        "startsAt": st.text(max_size=40) | st.datetimes().map(lambda d: d.isoformat() + "Z") | JSON,
        "endsAt": st.text(max_size=40),
        "fingerprint": st.text(max_size=20) | JSON,
    },
)
BODY = JSON | st.fixed_dictionaries(
    {"alerts": st.lists(ALERTISH | JSON, max_size=4)},
    optional={"version": st.sampled_from(["1", "4"]) | JSON, "truncatedAlerts": JSON, "receiver": JSON},
)


@settings(max_examples=400, deadline=None)
@given(body=BODY, kind=st.sampled_from(list(SenderKind)))
def test_any_json_parses_or_raises_payload_error(body: Any, kind: SenderKind) -> None:
    try:
        note = parse_body(json.dumps(body).encode(), kind)
    except PayloadError as error:
        assert str(error)
        return
    for alert in note.alerts:
        assert alert.status in (AlertStatus.FIRING, AlertStatus.RESOLVED)
        assert all(isinstance(v, str) for v in alert.labels.values())
        assert alert.fingerprint


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_parse_or_raise_payload_error(raw: bytes) -> None:
    with contextlib.suppress(PayloadError):
        parse_body(raw, SenderKind.GRAFANA)


ALERT_SKELETON = '{"alerts":[{"status":"firing","labels":{"node":"gpu-1"}}],"truncatedAlerts":%s}'


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ((ALERT_SKELETON % ("9" * 5000)).encode(), "body is not JSON we accept: a number with 5000 digits"),
        ((ALERT_SKELETON % ("-" + "9" * 5000)).encode(), "body is not JSON we accept: a number with 5000 digits"),
        ((ALERT_SKELETON % "NaN").encode(), "body is not JSON we accept: NaN is not a JSON number"),
        ((ALERT_SKELETON % "-Infinity").encode(), "body is not JSON we accept: -Infinity is not a JSON number"),
        ((ALERT_SKELETON % ("1" + "0" * 400 + ".5")).encode(), "body is not JSON we accept: a number with 402 digits"),
        (b'{"alerts":' + b"[" * 5000 + b"]" * 5000 + b"}", "body is not JSON we accept: nested too deeply"),
        (b'{"alerts":' + b'{"a":' * 50 + b"1" + b"}" * 50 + b"}", "body is not JSON we accept: nested more than"),
        ('{"alerts":[]}'.encode("utf-16"), "body is not JSON: not UTF-8"),
        (b'{"receiver":"\xff\xfe"}', "body is not JSON"),
        (b'{"alerts":[],"receiver":"caf\xe9"}', "body is not JSON: not UTF-8"),
        (b"\xef\xbb\xbf{}", "body is not JSON"),
    ],
)
def test_hostile_bodies_are_refused_with_a_reason_not_a_crash(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as raised:
        parse_body(raw, SenderKind.GRAFANA)
    assert str(raised.value).startswith(reason), str(raised.value)
    assert len(str(raised.value)) < 300


def test_a_5000_digit_integer_in_a_label_position_is_refused_not_crashed() -> None:
    raw = b'{"alerts":[{"status":"firing","labels":{"gpu":' + b"7" * 5000 + b"}}]}"
    with pytest.raises(PayloadError, match="5000 digits"):
        parse_body(raw, SenderKind.ALERTMANAGER)


def test_huge_strings_are_parsed_and_left_to_the_mapping_to_bound() -> None:
    raw = json.dumps({"alerts": [{"status": "firing", "labels": {"node": "gpu-1"},
                                  "annotations": {"summary": "s" * 900_000}}]}).encode()  # fmt: skip
    note = parse_body(raw, SenderKind.GRAFANA)
    assert len(note.alerts[0].summary) == 900_000


HOSTILE_LEAF = (
    st.integers(min_value=30, max_value=6000).map(lambda digits: "-" * (digits % 2) + "9" * digits)
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999999", '"\\ud800"', '"\\u0000"'])
    | st.text(min_size=1000, max_size=5000).map(json.dumps)
)


@settings(max_examples=150, deadline=None)
@given(leaf=HOSTILE_LEAF, depth=st.integers(min_value=0, max_value=3000), where=st.sampled_from(
    ['{"alerts":[{"status":"firing","labels":{"node":%s}}]}', '{"alerts":[],"truncatedAlerts":%s}',
     '{"alerts":[%s]}', '{"version":%s,"alerts":[]}', "%s"]))  # fmt: skip
def test_large_numbers_deep_nesting_and_huge_strings_parse_or_raise_payload_error(
    leaf: str, depth: int, where: str
) -> None:
    value = "[" * depth + leaf + "]" * depth
    raw = (where % value).encode("utf-8", "surrogatepass")
    with contextlib.suppress(PayloadError):
        parse_body(raw, SenderKind.GRAFANA)
