"""The aiohttp application: endpoints, status codes, and the order of checks.

Per request, in this order, each failure answered before the next step:
size (413, from ``Content-Length`` before reading, and while reading for
chunked bodies) → authentication over the raw bytes (401) → JSON and shape
of the *whole* notification (400, the reason names the field) → apply (202).
Nothing is written to the cluster until the whole body has been validated.
A Kubernetes failure while applying is 503 so the sender retries; the retry
is idempotent (see :mod:`repairbot.webhook.handling`).

Every error body is JSON ``{"error": "<reason>"}``, including aiohttp's own
404/405, so a sender's logs say what went wrong.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from repairbot.kube.intake import IntakeTooLarge
from repairbot.webhook.auth import AuthError, WebhookAuth
from repairbot.webhook.handling import AlertHandler
from repairbot.webhook.metrics import CONTENT_TYPE_LATEST, WebhookMetrics
from repairbot.webhook.openapi import openapi_document
from repairbot.webhook.payloads import PayloadError, SenderKind, parse_body
from repairbot.webhook.slack_actions import SLACK_ACTIONS_PATH, ClickError, SlackActions, parse_click, verify

log = logging.getLogger(__name__)

DEFAULT_BODY_LIMIT = 1024 * 1024
GRAFANA_PATH = "/webhook/grafana"
ALERTMANAGER_PATH = "/webhook/alertmanager"

HANDLER_KEY = web.AppKey("handler", AlertHandler)
AUTH_KEY = web.AppKey("auth", WebhookAuth)
METRICS_KEY = web.AppKey("metrics", WebhookMetrics)
LIMIT_KEY = web.AppKey("body_limit", int)
SLACK_KEY = web.AppKey("slack_actions", SlackActions)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


def build_app(
    handler: AlertHandler,
    auth: WebhookAuth,
    *,
    metrics: WebhookMetrics | None = None,
    body_limit: int = DEFAULT_BODY_LIMIT,
    slack: SlackActions | None = None,
) -> web.Application:
    """The webhook application; the caller runs it (``main.start_webhook``) or tests it.

    ``slack``: serve ``POST /slack/actions`` for the Slack buttons (only with a signing secret).
    """
    auth.require_configured()
    app = web.Application(client_max_size=body_limit, middlewares=[_observe])
    app[HANDLER_KEY] = handler
    app[AUTH_KEY] = auth
    app[METRICS_KEY] = metrics or WebhookMetrics()
    app[LIMIT_KEY] = body_limit
    app.router.add_post(GRAFANA_PATH, _grafana)
    app.router.add_put(GRAFANA_PATH, _grafana)  # Grafana's contact point may be set to PUT (REFERENCE §6.2)
    app.router.add_post(ALERTMANAGER_PATH, _alertmanager)
    if slack is not None:
        app[SLACK_KEY] = slack
        app.router.add_post(SLACK_ACTIONS_PATH, _slack_actions)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/openapi.json", _openapi)
    return app


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency and status counts for every request; aiohttp's HTML errors turned into JSON ones."""
    started = time.perf_counter()
    endpoint = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as http_error:
        headers = {"Allow": http_error.headers["Allow"]} if "Allow" in http_error.headers else None
        response = error_response(http_error.status, http_error.reason, headers)
    except Exception:  # a bug must be a clean 500 with a log line, never a dropped connection
        log.exception("webhook request failed path=%s", request.path)
        response = error_response(500, "internal error; see the webhook's log")
    metrics = request.app[METRICS_KEY]
    metrics.requests.labels(endpoint, str(response.status)).inc()
    metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
    return response


async def _grafana(request: web.Request) -> web.Response:
    return await _receive(request, SenderKind.GRAFANA)


async def _alertmanager(request: web.Request) -> web.Response:
    return await _receive(request, SenderKind.ALERTMANAGER)


async def _receive(request: web.Request, kind: SenderKind) -> web.Response:
    app = request.app
    limit = app[LIMIT_KEY]
    if request.content_length is not None and request.content_length > limit:
        return error_response(413, f"body of {request.content_length} bytes is over the limit of {limit}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"body is over the limit of {limit} bytes")
    try:
        app[AUTH_KEY].check(request.headers, raw, hmac_allowed=kind is SenderKind.GRAFANA)
    except AuthError as denied:
        log.warning("webhook request refused source=%s remote=%s reason=%s", kind.value, request.remote, denied)
        return error_response(401, str(denied), {"WWW-Authenticate": 'Bearer realm="repairbot"'})
    try:
        notification = parse_body(raw, kind)
    except PayloadError as bad:
        log.info("webhook payload refused source=%s reason=%s", kind.value, bad)
        return error_response(400, str(bad))
    metrics = app[METRICS_KEY]
    for alert in notification.alerts:
        metrics.received.labels(kind.value, alert.status.value).inc()
    if notification.truncated_alerts:
        metrics.truncated.labels(kind.value).inc(notification.truncated_alerts)
    try:
        outcome = await app[HANDLER_KEY].handle(notification)
    except IntakeTooLarge as error:  # refused for size even shrunk: a retry of this body cannot succeed
        log.warning("webhook alert refused as too large source=%s error=%s", kind.value, error)
        return error_response(413, str(error))
    except (ApiException, OSError, Urllib3Error) as error:
        reason = getattr(error, "reason", None) or str(error)
        log.warning("webhook could not reach the Kubernetes API source=%s error=%s", kind.value, reason)
        return error_response(503, f"Kubernetes API unavailable ({reason}); retry later")
    metrics.accepted.labels(kind.value).inc(len(outcome.repairs))
    for _, reason in outcome.ignored:
        metrics.ignored.labels(kind.value, reason).inc()
    return web.json_response(outcome.to_dict(), status=202)


async def _slack_actions(request: web.Request) -> web.Response:
    """A button click: Slack's signature (401 otherwise), the payload (400), then the action; always 200 after.

    Slack shows the clicker nothing of this answer's body for ``block_actions``:
    what happened goes to them ephemerally on the payload's ``response_url``.
    """
    limit = request.app[LIMIT_KEY]
    if request.content_length is not None and request.content_length > limit:
        return error_response(413, f"body of {request.content_length} bytes is over the limit of {limit}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"body is over the limit of {limit} bytes")
    slack = request.app[SLACK_KEY]
    if not verify(slack.verifier, request.headers, raw):
        log.warning("slack action refused remote=%s reason=bad or stale signature", request.remote)
        return error_response(401, "X-Slack-Signature does not match, or X-Slack-Request-Timestamp is stale")
    try:
        click = parse_click(raw)
    except ClickError as bad:
        return error_response(400, str(bad))
    try:
        said = await slack.handle(click, request.headers.get("X-Slack-Retry-Num"))
    except (ApiException, OSError, Urllib3Error) as error:
        reason = getattr(error, "reason", None) or str(error)
        log.warning("slack action could not reach the Kubernetes API error=%s", reason)
        return error_response(503, f"Kubernetes API unavailable ({reason}); retry later")
    return web.json_response({"text": said})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _openapi(request: web.Request) -> web.Response:
    document: dict[str, Any] = openapi_document(body_limit=request.app[LIMIT_KEY])
    return web.Response(text=json.dumps(document, indent=2), content_type="application/json")
