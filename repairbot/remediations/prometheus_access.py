"""How the operator reaches a Prometheus that is not an open http endpoint: TLS trust and credentials.

A real cluster's Prometheus sits behind TLS (often a company CA) and an auth
proxy (bearer token or basic auth). Certificates are always verified: against
``ca_file`` when given, else the system's trust store (``REQUESTS_CA_BUNDLE``
works too, and so do ``HTTPS_PROXY``/``NO_PROXY``: the session trusts the
environment). Credentials come from files (a mounted Secret), never from the
policy file, and are read on every request, so a rotated token is used as soon
as the kubelet rewrites the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.auth import AuthBase, HTTPBasicAuth
from requests.exceptions import RequestException


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
        if self.token_file is not None and self.basic_auth_file is not None:
            raise ValueError("Prometheus credentials: a bearer token file or a basic-auth file, not both")

    def problems(self) -> list[str]:
        """Files named but not readable now: the operator refuses to start on them rather than fail every query."""
        found = []
        for what, path in (("CA bundle", self.ca_file), ("token file", self.token_file),
                           ("basic-auth file", self.basic_auth_file)):  # fmt: skip
            if path is not None and not _readable(path):
                found.append(f"the Prometheus {what} {path} is not a readable file")
        basic = self.basic_auth_file
        if basic is not None and _readable(basic) and ":" not in basic.read_text(encoding="utf-8"):
            found.append(f"the Prometheus basic-auth file {basic} holds no user:password")
        return found

    def session(self) -> requests.Session:
        """A requests session that verifies TLS (against ``ca_file`` when given) and sends the credentials."""
        session = requests.Session()
        session.verify = str(self.ca_file) if self.ca_file is not None else True
        if self.token_file is not None:
            session.auth = _BearerFromFile(self.token_file)
        elif self.basic_auth_file is not None:
            session.auth = _BasicFromFile(self.basic_auth_file)
        return session


def _readable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


def _read(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise CredentialsUnreadable(f"cannot read the Prometheus {what} {path}: {error.strerror or error}") from error
    if not text:
        raise CredentialsUnreadable(f"the Prometheus {what} {path} is empty")
    return text


class _BearerFromFile(AuthBase):
    """``Authorization: Bearer <file content>``, the file read on every request (tokens rotate)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {_read(self.path, 'token file')}"
        return request


class _BasicFromFile(AuthBase):
    """Basic auth from a ``user:password`` file, read on every request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        user, sep, password = _read(self.path, "basic-auth file").partition(":")
        if not sep:
            raise CredentialsUnreadable(f"the Prometheus basic-auth file {self.path} holds no user:password")
        return HTTPBasicAuth(user, password)(request)


__all__ = ["CredentialsUnreadable", "PrometheusAccess"]
