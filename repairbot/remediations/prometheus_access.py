"""How the operator reaches a Prometheus that is not an open http endpoint: TLS trust and credentials.

A real cluster's Prometheus sits behind TLS (often a company CA) and an auth
proxy (bearer token or basic auth). Certificates are always verified: against
``ca_file`` when given, else the system's trust store (``REQUESTS_CA_BUNDLE``
works too, and so do ``HTTPS_PROXY``/``NO_PROXY``: the session trusts the
environment). Credentials come from files (a mounted Secret), never from the
policy file, and are read on every request, so a rotated token is used as soon
as the kubelet rewrites the file. These rules are shared with the Alertmanager
client: :mod:`repairbot.http_credentials`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import requests
from requests.auth import AuthBase, HTTPBasicAuth
from requests.exceptions import RequestException

from repairbot.http_credentials import (
    BASIC_AUTH_FILE,
    TOKEN_FILE,
    UnreadableCredentials,
    file_problems,
    read_credentials_file,
    read_user_and_password,
    refuse_two_credentials,
)

_TARGET = "Prometheus"


class CredentialsUnreadable(RequestException):
    """A credentials file could not be read: the query is not sent (and says why)."""


@dataclass(frozen=True, slots=True)
class PrometheusAccess:
    """``ca_file``: a CA bundle the server must chain to; ``token_file``: a bearer token; ``basic_auth_file``:
    ``user:password``. At most one of the two credentials: both would claim the Authorization header."""

    ca_file: Path | None = None
    token_file: Path | None = None
    basic_auth_file: Path | None = None

    def __post_init__(self) -> None:
        refuse_two_credentials(_TARGET, self.token_file, self.basic_auth_file)

    def problems(self) -> list[str]:
        """Files named but not usable now: the operator refuses to start on them rather than fail every query."""
        return file_problems(_TARGET, ca_file=self.ca_file, token_file=self.token_file,
                             basic_auth_file=self.basic_auth_file)  # fmt: skip

    def session(self) -> requests.Session:
        """A requests session that verifies TLS (against ``ca_file`` when given) and sends the credentials."""
        session = requests.Session()
        session.verify = str(self.ca_file) if self.ca_file is not None else True
        if self.token_file is not None:
            session.auth = _BearerFromFile(self.token_file)
        elif self.basic_auth_file is not None:
            session.auth = _BasicFromFile(self.basic_auth_file)
        return session


class _BearerFromFile(AuthBase):
    """``Authorization: Bearer <file content>``, the file read on every request (tokens rotate)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        try:
            token = read_credentials_file(self.path, f"{_TARGET} {TOKEN_FILE}")
        except UnreadableCredentials as error:
            raise CredentialsUnreadable(str(error)) from error
        request.headers["Authorization"] = f"Bearer {token}"
        return request


class _BasicFromFile(AuthBase):
    """Basic auth from a ``user:password`` file, read on every request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        try:
            user, password = read_user_and_password(self.path, f"{_TARGET} {BASIC_AUTH_FILE}")
        except UnreadableCredentials as error:
            raise CredentialsUnreadable(str(error)) from error
        return HTTPBasicAuth(user, password)(request)


__all__ = ["CredentialsUnreadable", "PrometheusAccess"]
