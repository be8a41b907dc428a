"""The aiohttp application: routes, fault middleware and error rendering.

Every failure leaves as a ``kind: Status`` body with the matching HTTP code,
because that is what clients parse. Fault rules are consulted before routing,
so an injected 500 or 429 looks to the client exactly like a sick server.
Every request is counted by verb, resource and client (the User-Agent's
first word): ``GET /_sim/requests``, ``DELETE /_sim/requests`` to reset, so
a benchmark can say what a repair costs the API server.

Every request outside ``/_sim`` (the test harness's own endpoints) is
authenticated by bearer token and authorized by RBAC before it is routed
(:mod:`~repairbot_sim.kube.authn`, :mod:`~repairbot_sim.kube.rbac`); each
decision is kept for ``GET /_sim/audit``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from repairbot_sim.kube import discovery, openapi
from repairbot_sim.kube.api import KubeApi
from repairbot_sim.kube.attributes import request_attributes
from repairbot_sim.kube.audit import AuditLog
from repairbot_sim.kube.authn import TokenAuthenticator
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.faults import FaultInjector, FaultRule
from repairbot_sim.kube.handlers import USER_KEY, handle_resource, parse_path
from repairbot_sim.kube.pods import PodLifecycle
from repairbot_sim.kube.rbac import Authorizer, forbidden
from repairbot_sim.kube.resources import Registry
from repairbot_sim.kube.store import Store

__all__ = ["SimState", "build_app"]

log = logging.getLogger(__name__)

STATE_KEY: web.AppKey[SimState] = web.AppKey("state")

MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024
"""kube-apiserver's ``MaxRequestBodyBytes``: twice etcd's limit, as JSON shrinks on its way to storage."""


@dataclass
class SimState:
    """Everything the handlers share."""

    store: Store
    registry: Registry
    faults: FaultInjector
    api: KubeApi = field(init=False)
    pods: PodLifecycle = field(init=False)
    bookmark_interval: float = 5.0
    watch_timeout: int = 1800
    server_address: str = "127.0.0.1:0"
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """Requests served by (verb, resource, client): ``GET /_sim/requests``, so benchmarks can count API cost."""
    tokens: TokenAuthenticator = field(default_factory=TokenAuthenticator)
    authorizer: Authorizer = field(init=False)
    audit: AuditLog = field(default_factory=AuditLog)
    """Every authorization decision: ``GET /_sim/audit``."""

    def __post_init__(self) -> None:
        self.api = KubeApi(self.store, self.registry)
        self.pods = PodLifecycle(self.api)
        self.authorizer = Authorizer(self.store)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data), content_type="application/json")


def _error(exc: ApiError) -> web.Response:
    response = _json(exc.body(), exc.code)
    for key, value in exc.headers.items():
        response.headers[key] = value
    return response


@web.middleware
async def _middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if not request.path.startswith("/_sim"):
        verb, resource = request_key(request.method, request.path, request.query.get("watch", ""))
        client_product = (request.headers.get("User-Agent") or "unknown").split(" ", 1)[0][:64]
        state.requests[verb, resource, client_product] += 1
        delay = state.faults.take("delay", request.method, request.path_qs)
        if delay is not None:
            await asyncio.sleep(delay.seconds)
        failure = state.faults.take("fail", request.method, request.path_qs)
        if failure is not None:
            response = _json(failure.status_body(), failure.status)
            if failure.status in (429, 503):
                response.headers["Retry-After"] = str(failure.retry_after)
            return response
    try:
        if not request.path.startswith("/_sim"):
            _authenticate_and_authorize(request, state)
        result: web.StreamResponse = await handler(request)
        return result
    except ApiError as exc:
        return _error(exc)
    except web.HTTPRequestEntityTooLarge:
        return _error(ApiError.request_entity_too_large(MAX_REQUEST_BODY_BYTES))
    except web.HTTPException as exc:
        reason = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status, "InternalError")
        message = "the server could not find the requested resource" if exc.status == 404 else exc.reason
        return _error(ApiError(exc.status, reason, message))
    except Exception as exc:
        log.exception("event=kubeapi_internal_error method=%s path=%s", request.method, request.path)
        return _error(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))


def _authenticate_and_authorize(request: web.Request, state: SimState) -> None:
    """Who asks (bearer token), and may they (RBAC)? Raises 401 or 403; the user rides on the request."""
    user = state.tokens.authenticate(request.headers.get("Authorization"))
    attributes = request_attributes(request.method, request.path, request.query)
    decision = state.authorizer.authorize(user, attributes)
    state.audit.record(user, attributes, decision)
    if not decision.allowed:
        raise forbidden(user, attributes, decision.reason)
    request[USER_KEY] = user


async def _version(request: web.Request) -> web.Response:
    return _json(discovery.version_info())


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _api(request: web.Request) -> web.Response:
    return _json(discovery.api_versions(request.app[STATE_KEY].server_address))


async def _apis(request: web.Request) -> web.Response:
    return _json(discovery.api_group_list(request.app[STATE_KEY].registry))


async def _group(request: web.Request) -> web.Response:
    doc = discovery.api_group(request.app[STATE_KEY].registry, request.match_info["group"])
    if doc is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return _json(doc)


async def _core(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    version, tail = request.match_info["version"], request.match_info.get("tail", "").strip("/")
    if not tail:
        doc = discovery.api_resource_list(state.registry, "", version)
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(doc)
    return await handle_resource(request, state, parse_path("", version, tail))


async def _grouped(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    group, version = request.match_info["group"], request.match_info["version"]
    tail = request.match_info.get("tail", "").strip("/")
    if not tail:
        doc = discovery.api_resource_list(state.registry, group, version)
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(doc)
    return await handle_resource(request, state, parse_path(group, version, tail))


async def _openapi_index(request: web.Request) -> web.Response:
    return _json(openapi.openapi_index(request.app[STATE_KEY].registry))


async def _openapi_document(request: web.Request) -> web.Response:
    parts = request.match_info["tail"].strip("/").split("/")
    group, version = (
        ("", parts[1])
        if parts[0] == "api" and len(parts) == 2
        else (parts[1], parts[2])
        if len(parts) == 3
        else ("", "")
    )
    doc = openapi.group_version_document(request.app[STATE_KEY].registry, group, version) if version else None
    if doc is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return _json(doc)


async def _faults_add(request: web.Request) -> web.Response:
    try:
        rule = request.app[STATE_KEY].faults.add(FaultRule(**await request.json()))
    except (TypeError, ValueError) as exc:
        raise ApiError.bad_request(f"invalid fault rule: {exc}") from exc
    return _json(rule.as_dict(), 201)


async def _faults_clear(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults.clear()
    return _json({"cleared": True})


async def _faults_list(request: web.Request) -> web.Response:
    return _json([rule.as_dict() for rule in request.app[STATE_KEY].faults.rules()])


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_key(method: str, path: str, watch: str = "") -> tuple[str, str]:
    """``(verb, resource)`` the way kube-apiserver's audit log names a request.

    Verbs: get, list, watch, create, update, patch, delete, deletecollection;
    the resource is the plural with its subresource (``pods/eviction``,
    ``gpurepairs/status``); ``nonResource`` for discovery, OpenAPI and probes.
    """
    parts = [p for p in path.split("/") if p]
    core = parts[:1] == ["api"]
    tail = parts[2:] if core else parts[3:] if parts[:1] == ["apis"] else []
    if not tail:
        return method.lower(), "nonResource"
    legacy_watch = tail[0] == "watch"
    watching = legacy_watch or watch.lower() in ("1", "true")
    if legacy_watch:
        tail = tail[1:]
    if len(tail) >= 3 and tail[0] == "namespaces" and not (core and tail[2] in ("status", "finalize")):
        tail = tail[2:]  # a namespaced resource; namespaces/<name>/status keeps its shape
    plural, name, sub = [*tail, "", "", ""][:3]
    resource = f"{plural}/{sub}" if sub else plural or "namespaces"
    if method == "GET":
        verb = "watch" if watching else "get" if name else "list"
    elif method == "DELETE" and not name:
        verb = "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return verb, resource


async def _requests_list(request: web.Request) -> web.Response:
    counts = request.app[STATE_KEY].requests
    rows = [
        {"verb": verb, "resource": resource, "client": client_product, "count": n}
        for (verb, resource, client_product), n in sorted(counts.items())
    ]
    return _json({"total": sum(counts.values()), "requests": rows})


async def _requests_clear(request: web.Request) -> web.Response:
    request.app[STATE_KEY].requests.clear()
    return _json({"cleared": True})


async def _audit_list(request: web.Request) -> web.Response:
    audit = request.app[STATE_KEY].audit
    return _json({"decisions": audit.rows(), "dropped": audit.dropped})


async def _audit_clear(request: web.Request) -> web.Response:
    request.app[STATE_KEY].audit.clear()
    return _json({"cleared": True})


def build_app(state: SimState) -> web.Application:
    """The aiohttp application serving ``state``."""
    # aiohttp refuses a body of client_max_size bytes or more; the API server one of more than its limit.
    app = web.Application(middlewares=[_middleware], client_max_size=MAX_REQUEST_BODY_BYTES + 1)
    app[STATE_KEY] = state
    app.router.add_get("/version", _version)
    for probe in ("/healthz", "/readyz", "/livez"):
        app.router.add_get(probe, _health)
    app.router.add_get("/api", _api)
    app.router.add_get("/api/", _api)
    app.router.add_get("/apis", _apis)
    app.router.add_get("/apis/", _apis)
    app.router.add_get("/openapi/v3", _openapi_index)
    app.router.add_get("/openapi/v3/{tail:.*}", _openapi_document)
    app.router.add_post("/_sim/faults", _faults_add)
    app.router.add_delete("/_sim/faults", _faults_clear)
    app.router.add_get("/_sim/faults", _faults_list)
    app.router.add_get("/_sim/requests", _requests_list)
    app.router.add_delete("/_sim/requests", _requests_clear)
    app.router.add_get("/_sim/audit", _audit_list)
    app.router.add_delete("/_sim/audit", _audit_clear)
    app.router.add_get("/api/{version}", _core)
    app.router.add_route("*", "/api/{version}/{tail:.*}", _core)
    app.router.add_get("/apis/{group}", _group)
    app.router.add_get("/apis/{group}/{version}", _grouped)
    app.router.add_route("*", "/apis/{group}/{version}/{tail:.*}", _grouped)
    return app
