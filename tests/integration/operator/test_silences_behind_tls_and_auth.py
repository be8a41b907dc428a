"""Silences through an Alertmanager behind TLS and basic auth, as real clusters run it.

Debian's real ``prometheus-alertmanager`` serves https with a self-signed
certificate and asks for basic auth (bcrypt, as it requires) through its own
``--web.config.file``. Verification is on by default and refuses it until
its CA is given; the credentials come from a file; a wrong password is
Alertmanager's 401, recorded on the repair and counted, never ignored.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from child_servers import ChildServers, binary_or_skip, self_signed_certificate, start_alertmanager
from kubernetes import client
from tenacity import wait_none

from repairbot.model import GROUP, PLURAL, VERSION, format_time
from repairbot.notify import NotifyError
from repairbot.notify.alertmanager import AlertmanagerSilences
from repairbot.notify.http_access import HttpAccess
from repairbot.operator.main import OperatorOptions, run_operator
from repairbot.operator.metrics import OperatorMetrics
from repairbot.operator.silence_plan import silence_matchers
from repairbot.operator.silences import CONDITION_SILENCED, SilenceKeeper
from repairbot.policy import AlertmanagerPolicy

AM_CONFIG = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"
USER, PASSWORD = "repairbot", "silence-keeper"
NODE = "gpu-node-007"
REPAIR = "gpu-node-007-20261202080000"
POLICY = AlertmanagerPolicy(url="http://unused", alertnames=("KubeNodeNotReady",))
MATCHERS = silence_matchers(POLICY, NODE)


@dataclass(frozen=True)
class SecuredAlertmanager:
    url: str
    ca: Path
    other_ca: Path
    basic_auth_file: Path


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredAlertmanager]:
    binary_or_skip("prometheus-alertmanager", "alertmanager")
    cert, key = self_signed_certificate(tmp_path, "alertmanager")
    other_ca, _ = self_signed_certificate(tmp_path, "someone-else")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = (f"tls_server_config: {{cert_file: {cert}, key_file: {key}}}\n"
                  f"basic_auth_users: {{{USER}: '{hashed}'}}\n")  # fmt: skip
    credentials = tmp_path / "basic-auth"
    credentials.write_text(f"{USER}:{PASSWORD}\n")
    with ChildServers() as children:
        ready_with = {"verify": ssl.create_default_context(cafile=cert), "auth": (USER, PASSWORD)}
        url = start_alertmanager(children, tmp_path / "am", AM_CONFIG, web_config=web_config, ready_with=ready_with)
        yield SecuredAlertmanager(url, cert, other_ca, credentials)


def silences_api(am: SecuredAlertmanager, **access: Any) -> AlertmanagerSilences:
    return AlertmanagerSilences(am.url, wait=wait_none(), timeout=5, attempts=1, access=HttpAccess(**access))


def test_verification_is_on_by_default_and_refuses_a_self_signed_alertmanager(secured: SecuredAlertmanager) -> None:
    for access in ({"basic_auth_file": secured.basic_auth_file},
                   {"ca_file": secured.other_ca, "basic_auth_file": secured.basic_auth_file}):  # fmt: skip
        with pytest.raises(NotifyError) as caught:
            silences_api(secured, **access).find(MATCHERS)
        assert caught.value.code == "connection-error"
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.detail or "certificate verify failed" in caught.value.detail


def test_given_its_ca_and_basic_auth_the_silences_are_listed(secured: SecuredAlertmanager) -> None:
    api = silences_api(secured, ca_file=secured.ca, basic_auth_file=secured.basic_auth_file)

    assert api.find(MATCHERS) == []
    assert api.create(MATCHERS, datetime.now(UTC), datetime.now(UTC) + timedelta(minutes=5), "behind TLS")
    assert len(api.find(MATCHERS)) == 1


def test_without_credentials_or_with_a_wrong_password_alertmanager_answers_401(
    secured: SecuredAlertmanager, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text(f"{USER}:not-the-password\n")
    for access in ({"ca_file": secured.ca}, {"ca_file": secured.ca, "basic_auth_file": wrong}):
        with pytest.raises(NotifyError) as caught:
            silences_api(secured, **access).find(MATCHERS)
        assert caught.value.code == "401" and caught.value.target == "alertmanager"


def test_an_unreadable_credentials_file_is_an_error_and_nothing_is_sent(secured: SecuredAlertmanager) -> None:
    access = HttpAccess(ca_file=secured.ca, basic_auth_file=secured.basic_auth_file.with_name("gone"))
    assert access.problems() == [f"the Alertmanager basic-auth file {secured.basic_auth_file.with_name('gone')} "
                                 "is not a readable file"]  # fmt: skip
    with pytest.raises(NotifyError) as caught:
        AlertmanagerSilences(secured.url, attempts=1, access=access).find(MATCHERS)
    assert caught.value.code == "credentials-unreadable"


def test_a_wrong_password_is_recorded_on_the_repair_and_counted(
    secured: SecuredAlertmanager, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": REPAIR, "labels": {"repairbot.io/node": NODE}},
            "spec": {"nodeName": NODE, "source": "agent"}}  # fmt: skip
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    at = format_time(datetime.now(UTC))
    history = [{"step": "cordon", "outcome": "done", "message": "cordoned", "at": at},
               {"step": "start-drain", "outcome": "started", "message": "draining 3 pods", "at": at}]  # fmt: skip
    status = {"phase": "Draining", "reason": "xid-79", "history": history}
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, REPAIR, {"status": status})
    wrong = tmp_path / "wrong"
    wrong.write_text(f"{USER}:not-the-password\n")
    metrics = OperatorMetrics()

    def listing() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        return items

    api = silences_api(secured, ca_file=secured.ca, basic_auth_file=wrong)
    keeper = SilenceKeeper(kube_api, listing, api, POLICY, metrics=metrics, clock=lambda: datetime.now(UTC))

    assert keeper.keep_all() == 0

    obj = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, REPAIR)
    silenced = next(c for c in obj["status"]["conditions"] if c["type"] == CONDITION_SILENCED)
    assert silenced["reason"] == "AlertmanagerError" and "401" in silenced["message"]
    counted = {s.labels["code"]: s.value for f in metrics.registry.collect() for s in f.samples
               if s.name == "repairbot_notification_errors_total" and s.labels.get("target") == "alertmanager"}
    assert counted == {"401": 1.0}
    assert httpx.get(f"{secured.url}/api/v2/silences", verify=ssl.create_default_context(cafile=secured.ca),
                     auth=(USER, PASSWORD)).json() == []  # fmt: skip


def test_an_operator_named_an_unreadable_alertmanager_credentials_file_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("alertmanager:\n  url: https://alertmanager.monitoring:9093\n")
    options = OperatorOptions(policy_path=policy,
                              alertmanager=HttpAccess(ca_file=tmp_path / "ca.crt", token_file=tmp_path / "token"))

    assert run_operator(options) == 2
    out = capsys.readouterr().out
    assert "cannot reach Alertmanager as configured (--alertmanager-*-file)" in out
    assert f"the Alertmanager CA bundle {tmp_path / 'ca.crt'} is not a readable file" in out
    assert f"the Alertmanager token file {tmp_path / 'token'} is not a readable file" in out


def test_one_alertmanager_credential_at_most(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        HttpAccess(token_file=tmp_path / "t", basic_auth_file=tmp_path / "b")
