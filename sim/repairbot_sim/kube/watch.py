"""Watch streams: newline-delimited JSON events over one chunked response.

The semantics clients depend on:

* no ``resourceVersion`` (or ``"0"``): synthetic ADDED events for the current
  state first, then live changes — informers' "list-then-watch" shortcut;
* ``resourceVersion=N``: every change after N, replayed from history; if N is
  older than the history kept, a single ERROR event carrying a 410 Status
  (reason Expired) and the end of the stream, as the real server does, which
  is what makes the kubernetes client raise ``ApiException(410)`` and kopf re-list;
* selector watches send ADDED/DELETED when an object moves into/out of the
  selector, not MODIFIED;
* ``allowWatchBookmarks``: BOOKMARK events carry the current version while
  nothing happens, so a reconnecting client resumes without a re-list;
* ``sendInitialEvents=true``: the current state as ADDED events, then a
  BOOKMARK annotated ``k8s.io/initial-events-end``;
* ``timeoutSeconds`` ends the stream cleanly.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from repairbot_sim.kube.api import Selector
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.faults import FaultInjector
from repairbot_sim.kube.resources import ResourceInfo
from repairbot_sim.kube.store import Store, WatchEvent
from repairbot_sim.kube.tables import build_table

__all__ = ["WatchRequest", "serve_watch"]


@dataclass
class WatchRequest:
    """A parsed ``?watch=true`` request."""

    info: ResourceInfo
    namespace: str | None
    selector: Selector
    resource_version: str = ""
    timeout_seconds: float = 1800.0
    bookmarks: bool = False
    table: bool = False
    include_object: str = "Metadata"
    send_initial_events: bool = False
    """The WatchList protocol (client-go's WatchListClient): current state, then an end-marker BOOKMARK."""


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _translate(event: WatchEvent, selector: Selector) -> str | None:
    """The event type this watcher should see, or None to skip."""
    now_matches = selector.matches(event.obj)
    if event.type != "MODIFIED":
        return event.type if now_matches else None
    was_matching = selector.matches(event.old)
    if now_matches:
        return "MODIFIED" if was_matching else "ADDED"
    return "DELETED" if was_matching else None


async def serve_watch(
    request: web.Request,
    watch: WatchRequest,
    store: Store,
    faults: FaultInjector,
    *,
    bookmark_interval: float,
) -> web.StreamResponse:
    info = watch.info
    if watch.resource_version in ("", "0") or watch.send_initial_events:
        since: int | None = None
    else:
        try:
            since = int(watch.resource_version)
        except ValueError as exc:
            raise ApiError.bad_request(f"invalid resource version: {watch.resource_version}") from exc
    namespace = watch.namespace if info.namespaced else None
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        watcher = store.watch(info.storage_key, namespace, since)
    except ApiError as exc:
        await response.prepare(request)
        await response.write(_line("ERROR", exc.body()))
        await response.write_eof()
        return response
    initial = (
        [] if since is not None else [o for o in store.list(info.storage_key, namespace) if watch.selector.matches(o)]
    )
    drop = faults.take("drop_watch", request.method, request.path)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + watch.timeout_seconds
    if drop is not None and drop.after_seconds is not None:
        deadline = min(deadline, loop.time() + drop.after_seconds)
    sent = 0
    first = True

    async def send(event_type: str, obj: dict[str, Any]) -> None:
        nonlocal sent, first
        obj = {**obj, "apiVersion": info.api_version}
        if watch.table and event_type != "BOOKMARK":
            obj = build_table(info, [obj], include_object=watch.include_object, with_columns=first)
            first = False
        await response.write(_line(event_type, obj))
        sent += 1

    def bookmark() -> dict[str, Any]:
        return {
            "kind": info.kind,
            "apiVersion": info.api_version,
            "metadata": {"resourceVersion": str(store.resource_version)},
        }

    try:
        await response.prepare(request)
        for obj in initial:
            await send("ADDED", obj)
        if watch.send_initial_events:
            marker = bookmark()
            marker["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
            await send("BOOKMARK", marker)
        while True:
            if drop is not None and drop.after_events is not None and sent >= drop.after_events:
                _cut(request)
                return response
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = min(remaining, bookmark_interval) if watch.bookmarks else remaining
            try:
                event = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if watch.bookmarks and watcher.queue.empty() and loop.time() < deadline:
                    await send("BOOKMARK", bookmark())
                continue
            event_type = _translate(event, watch.selector)
            if event_type is not None:
                await send(event_type, event.obj)
        if drop is not None:
            _cut(request)
            return response
        if watch.bookmarks and watcher.queue.empty():
            await send("BOOKMARK", bookmark())
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away; nothing to tell it
    finally:
        store.unwatch(watcher)
    return response


def _cut(request: web.Request) -> None:
    """Drop the connection mid-stream, like a load balancer killing an idle stream."""
    if request.transport is not None:
        request.transport.close()
