"""One JSON request to a plain HTTP API (Alertmanager, Grafana), retried through tenacity, failing as NotifyError.

Alertmanager's and Grafana's clients share it: both speak JSON over httpx,
both fail transiently the same way (no connection, 429, 5xx) and permanently
the same way (other 4xx, which no retry changes). A short, bounded retry
absorbs a blink; what is left is a :class:`NotifyError` the caller records on
the GPURepair and tries again on its next pass, never swallowed here.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

from repairbot.notify.errors import NotifyError, retry_after_seconds

MAX_DETAIL = 300
"""Characters of a service's error body kept in the error (and so on the GPURepair)."""


class _Transient(Exception):
    """An answer worth another try (429, 5xx); carries the response for the last error's words."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _retryable(error: BaseException) -> bool:
    return isinstance(error, (httpx.TransportError, _Transient))


class JsonApi:
    """``base_url`` + a path, JSON in and out; ``target`` names the service in errors (``alertmanager``)."""

    def __init__(
        self,
        target: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        attempts: int = 3,
        wait: wait_base | None = None,
        verify: ssl.SSLContext | bool = True,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.target = target
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, headers=dict(headers or {}), timeout=timeout,
                                    verify=verify, auth=auth)  # fmt: skip
        self._attempts = attempts
        self._wait = wait if wait is not None else wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2)

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, operation: str, *, body: Any = None, missing_ok: bool = False) -> Any:
        """The answer's JSON (None for an empty body, or a 404 when ``missing_ok``); NotifyError otherwise."""
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            reraise=True,
        )
        try:
            response: httpx.Response = retrying(self._send, method, path, body)
        except httpx.TransportError as error:
            raise NotifyError(self.target, operation, "connection-error", str(error)[:MAX_DETAIL]) from error
        except _Transient as error:
            raise self._error(operation, error.response, retryable=True) from error
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise self._error(operation, response, retryable=response.status_code == 409)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def _send(self, method: str, path: str, body: Any) -> httpx.Response:
        response = self._client.request(method, path, json=body) if body is not None else self._client.request(
            method, path
        )  # fmt: skip
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(response)
        return response

    def _error(self, operation: str, response: httpx.Response, *, retryable: bool) -> NotifyError:
        detail = response.text.strip().replace("\n", " ")[:MAX_DETAIL]
        return NotifyError(
            self.target,
            operation,
            str(response.status_code),
            detail,
            retryable=retryable,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
