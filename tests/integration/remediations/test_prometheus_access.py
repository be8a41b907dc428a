"""The quiet-period query against a Prometheus behind TLS and auth, as real clusters run it.

The real ``prometheus`` binary serves TLS with a self-signed certificate and asks for basic auth through its
own ``--web.config.file``: verification is on by default and refuses it until its CA is given, and the
credentials come from files. Prometheus itself checks no bearer tokens (an auth proxy in front of it
does), so the bearer token is proven against a small server that requires one, as such a proxy would.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp import web
from child_servers import ChildServers, binary_or_skip, self_signed_certificate, start_prometheus

from repairbot.operator.main import OperatorOptions, run_operator
from repairbot.remediations.prometheus_access import PrometheusAccess
from repairbot.remediations.validation import QuietPeriodCheck

QUERY = "sum(vector(0))"
WINDOW = timedelta(minutes=1)
USER, PASSWORD = "repairbot", "quiet-period-reader"


@dataclass(frozen=True)
class SecuredPrometheus:
    url: str
    ca: Path
    other_ca: Path
    basic_auth_file: Path


@pytest.fixture
def secured_prometheus(tmp_path: Path) -> Iterator[SecuredPrometheus]:
    """The real Prometheus on https with a self-signed certificate and basic auth (bcrypt, as it requires)."""
    binary_or_skip("prometheus")
    cert, key = self_signed_certificate(tmp_path, "prometheus")
    other_ca, _ = self_signed_certificate(tmp_path, "someone-else")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = (
        f"tls_server_config: {{cert_file: {cert}, key_file: {key}}}\n"
        f"basic_auth_users: {{{USER}: '{hashed}'}}\n"
    )
    config = "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs: []\n"
    credentials = tmp_path / "basic-auth"
    credentials.write_text(f"{USER}:{PASSWORD}\n")
    with ChildServers() as children:
        trusted = ssl.create_default_context(cafile=cert)
        ready_with = {"verify": trusted, "auth": (USER, PASSWORD)}
        url = start_prometheus(children, tmp_path / "prometheus", config, web_config=web_config, ready_with=ready_with)
        yield SecuredPrometheus(url, cert, other_ca, credentials)


@pytest.mark.slow
def test_verification_is_on_by_default_and_refuses_a_self_signed_prometheus(
    secured_prometheus: SecuredPrometheus,
) -> None:
    prometheus = secured_prometheus
    with_credentials = PrometheusAccess(basic_auth_file=prometheus.basic_auth_file)
    for access in (None, with_credentials, PrometheusAccess(ca_file=prometheus.other_ca,
                                                            basic_auth_file=prometheus.basic_auth_file)):  # fmt: skip
        verdict = QuietPeriodCheck(prometheus.url, QUERY, access=access).evaluate("gpu-node-001", WINDOW)
        assert verdict.quiet is None, "an unverified server's answer is never believed"
        assert verdict.reason.startswith(f"Prometheus at {prometheus.url} could not answer the quiet-period query")
        assert "CERTIFICATE_VERIFY_FAILED" in verdict.reason or "certificate verify failed" in verdict.reason


@pytest.mark.slow
def test_given_its_ca_and_basic_auth_the_query_is_answered(secured_prometheus: SecuredPrometheus) -> None:
    prometheus = secured_prometheus
    access = PrometheusAccess(ca_file=prometheus.ca, basic_auth_file=prometheus.basic_auth_file)
    verdict = QuietPeriodCheck(prometheus.url, QUERY, access=access).evaluate("gpu-node-001", WINDOW)
    assert verdict.quiet is True, verdict.reason
    assert verdict.errors == 0


@pytest.mark.slow
def test_prometheus_refuses_the_query_without_credentials_or_with_wrong_ones(
    secured_prometheus: SecuredPrometheus, tmp_path: Path
) -> None:
    prometheus = secured_prometheus
    wrong = tmp_path / "wrong-basic-auth"
    wrong.write_text(f"{USER}:not-the-password\n")
    for access in (PrometheusAccess(ca_file=prometheus.ca), PrometheusAccess(ca_file=prometheus.ca,
                                                                             basic_auth_file=wrong)):  # fmt: skip
        verdict = QuietPeriodCheck(prometheus.url, QUERY, access=access).evaluate("gpu-node-001", WINDOW)
        assert verdict.quiet is None
        assert "401" in verdict.reason, verdict.reason


# --------------------------------------------------------------------------- a bearer token (an auth proxy)


@dataclass
class TokenProxy:
    """Answers /api/v1/query with an empty vector only to ``Authorization: Bearer <token>``, as an auth proxy."""

    token: str
    url: str = ""
    seen: list[str | None] | None = None


@pytest.fixture
async def token_proxy() -> AsyncIterator[TokenProxy]:
    proxy = TokenProxy(token="first-token", seen=[])

    async def query(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization")
        assert proxy.seen is not None
        proxy.seen.append(header)
        if header != f"Bearer {proxy.token}":
            return web.Response(status=401, text="Unauthorized")
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []}})

    app = web.Application()
    app.add_routes([web.get("/api/v1/query", query)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:
        await runner.cleanup()


async def test_the_bearer_token_is_sent_and_reread_after_rotation(token_proxy: TokenProxy, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    check = QuietPeriodCheck(token_proxy.url, QUERY, access=PrometheusAccess(token_file=token_file))

    first = await asyncio.to_thread(check.evaluate, "gpu-node-001", WINDOW)
    token_proxy.token = "rotated-token"  # the proxy accepts only the new token now ...
    token_file.write_text("rotated-token\n")  # ... and the kubelet has rewritten the mounted Secret
    second = await asyncio.to_thread(check.evaluate, "gpu-node-001", WINDOW)

    assert first.quiet is True and second.quiet is True, (first.reason, second.reason)
    assert token_proxy.seen == ["Bearer first-token", "Bearer rotated-token"]


async def test_without_the_token_the_proxy_refuses_and_the_verdict_says_so(
    token_proxy: TokenProxy, tmp_path: Path
) -> None:
    plain = await asyncio.to_thread(QuietPeriodCheck(token_proxy.url, QUERY).evaluate, "gpu-node-001", WINDOW)
    assert plain.quiet is None and "401" in plain.reason
    missing = QuietPeriodCheck(token_proxy.url, QUERY, access=PrometheusAccess(token_file=tmp_path / "absent"))
    verdict = await asyncio.to_thread(missing.evaluate, "gpu-node-001", WINDOW)
    assert verdict.quiet is None
    assert f"cannot read the Prometheus token file {tmp_path / 'absent'}" in verdict.reason
    assert token_proxy.seen == [None], "nothing is sent without the token"


# --------------------------------------------------------------------------- the operator's start


def test_the_operator_refuses_to_start_on_credentials_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("validation:\n  prometheusUrl: https://prometheus.example.com\n")
    options = OperatorOptions(
        policy_path=policy, prometheus=PrometheusAccess(ca_file=tmp_path / "ca.crt", token_file=tmp_path / "token")
    )
    assert run_operator(options) == 2
    out = capsys.readouterr().out
    assert f"the Prometheus CA bundle {tmp_path / 'ca.crt'} is not a readable file" in out
    assert f"the Prometheus token file {tmp_path / 'token'} is not a readable file" in out


def test_one_credential_at_most(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        PrometheusAccess(token_file=tmp_path / "t", basic_auth_file=tmp_path / "b")


def test_a_basic_auth_file_without_a_colon_stops_the_start(tmp_path: Path) -> None:
    credentials = tmp_path / "basic-auth"
    credentials.write_text("only-a-password\n")
    assert PrometheusAccess(basic_auth_file=credentials).problems() == [
        f"the Prometheus basic-auth file {credentials} holds no user:password"
    ]
