"""``kind: Status`` failures, shaped exactly like kube-apiserver's.

Clients key their behaviour on ``code`` and ``reason`` (the kubernetes client
raises ``ApiException(status=409)``, kubectl drain retries on 429, kopf backs
off on 429/5xx and re-lists on 410), and kubectl prints ``message`` and the
``details.causes`` verbatim, so all of them must match the real server.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "status_body"]


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A failure ``Status`` object."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "code": code,
    }
    if reason:  # metav1.Status omits an empty reason (StatusReasonUnknown), as etcd's errors arrive
        body["reason"] = reason
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    """Raised anywhere below the HTTP layer; rendered as a Status response."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)

    # Constructors for the failures the emulator produces, worded like the real server.

    @classmethod
    def not_found(cls, resource: str, name: str, group: str = "") -> ApiError:
        qualified = f"{resource}.{group}" if group else resource
        return cls(404, "NotFound", f'{qualified} "{name}" not found', _details(name, resource, group))

    @classmethod
    def already_exists(cls, resource: str, name: str, group: str = "") -> ApiError:
        qualified = f"{resource}.{group}" if group else resource
        return cls(409, "AlreadyExists", f'{qualified} "{name}" already exists', _details(name, resource, group))

    @classmethod
    def conflict(cls, resource: str, name: str, group: str = "", why: str = "") -> ApiError:
        qualified = f"{resource}.{group}" if group else resource
        why = why or "the object has been modified; please apply your changes to the latest version and try again"
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
            _details(name, resource, group),
        )

    @classmethod
    def invalid(cls, kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
        qualified = f"{kind}.{group}" if group else kind
        rendered = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
        summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
        details = {"name": name, "kind": kind, "causes": causes}
        if group:
            details["group"] = group
        return cls(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details)

    @classmethod
    def request_entity_too_large(cls, limit: int) -> ApiError:
        """kube-apiserver's answer to a body over ``MaxRequestBodyBytes`` (3 MiB), before anything is decoded."""
        return cls(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")

    @classmethod
    def etcd_request_too_large(cls) -> ApiError:
        """What a write over etcd's ``--max-request-bytes`` (1.5 MiB) gets back through the API server.

        etcd refuses it with gRPC InvalidArgument; kube-apiserver does not map
        that error and answers 500 with etcd's own words and no reason
        (kubernetes/kubernetes#112152, still open). No retry can cure it.
        """
        return cls(500, "", "etcdserver: request is too large")

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def gone(cls, message: str) -> ApiError:
        return cls(410, "Expired", message)

    @classmethod
    def method_not_allowed(
        cls, message: str = "the server does not allow this method on the requested resource"
    ) -> ApiError:
        return cls(405, "MethodNotAllowed", message)

    @classmethod
    def unsupported_media_type(cls, content_type: str) -> ApiError:
        return cls(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
            f'application/strategic-merge-patch+json; got "{content_type}"',
        )


def _details(name: str, resource: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return details
