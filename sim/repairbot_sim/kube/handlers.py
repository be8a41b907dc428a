"""HTTP handlers for ``/api/v1/…`` and ``/apis/<group>/<version>/…`` resource paths.

Paths are parsed the way kube-apiserver's router does — collection or item,
namespaced or cluster-wide, optional subresource, legacy ``/watch/`` prefix —
and each verb is handed to :class:`~repairbot_sim.kube.api.KubeApi`,
:class:`~repairbot_sim.kube.pods.PodLifecycle` or the watch streamer.
Responses are JSON, Tables when the client asks for ``as=Table``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from repairbot_sim.kube.api import Selector, WriteOptions
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.identity import ANONYMOUS, UserInfo
from repairbot_sim.kube.resources import ResourceInfo
from repairbot_sim.kube.tables import build_table
from repairbot_sim.kube.watch import WatchRequest, serve_watch

if TYPE_CHECKING:
    from repairbot_sim.kube.server import SimState

__all__ = ["USER_KEY", "ResourcePath", "handle_resource", "parse_path"]

USER_KEY: web.RequestKey[UserInfo] = web.RequestKey("user", UserInfo)
"""The authenticated user, set by the server's middleware before any handler runs."""


@dataclass
class ResourcePath:
    """What a resource URL names."""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str = ""
    subresource: str = ""
    legacy_watch: bool = False


def parse_path(group: str, version: str, tail: str) -> ResourcePath:
    """Split ``namespaces/ns/pods/p/eviction`` and friends into their parts."""
    parts = [p for p in tail.split("/") if p]
    legacy_watch = bool(parts) and parts[0] == "watch"
    if legacy_watch:
        parts = parts[1:]
    if not parts:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    namespace = None
    if parts[0] == "namespaces" and len(parts) >= 3 and not (not group and parts[2] in ("status", "finalize")):
        namespace, parts = parts[1], parts[2:]
    if len(parts) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    plural, name, sub = [*parts, "", ""][:3]
    return ResourcePath(group, version, plural, namespace, name, sub, legacy_watch)


def _json(data: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {}
    if warnings:
        headers["Warning"] = ", ".join('299 - "' + w.replace('"', '\\"') + '"' for w in warnings)
    return web.Response(
        status=status, body=json.dumps(data, separators=(",", ":")), content_type="application/json", headers=headers
    )


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def _write_options(request: web.Request, body: Any = None) -> WriteOptions:
    dry_run = "All" in request.query.getall("dryRun", [])
    if isinstance(body, dict) and "All" in (body.get("dryRun") or []):
        dry_run = True
    return WriteOptions(
        dry_run=dry_run,
        field_validation=request.query.get("fieldValidation", "Warn"),
        user=request.get(USER_KEY, ANONYMOUS),
    )


def _wants_table(request: web.Request) -> bool:
    return "as=table" in request.headers.get("Accept", "").lower().replace(" ", "")


def _int_param(request: web.Request, name: str, default: int = 0) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError.bad_request(f"invalid {name}: {raw!r}") from exc


def _resolve(state: SimState, path: ResourcePath) -> ResourceInfo:
    info = state.registry.lookup(path.group, path.version, path.plural)
    if info is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if path.namespace is not None and not info.namespaced:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if info.namespaced and path.name and path.namespace is None and path.plural != "namespaces":
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return info


async def handle_resource(request: web.Request, state: SimState, path: ResourcePath) -> web.StreamResponse:
    info = _resolve(state, path)
    method = request.method
    if not path.name:
        return await _collection(request, state, info, path)
    sub = path.subresource
    if sub == "eviction" and info.plural == "pods" and not info.group:
        if method != "POST":
            raise ApiError.method_not_allowed()
        body = await _body(request)
        options = _write_options(request, body)
        return _json(state.pods.evict(path.namespace or "", path.name, body, options), 201, options.warnings)
    if sub not in ("", "status") or (sub == "status" and not info.status_subresource):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if method == "GET":
        obj = state.api.get(info, path.namespace, path.name)
        if _wants_table(request) and not sub:
            table = build_table(
                info,
                [obj],
                include_object=request.query.get("includeObject", "Metadata"),
                resource_version=obj["metadata"]["resourceVersion"],
            )
            return _json(table)
        return _json(obj)
    if method == "PUT":
        body = await _body(request)
        options = _write_options(request)
        obj = state.api.update(info, path.namespace, path.name, body, options, subresource=sub)
        return _json(obj, 200, options.warnings)
    if method == "PATCH":
        options = _write_options(request)
        obj = state.api.patch(
            info,
            path.namespace,
            path.name,
            request.headers.get("Content-Type", ""),
            await request.read(),
            options,
            subresource=sub,
        )
        return _json(obj, 200, options.warnings)
    if method == "DELETE" and not sub:
        return await _delete(request, state, info, path)
    raise ApiError.method_not_allowed()


async def _delete(request: web.Request, state: SimState, info: ResourceInfo, path: ResourcePath) -> web.Response:
    body = await _body(request) or {}
    options = _write_options(request, body)
    grace: int | None = body.get("gracePeriodSeconds")
    if "gracePeriodSeconds" in request.query:
        grace = _int_param(request, "gracePeriodSeconds")
    preconditions = body.get("preconditions")
    if info.plural == "pods" and not info.group:
        obj, _ = state.pods.delete_pod(
            path.namespace or "", path.name, options, grace=grace, preconditions=preconditions
        )
        return _json(obj, 200, options.warnings)
    obj, gone = state.api.delete_object(info, path.namespace, path.name, options, preconditions=preconditions)
    if not gone:
        return _json(obj, 200, options.warnings)
    details = {"name": path.name, "kind": info.plural, "uid": obj["metadata"].get("uid")}
    if info.group:
        details["group"] = info.group
    success = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
    return _json(success, 200, options.warnings)


async def _collection(
    request: web.Request, state: SimState, info: ResourceInfo, path: ResourcePath
) -> web.StreamResponse:
    method = request.method
    if method == "POST":
        body = await _body(request)
        options = _write_options(request)
        return _json(state.api.create(info, path.namespace, body, options), 201, options.warnings)
    selector = Selector(request.query.get("labelSelector"), request.query.get("fieldSelector"))
    if method == "GET" and (path.legacy_watch or request.query.get("watch") in ("1", "true", "True")):
        watch = WatchRequest(
            info=info,
            namespace=path.namespace,
            selector=selector,
            resource_version=request.query.get("resourceVersion", ""),
            timeout_seconds=float(_int_param(request, "timeoutSeconds", state.watch_timeout)) or state.watch_timeout,
            bookmarks=request.query.get("allowWatchBookmarks") in ("1", "true", "True"),
            table=_wants_table(request),
            include_object=request.query.get("includeObject", "Metadata"),
            send_initial_events=request.query.get("sendInitialEvents") == "true",
        )
        return await serve_watch(request, watch, state.store, state.faults, bookmark_interval=state.bookmark_interval)
    if method == "GET":
        items, rv, token = state.api.list(
            info,
            path.namespace,
            selector,
            limit=_int_param(request, "limit"),
            continue_token=request.query.get("continue", ""),
        )
        if _wants_table(request):
            return _json(
                build_table(
                    info,
                    items,
                    include_object=request.query.get("includeObject", "Metadata"),
                    resource_version=rv,
                    continue_token=token,
                )
            )
        metadata: dict[str, Any] = {"resourceVersion": rv}
        if token:
            metadata["continue"] = token
        return _json({"kind": f"{info.kind}List", "apiVersion": info.api_version, "metadata": metadata, "items": items})
    if method == "DELETE":
        options = _write_options(request, await _body(request))
        items, _, _ = state.api.list(info, path.namespace, selector)
        deleted = []
        for item in items:
            meta = item["metadata"]
            if info.plural == "pods" and not info.group:
                obj, _ = state.pods.delete_pod(meta["namespace"], meta["name"], options)
            else:
                obj, _ = state.api.delete_object(info, meta.get("namespace"), meta["name"], options)
            deleted.append(obj)
        return _json(
            {
                "kind": f"{info.kind}List",
                "apiVersion": info.api_version,
                "metadata": {"resourceVersion": str(state.store.resource_version)},
                "items": deleted,
            }
        )
    raise ApiError.method_not_allowed()
