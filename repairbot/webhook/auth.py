"""Who may post alerts: bearer token, basic auth, Grafana's HMAC signature.

An alert webhook can cordon and drain GPU nodes, so an unauthenticated one
is a remote "take my fleet down" button: with nothing configured the
webhook refuses to start unless ``--insecure-no-auth`` says, on purpose,
that this is a development setup.

Two independent checks (REFERENCE §6.3):

* the ``Authorization`` header — bearer token or basic auth (Grafana allows
  one or the other; configured both, either is accepted);
* Grafana's HMAC-SHA256 over the *raw* body, hex in
  ``X-Grafana-Alerting-Signature``; with a timestamp header Grafana signs
  ``"<ts>:" + body``, and a timestamp older or newer than ``max_skew``
  seconds is refused so a captured request cannot be replayed later.

Every configured check must pass. Alertmanager cannot sign, so the
Alertmanager endpoint needs the Authorization check configured. All
comparisons are constant-time. Secrets come from files (Kubernetes Secrets
mounted as volumes) or environment variables, never from the command line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
DEFAULT_MAX_SKEW = 300.0

ENV_TOKEN = "REPAIRBOT_WEBHOOK_TOKEN"
ENV_BASIC_USER = "REPAIRBOT_WEBHOOK_USERNAME"
ENV_BASIC_PASSWORD = "REPAIRBOT_WEBHOOK_PASSWORD"
ENV_HMAC_SECRET = "REPAIRBOT_WEBHOOK_HMAC_SECRET"
ENV_SLACK_SIGNING_SECRET = "REPAIRBOT_SLACK_SIGNING_SECRET"


class AuthError(Exception):
    """A request failed authentication; ``str()`` is safe to return to the caller (it names no secret)."""


class AuthConfigError(ValueError):
    """The webhook's own auth configuration is unusable; it must not start."""


@dataclass(frozen=True, slots=True)
class WebhookAuth:
    """The configured checks. Build with :meth:`from_env_and_files`; check with :meth:`check`."""

    bearer_token: str | None = None
    basic: tuple[str, str] | None = None
    hmac_secret: bytes | None = None
    signature_header: str = DEFAULT_SIGNATURE_HEADER
    timestamp_header: str | None = None
    max_skew: float = DEFAULT_MAX_SKEW
    insecure_no_auth: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.bearer_token or self.basic or self.hmac_secret)

    @property
    def header_auth(self) -> bool:
        return bool(self.bearer_token or self.basic)

    def require_configured(self) -> None:
        """Refuse to serve without authentication unless explicitly insecure (dev only)."""
        if not self.configured and not self.insecure_no_auth:
            raise AuthConfigError(
                "webhook: no authentication configured — anyone who can reach it could cordon and drain "
                f"GPU nodes. Set a bearer token ({ENV_TOKEN} or --token-file), basic auth "
                f"({ENV_BASIC_USER}/{ENV_BASIC_PASSWORD} or --basic-auth-file), or a Grafana HMAC secret "
                f"({ENV_HMAC_SECRET} or --hmac-secret-file); for local development only, --insecure-no-auth."
            )

    @classmethod
    def from_env_and_files(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        token_file: Path | None = None,
        basic_auth_file: Path | None = None,
        hmac_secret_file: Path | None = None,
        signature_header: str = DEFAULT_SIGNATURE_HEADER,
        timestamp_header: str | None = None,
        max_skew: float = DEFAULT_MAX_SKEW,
        insecure_no_auth: bool = False,
    ) -> WebhookAuth:
        """Secrets from files first (``basic_auth_file`` holds ``user:password``), then the environment."""
        env = os.environ if env is None else env
        token = _read_secret(token_file) if token_file else env.get(ENV_TOKEN) or None
        basic: tuple[str, str] | None = None
        if basic_auth_file:
            user, sep, password = _read_secret(basic_auth_file).partition(":")
            if not sep or not user or not password:
                raise AuthConfigError(f"webhook: {basic_auth_file} must hold 'username:password'")
            basic = (user, password)
        elif env.get(ENV_BASIC_USER) or env.get(ENV_BASIC_PASSWORD):
            if not (env.get(ENV_BASIC_USER) and env.get(ENV_BASIC_PASSWORD)):
                raise AuthConfigError(f"webhook: set both {ENV_BASIC_USER} and {ENV_BASIC_PASSWORD}, or neither")
            basic = (env[ENV_BASIC_USER], env[ENV_BASIC_PASSWORD])
        secret_text = _read_secret(hmac_secret_file) if hmac_secret_file else env.get(ENV_HMAC_SECRET) or None
        if max_skew <= 0:
            raise AuthConfigError("webhook: the HMAC timestamp max skew must be positive")
        auth = cls(
            bearer_token=token,
            basic=basic,
            hmac_secret=secret_text.encode() if secret_text else None,
            signature_header=signature_header,
            timestamp_header=timestamp_header or None,
            max_skew=max_skew,
            insecure_no_auth=insecure_no_auth,
        )
        auth.require_configured()
        return auth

    def check(
        self, headers: Mapping[str, str], body: bytes, *, hmac_allowed: bool = True, now: float | None = None
    ) -> None:
        """Raise :class:`AuthError` unless every configured check passes for this request.

        ``hmac_allowed`` is False for the Alertmanager endpoint: a signature
        it can never carry must not be the only thing guarding it.
        """
        if not self.configured:
            if self.insecure_no_auth:
                return
            raise AuthError("webhook has no authentication configured")
        if self.header_auth:
            self._check_authorization(headers.get("Authorization", ""))
        if self.hmac_secret is not None and hmac_allowed:
            self._check_signature(headers, body, time.time() if now is None else now)
        elif not self.header_auth:
            raise AuthError("this endpoint needs bearer or basic auth; only a Grafana HMAC secret is configured")

    def _check_authorization(self, header: str) -> None:
        if not header:
            raise AuthError("missing Authorization header")
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and self.bearer_token:
            if _same(credentials, self.bearer_token):
                return
            raise AuthError("bearer token does not match")
        if scheme.lower() == "basic" and self.basic:
            try:
                user, _, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise AuthError("basic credentials are not valid base64 'user:password'") from None
            # both compared, always: the time taken must not tell which half was wrong
            user_ok = _same(user, self.basic[0])
            password_ok = _same(password, self.basic[1])
            if user_ok and password_ok:
                return
            raise AuthError("basic credentials do not match")
        raise AuthError(f"unsupported Authorization scheme {scheme[:20]!r}")

    def _check_signature(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        assert self.hmac_secret is not None
        signature = headers.get(self.signature_header, "").strip().lower()
        if not signature:
            raise AuthError(f"missing {self.signature_header} header")
        message = body
        if self.timestamp_header:
            stamp = headers.get(self.timestamp_header, "").strip()
            if not stamp.isdigit() or len(stamp) > 12:
                raise AuthError(f"missing or malformed {self.timestamp_header} header")
            if abs(now - int(stamp)) > self.max_skew:
                raise AuthError(f"{self.timestamp_header} is more than {self.max_skew:g}s from now (stale or replayed)")
            message = stamp.encode() + b":" + body
        if not _same(signature, sign(self.hmac_secret, message)):
            raise AuthError(f"{self.signature_header} does not match the body")


def slack_signing_secret(path: Path | None, env: Mapping[str, str] | None = None) -> str | None:
    """The Slack app's signing secret for ``/slack/actions``: from the file, else the environment; None: unset."""
    if path is not None:
        return _read_secret(path)
    return (os.environ if env is None else env).get(ENV_SLACK_SIGNING_SECRET) or None


def sign(secret: bytes, message: bytes) -> str:
    """Grafana's signature: hex HMAC-SHA256 (callers prepend ``"<ts>:"`` when a timestamp is used)."""
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _same(given: str, wanted: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), wanted.encode("utf-8", "surrogatepass"))


def _read_secret(path: Path) -> str:
    """A mounted Secret's value; one trailing newline (an editor's) is not part of it."""
    try:
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise AuthConfigError(f"webhook: cannot read secret file {path}: {error.strerror or error}") from None
    if not text:
        raise AuthConfigError(f"webhook: secret file {path} is empty")
    return text
