"""The OpenAPI 3 document of the webhook, served at ``/openapi.json``.

Written by hand from the same words the parser enforces, so whoever sets up
a Grafana contact point or an Alertmanager receiver can see what is accepted
and what comes back — and a fuzzer (schemathesis) can drive the endpoints.
"""

from __future__ import annotations

from typing import Any

_STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}

_ALERT: dict[str, Any] = {
    "type": "object",
    "required": ["status", "labels"],
    "properties": {
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "labels": {
            **_STRING_MAP,
            "description": "Node from node, kubernetes_node, nodename, Hostname, hostname, then instance's host.",
        },
        "annotations": _STRING_MAP,
        "startsAt": {"type": "string", "format": "date-time"},
        "endsAt": {"type": "string", "format": "date-time"},
        "generatorURL": {"type": "string"},
        "fingerprint": {"type": "string", "description": "Computed from the sorted labels when absent."},
        "silenceURL": {"type": "string"},
        "dashboardURL": {"type": "string"},
        "panelURL": {"type": "string"},
    },
}


def _notification(version: str, title: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": title,
        "required": ["alerts"],
        "properties": {
            "version": {"type": "string", "enum": [version]},
            "receiver": {"type": "string"},
            "status": {"type": "string"},
            "groupKey": {"type": "string"},
            "truncatedAlerts": {"type": "integer"},
            "externalURL": {"type": "string"},
            "groupLabels": _STRING_MAP,
            "commonLabels": _STRING_MAP,
            "commonAnnotations": _STRING_MAP,
            "alerts": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
        },
    }


_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}

_ACCEPTED = {
    "type": "object",
    "required": ["repairs", "ignored"],
    "properties": {
        "repairs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["node", "name", "alert"],
                "properties": {
                    "node": {"type": "string"},
                    "name": {"type": "string", "description": "the GPURepair that holds the finding"},
                    "alert": {"type": "string", "description": "alertname"},
                    "fingerprint": {"type": "string"},
                },
            },
        },
        "ignored": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["fingerprint", "reason"],
                "properties": {
                    "fingerprint": {"type": "string"},
                    "reason": {
                        "type": "string",
                        "enum": ["no-node-label", "unknown-node", "resolved", "node-disabled", "no-action"],
                    },
                },
            },
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(schema: str, summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "responses": {
            "202": {
                "description": "Every alert was acted on or ignored with a reason",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
            },
            "400": _error("Not JSON, or not the documented shape (the reason names the field); nothing applied"),
            "401": _error("Authentication failed"),
            "405": _error("Method not allowed"),
            "413": _error("Body over the configured limit"),
            "503": _error("The Kubernetes API failed; the sender should retry (handling is idempotent)"),
        },
        "security": [{"bearer": []}, {"basic": []}, {"grafanaHmac": []}],
    }


def openapi_document(*, body_limit: int) -> dict[str, Any]:
    """The document; ``body_limit`` is stated so senders know where 413 starts."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "RepairBot alert webhook",
            "version": "1",
            "description": f"Grafana and Alertmanager alerts → GPU node repairs. Bodies up to {body_limit} bytes.",
        },
        "paths": {
            "/webhook/grafana": {
                "post": _operation("GrafanaNotification", "Grafana unified alerting webhook (payload v1)"),
            },
            "/webhook/alertmanager": {
                "post": _operation("AlertmanagerNotification", "Prometheus Alertmanager webhook (version 4)"),
            },
        },
        "components": {
            "schemas": {
                "Alert": _ALERT,
                "GrafanaNotification": _notification("1", "Grafana webhook v1"),
                "AlertmanagerNotification": _notification("4", "Alertmanager webhook v4"),
                "Accepted": _ACCEPTED,
                "Error": _ERROR,
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "grafanaHmac": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Grafana-Alerting-Signature",
                    "description": "hex HMAC-SHA256 of the raw body (or of '<timestamp>:' + body)",
                },
            },
        },
    }
