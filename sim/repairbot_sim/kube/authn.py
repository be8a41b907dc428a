"""Bearer-token authentication, as kube-apiserver's token authenticators do it.

* ``Authorization: Bearer <token>`` with a known token → that token's user,
  plus ``system:authenticated``;
* a bearer token nobody issued → 401 Unauthorized, even though anonymous
  requests are allowed: a bad credential is never downgraded to anonymous;
* no bearer token at all → ``system:anonymous`` in ``system:unauthenticated``
  (``--anonymous-auth=true``, the default), and RBAC decides what that may do
  (the bootstrap policy lets it read ``/version`` and the health probes only).

Tokens are issued in process by whoever owns the server (the sandbox: one per
ServiceAccount, one cluster-admin token for humans).
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.identity import ANONYMOUS, UserInfo

__all__ = ["MAX_TOKENS", "TokenAuthenticator", "unauthorized"]

MAX_TOKENS = 50_000
"""Issued tokens the table holds; a sandbox needs one per component and node (20,000 nodes at scale)."""
AUTHENTICATED = "system:authenticated"


def unauthorized() -> ApiError:
    """kube-apiserver's 401: ``responsewriters.Unauthorized`` writes exactly this Status."""
    return ApiError(401, "Unauthorized", "Unauthorized")


class TokenAuthenticator:
    """A static token table (``--token-auth-file`` in spirit) the server's owner fills."""

    def __init__(self) -> None:
        self._users: dict[str, UserInfo] = {}

    def issue(self, user: UserInfo, token: str | None = None) -> str:
        """A new bearer token that authenticates as ``user``."""
        if len(self._users) >= MAX_TOKENS:
            raise ValueError(f"the token table is full ({MAX_TOKENS} tokens)")
        token = token or secrets.token_urlsafe(24)
        if token in self._users:
            raise ValueError("that token is already issued")
        if AUTHENTICATED not in user.groups:
            user = replace(user, groups=(*user.groups, AUTHENTICATED))
        self._users[token] = user
        return token

    def revoke(self, token: str) -> None:
        self._users.pop(token, None)

    def authenticate(self, authorization: str | None) -> UserInfo:
        """The user an ``Authorization`` header proves; :class:`ApiError` 401 for an unknown token."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return ANONYMOUS
        user = self._users.get(token)
        if user is None:
            raise unauthorized()
        return user
