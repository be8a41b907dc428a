"""How the operator reaches an HTTP API behind TLS and auth (Alertmanager): CA trust and credentials, for httpx.

The same rules as the Prometheus query (:mod:`repairbot.remediations.prometheus_access`):
certificates are always verified, against ``ca_file`` when given, else the
system's trust store (``SSL_CERT_FILE`` works too); there is no switch to
turn verification off. Credentials come from files (a mounted Secret), never
from the policy, and are read on every request, so a rotated token is used as
soon as the kubelet rewrites the file. A file that cannot be read is a
:class:`~repairbot.notify.NotifyError` (``credentials-unreadable``), counted and
recorded like any other failure; the request is not sent.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import httpx

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
        if self.token_file is not None and self.basic_auth_file is not None:
            raise ValueError(f"{self.target} credentials: a bearer token file or a basic-auth file, not both")

    def problems(self) -> list[str]:
        """Files named but not readable now: the operator refuses to start on them rather than fail every call."""
        found = []
        for what, path in (("CA bundle", self.ca_file), ("token file", self.token_file),
                           ("basic-auth file", self.basic_auth_file)):  # fmt: skip
            if path is not None and not _readable(path):
                found.append(f"the {self.target} {what} {path} is not a readable file")
        basic = self.basic_auth_file
        if basic is not None and _readable(basic) and ":" not in basic.read_text(encoding="utf-8"):
            found.append(f"the {self.target} basic-auth file {basic} holds no user:password")
        if self.ca_file is not None and _readable(self.ca_file):
            try:
                ssl.create_default_context(cafile=str(self.ca_file))
            except ssl.SSLError as error:
                found.append(f"the {self.target} CA bundle {self.ca_file} holds no usable certificate ({error})")
        return found

    def verify(self) -> ssl.SSLContext | bool:
        """httpx's ``verify``: a context trusting ``ca_file`` only, else True (the system's store)."""
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file is not None else True

    def auth(self, target: str) -> httpx.Auth | None:
        """httpx's ``auth``, reading the credentials file on every request; None when none is configured."""
        if self.token_file is not None:
            return _FromFile(self.token_file, "token file", target, bearer=True)
        if self.basic_auth_file is not None:
            return _FromFile(self.basic_auth_file, "basic-auth file", target, bearer=False)
        return None


def _readable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


class _FromFile(httpx.Auth):
    """``Authorization`` from a file read per request: ``Bearer <token>`` or basic ``user:password``."""

    def __init__(self, path: Path, what: str, target: str, *, bearer: bool) -> None:
        self.path, self.what, self.target, self.bearer = path, what, target, bearer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        text = self._read()
        if self.bearer:
            request.headers["Authorization"] = f"Bearer {text}"
            yield request
            return
        user, sep, password = text.partition(":")
        if not sep:
            raise NotifyError(self.target, "authenticate", UNREADABLE,
                              f"the {self.what} {self.path} holds no user:password")  # fmt: skip
        yield from httpx.BasicAuth(user, password).auth_flow(request)

    def _read(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError as error:
            why = f"cannot read the {self.what} {self.path}: {error.strerror or error}"
            raise NotifyError(self.target, "authenticate", UNREADABLE, why) from error
        if not text:
            raise NotifyError(self.target, "authenticate", UNREADABLE, f"the {self.what} {self.path} is empty")
        return text


__all__ = ["HttpAccess"]
