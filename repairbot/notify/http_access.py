"""How the operator reaches an HTTP API behind TLS and auth (Alertmanager): CA trust and credentials, for httpx.

The same rules as the Prometheus query (:mod:`repairbot.remediations.prometheus_access`; both follow
:mod:`repairbot.http_credentials`):
certificates are always verified, against ``ca_file`` when given, else the
system's trust store (``SSL_CERT_FILE`` works too); there is no switch to
turn verification off. Credentials come from files (a mounted Secret), never
from the policy, and are read on every request, so a rotated token is used as
soon as the kubelet rewrites the file. A file that cannot be read is a
:class:`~repairbot.notify.NotifyError` (``credentials-unreadable``), counted and
recorded like any other failure; the request is not sent.
"""

from __future__ import annotations

import ssl
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from repairbot.http_credentials import (
    BASIC_AUTH_FILE,
    CA_BUNDLE,
    TOKEN_FILE,
    UnreadableCredentials,
    file_problems,
    is_readable_file,
    read_credentials_file,
    read_user_and_password,
    refuse_two_credentials,
)
from repairbot.notify.errors import NotifyError

UNREADABLE = "credentials-unreadable"


@dataclass(frozen=True, slots=True)
class HttpAccess:
    """``ca_file``: a CA bundle the server must chain to; ``token_file``: a bearer token; ``basic_auth_file``:
    ``user:password``. At most one of the two credentials: both would claim the Authorization header.
    ``target`` names the service in errors and start-up problems (``Alertmanager``)."""

    target: str = "Alertmanager"
    ca_file: Path | None = None
    token_file: Path | None = None
    basic_auth_file: Path | None = None

    def __post_init__(self) -> None:
        refuse_two_credentials(self.target, self.token_file, self.basic_auth_file)

    def problems(self) -> list[str]:
        """Files named but not usable now (:func:`~repairbot.http_credentials.file_problems`), and a CA bundle
        that holds no certificate: ssl would refuse it on every call, so the operator refuses to start."""
        found = file_problems(self.target, ca_file=self.ca_file, token_file=self.token_file,
                              basic_auth_file=self.basic_auth_file)  # fmt: skip
        if self.ca_file is not None and is_readable_file(self.ca_file):
            try:
                ssl.create_default_context(cafile=str(self.ca_file))
            except ssl.SSLError as error:
                found.append(f"the {self.target} {CA_BUNDLE} {self.ca_file} holds no usable certificate ({error})")
        return found

    def verify(self) -> ssl.SSLContext | bool:
        """httpx's ``verify``: a context trusting ``ca_file`` only, else True (the system's store)."""
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file is not None else True

    def auth(self, target: str) -> httpx.Auth | None:
        """httpx's ``auth``, reading the credentials file on every request; None when none is configured."""
        if self.token_file is not None:
            return _FromFile(self.token_file, TOKEN_FILE, target, bearer=True)
        if self.basic_auth_file is not None:
            return _FromFile(self.basic_auth_file, BASIC_AUTH_FILE, target, bearer=False)
        return None


class _FromFile(httpx.Auth):
    """``Authorization`` from a file read per request: ``Bearer <token>`` or basic ``user:password``."""

    def __init__(self, path: Path, what: str, target: str, *, bearer: bool) -> None:
        self.path, self.what, self.target, self.bearer = path, what, target, bearer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.bearer:
            with self._unreadable_is_a_notify_error():
                token = read_credentials_file(self.path, self.what)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
            return
        with self._unreadable_is_a_notify_error():
            user, password = read_user_and_password(self.path, self.what)
        yield from httpx.BasicAuth(user, password).auth_flow(request)

    @contextmanager
    def _unreadable_is_a_notify_error(self) -> Iterator[None]:
        """A file that cannot be used is a delivery failure like any other: counted, recorded, not sent."""
        try:
            yield
        except UnreadableCredentials as error:
            raise NotifyError(self.target, "authenticate", UNREADABLE, str(error)) from error


__all__ = ["HttpAccess"]
