"""The credentials files an HTTP client of ours sends (Prometheus, Alertmanager): the rules both follow.

The Prometheus query (:mod:`repairbot.remediations.prometheus_access`, with requests) and the Alertmanager
client (:mod:`repairbot.notify.http_access`, with httpx) are building blocks that may not import each
other, yet a user configures both the same way: a CA bundle, and at most one credential — a bearer token
file or a ``user:password`` basic-auth file — from a mounted Secret. The rules live here once so the two
flags families cannot drift apart: the one-credential rule, the start-up check of the files, and the
per-request read (files are read on every request, so a rotated token is used as soon as the kubelet
rewrites the file). Each client turns :class:`UnreadableCredentials` into its own error type.
"""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_FILE = "token file"
BASIC_AUTH_FILE = "basic-auth file"
CA_BUNDLE = "CA bundle"


class UnreadableCredentials(Exception):
    """A credentials file could not be used now; the message says which file and why (the request is not sent)."""


def refuse_two_credentials(target: str, token_file: Path | None, basic_auth_file: Path | None) -> None:
    """A ValueError when both credentials are named: both would claim the Authorization header."""
    if token_file is not None and basic_auth_file is not None:
        raise ValueError(f"{target} credentials: a bearer token file or a basic-auth file, not both")


def file_problems(
    target: str, *, ca_file: Path | None, token_file: Path | None, basic_auth_file: Path | None
) -> list[str]:
    """Files named but not usable now, one line each naming ``target``: the operator refuses to start on them
    rather than fail every request."""
    found = []
    for what, path in ((CA_BUNDLE, ca_file), (TOKEN_FILE, token_file), (BASIC_AUTH_FILE, basic_auth_file)):
        if path is not None and not is_readable_file(path):
            found.append(f"the {target} {what} {path} is not a readable file")
    basic = basic_auth_file
    if basic is not None and is_readable_file(basic) and ":" not in basic.read_text(encoding="utf-8"):
        found.append(f"the {target} {BASIC_AUTH_FILE} {basic} holds no user:password")
    return found


def is_readable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


def read_credentials_file(path: Path, what: str) -> str:
    """The file's content, stripped; ``what`` names the file in the error (``Prometheus token file``)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise UnreadableCredentials(f"cannot read the {what} {path}: {error.strerror or error}") from error
    if not text:
        raise UnreadableCredentials(f"the {what} {path} is empty")
    return text


def read_user_and_password(path: Path, what: str) -> tuple[str, str]:
    """A basic-auth file's ``user:password`` (the password may hold colons), read now."""
    user, sep, password = read_credentials_file(path, what).partition(":")
    if not sep:
        raise UnreadableCredentials(f"the {what} {path} holds no user:password")
    return user, password


__all__ = [
    "BASIC_AUTH_FILE",
    "CA_BUNDLE",
    "TOKEN_FILE",
    "UnreadableCredentials",
    "file_problems",
    "is_readable_file",
    "read_credentials_file",
    "read_user_and_password",
    "refuse_two_credentials",
]
