"""Connect to the Kubernetes API the way every component does: kubeconfig or in-cluster."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

# Status codes worth another try: conflicts are re-read and re-applied by the
# caller; throttling and server hiccups pass with time.
RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})

T = TypeVar("T")


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient from ``kubeconfig`` (or ``$KUBECONFIG``), else the in-cluster service account."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        return config.new_client_from_config(config_file=path)
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def is_too_large(error: BaseException) -> bool:
    """A write the API server refused for its size: no retry of the same body can succeed.

    A body over the API server's limit is 413; an object over etcd's limit
    comes back as a 500 carrying etcd's own words (the API server does not
    map that error, kubernetes/kubernetes#112152).
    """
    if not isinstance(error, ApiException):
        return False
    if error.status == 413:
        return True
    return error.status == 500 and "request is too large" in _body_text(error)


def _body_text(error: ApiException) -> str:
    """The response body as text (the client hands bytes or str, or nothing)."""
    return error.body.decode("utf-8", "replace") if isinstance(error.body, bytes) else str(error.body or "")


def status_body(body: str | bytes | None) -> dict[str, Any]:
    """An error response's ``kind: Status`` as a dict; {} when the body is not one."""
    try:
        status = json.loads(body or b"{}")
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}


def is_retryable(error: BaseException) -> bool:
    """API errors that another attempt may fix, and dropped connections (never a refusal for size)."""
    if isinstance(error, ApiException):
        return error.status in RETRYABLE_STATUS and not is_too_large(error)
    return isinstance(error, (ConnectionError, TimeoutError, OSError))


def api_retrying(
    *, attempts: int = 6, max_wait: float = 2.0, retry: Callable[[BaseException], bool] = is_retryable
) -> Retrying:
    """The retry policy for API writes: bounded, jittered, re-raising the last error.

    The bound matters: an error that outlives it is recorded (on the GPURepair,
    in the agent's health) rather than retried forever in silence. ``retry``
    narrows what is retried (a fenced write must not retry its 409).
    """
    backoff = wait_exponential_jitter(multiplier=0.05, max=max_wait, jitter=0.05)

    def wait(state: RetryCallState) -> float:
        """The server's ``Retry-After`` when it throttled us (429, capped), else our own jittered backoff."""
        error = state.outcome.exception() if state.outcome is not None else None
        after = retry_after(error) if error is not None else None
        return after if after is not None else backoff(state)

    return Retrying(retry=retry_if_exception(retry), stop=stop_after_attempt(attempts), wait=wait, reraise=True)


RETRY_AFTER_MAX = 60.0
"""The longest a 429's ``Retry-After`` is waited for: a server asking for more is asked again after this."""


def retry_after(error: BaseException) -> float | None:
    """Seconds a 429 (or 503) asks us to wait (``Retry-After``, capped at :data:`RETRY_AFTER_MAX`); None if none.

    API Priority and Fairness answers a flooded priority level with 429 and ``Retry-After``; honouring it
    instead of our own 50 ms backoff is what keeps a burst of repairs from making the flood worse.
    """
    if not isinstance(error, ApiException) or error.status not in (429, 503):
        return None
    value = (error.headers or {}).get("Retry-After") if hasattr(error, "headers") else None
    try:
        seconds = float(str(value).strip()) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from an API server; our own backoff applies
    if seconds is None or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_MAX)


def retried(
    call: Callable[[], T],
    *,
    attempts: int = 6,
    max_wait: float = 2.0,
    retry: Callable[[BaseException], bool] = is_retryable,
) -> T:
    """``call()`` under :func:`api_retrying`: its value, or the last error once the bound is spent.

    One place for the loop every API read-modify-write needs: ``call`` does the
    whole read, decide and write, so a 409 re-reads before it writes again. The
    attempts are bounded and the last error re-raised so that the caller
    records it (on the GPURepair, in the agent's health) rather than retrying
    forever in silence; an error ``retry`` rejects (a fenced write's 409, a
    refusal for size) is raised at once.
    """
    return api_retrying(attempts=attempts, max_wait=max_wait, retry=retry)(call)


API_ERROR_MAX = 600
"""Characters of an API server's Status message kept in a description: enough for RBAC's who, what and where."""


def describe_api_error(error: ApiException) -> str:
    """``403 Forbidden: <the Status message>``: what the API server said, in its words, bounded.

    ``str(ApiException)`` carries every response header and the raw body; a
    GPURepair's condition or history line needs only the code, the reason and
    the server's one sentence (for an RBAC denial: who may not do what, where).
    """
    body = _body_text(error)
    status = status_body(body)
    reason = str(status.get("reason") or error.reason or "").strip()
    message = str(status.get("message") or "").strip() or body.strip()
    if len(message) > API_ERROR_MAX:
        message = message[: API_ERROR_MAX - 1] + "…"
    head = f"{error.status} {reason}".strip()
    return f"{head}: {message}" if message else head


def describe_error(error: BaseException) -> str:
    """One line for a GPURepair: an API error as :func:`describe_api_error`, anything else as ``Type: text``."""
    if isinstance(error, ApiException):
        return f"API server answered {describe_api_error(error)}"
    return f"{type(error).__name__}: {error}"


def as_object(response: object) -> dict[str, Any]:
    """CustomObjectsApi answers are plain dicts typed as ``object``: say so once, here."""
    return cast(dict[str, Any], response)


def raw_call(method: Callable[..., object], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call a typed client method but get the API's own JSON (camelCase, string times).

    RepairBot compares and writes back what it reads; the client's model
    objects would turn names to snake_case and times to datetimes on the way.
    """
    response = method(*args, _preload_content=False, **kwargs)
    data = getattr(response, "data", b"")
    return cast(dict[str, Any], json.loads(data or b"{}"))
