"""Bearer, basic and Grafana HMAC checks; start-up refuses a webhook without authentication."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from repairbot.webhook.auth import AuthConfigError, AuthError, WebhookAuth, sign

BODY = b'{"alerts":[]}'
SECRET = b"s3cret"
NOW = 1_800_000_000.0


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer() -> None:
    auth = WebhookAuth(bearer_token="tok")
    auth.check({"Authorization": "Bearer tok"}, BODY)
    for header, reason in [({}, "missing Authorization"), ({"Authorization": "Bearer nope"}, "does not match"),
                           ({"Authorization": "Token tok"}, "unsupported")]:  # fmt: skip
        with pytest.raises(AuthError, match=reason):
            auth.check(header, BODY)


def test_basic() -> None:
    auth = WebhookAuth(basic=("grafana", "pw"))
    auth.check({"Authorization": basic("grafana", "pw")}, BODY)
    with pytest.raises(AuthError, match="do not match"):
        auth.check({"Authorization": basic("grafana", "PW")}, BODY)
    with pytest.raises(AuthError, match="base64"):
        auth.check({"Authorization": "Basic !!!"}, BODY)


def test_hmac_good_bad_missing() -> None:
    auth = WebhookAuth(hmac_secret=SECRET)
    auth.check({"X-Grafana-Alerting-Signature": sign(SECRET, BODY)}, BODY)
    with pytest.raises(AuthError, match="does not match the body"):
        auth.check({"X-Grafana-Alerting-Signature": sign(SECRET, BODY + b" ")}, BODY)
    with pytest.raises(AuthError, match="does not match the body"):
        auth.check({"X-Grafana-Alerting-Signature": sign(b"other", BODY)}, BODY)
    with pytest.raises(AuthError, match="missing X-Grafana-Alerting-Signature"):
        auth.check({}, BODY)


def test_hmac_with_timestamp_good_stale_missing() -> None:
    auth = WebhookAuth(hmac_secret=SECRET, timestamp_header="X-Grafana-Alerting-Signature-Timestamp")
    stamp = str(int(NOW))
    good = {"X-Grafana-Alerting-Signature": sign(SECRET, stamp.encode() + b":" + BODY),
            "X-Grafana-Alerting-Signature-Timestamp": stamp}  # fmt: skip
    auth.check(good, BODY, now=NOW + 299)
    with pytest.raises(AuthError, match="stale or replayed"):
        auth.check(good, BODY, now=NOW + 301)
    with pytest.raises(AuthError, match="stale or replayed"):
        auth.check(good, BODY, now=NOW - 301)
    with pytest.raises(AuthError, match="malformed"):
        auth.check({"X-Grafana-Alerting-Signature": good["X-Grafana-Alerting-Signature"]}, BODY, now=NOW)
    body_only = {**good, "X-Grafana-Alerting-Signature": sign(SECRET, BODY)}
    with pytest.raises(AuthError, match="does not match"):
        auth.check(body_only, BODY, now=NOW)


def test_every_configured_check_must_pass() -> None:
    auth = WebhookAuth(bearer_token="tok", hmac_secret=SECRET)
    with pytest.raises(AuthError, match="Signature"):
        auth.check({"Authorization": "Bearer tok"}, BODY)
    with pytest.raises(AuthError, match="Authorization"):
        auth.check({"X-Grafana-Alerting-Signature": sign(SECRET, BODY)}, BODY)
    # Alertmanager cannot sign: the bearer token alone guards its endpoint
    auth.check({"Authorization": "Bearer tok"}, BODY, hmac_allowed=False)


def test_hmac_only_refuses_the_alertmanager_endpoint() -> None:
    auth = WebhookAuth(hmac_secret=SECRET)
    with pytest.raises(AuthError, match="needs bearer or basic"):
        auth.check({"X-Grafana-Alerting-Signature": sign(SECRET, BODY)}, BODY, hmac_allowed=False)


def test_no_auth_refuses_to_start_unless_insecure() -> None:
    with pytest.raises(AuthConfigError, match="--insecure-no-auth"):
        WebhookAuth.from_env_and_files(env={})
    insecure = WebhookAuth.from_env_and_files(env={}, insecure_no_auth=True)
    insecure.check({}, BODY)


def test_secrets_from_files_and_env(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-file\n")
    pair = tmp_path / "basic"
    pair.write_text("u:p:with-colon")
    auth = WebhookAuth.from_env_and_files(
        env={"REPAIRBOT_WEBHOOK_TOKEN": "from-env", "REPAIRBOT_WEBHOOK_HMAC_SECRET": "h"}, token_file=token,
        basic_auth_file=pair,
    )  # fmt: skip
    assert (auth.bearer_token, auth.basic, auth.hmac_secret) == ("from-file", ("u", "p:with-colon"), b"h")
    env_only = WebhookAuth.from_env_and_files(
        env={"REPAIRBOT_WEBHOOK_USERNAME": "a", "REPAIRBOT_WEBHOOK_PASSWORD": "b"}
    )
    assert env_only.basic == ("a", "b")


@pytest.mark.parametrize(
    ("content", "reason"), [("", "is empty"), ("nocolon", "username:password"), (None, "cannot read")]
)
def test_bad_secret_files(tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "basic"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AuthConfigError, match=reason):
        WebhookAuth.from_env_and_files(env={}, basic_auth_file=path)


def test_half_basic_env_is_an_error() -> None:
    with pytest.raises(AuthConfigError, match="both"):
        WebhookAuth.from_env_and_files(env={"REPAIRBOT_WEBHOOK_USERNAME": "a"})
