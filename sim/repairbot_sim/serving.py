"""Serve one aiohttp application on a loopback port: what every fake server of the simulated world does.

The sandbox's fakes (the Kubernetes API, Slack, Jira, the BMC, dcgm-exporter,
the control endpoint) each listen on a port chosen by the kernel and tell
their callers where; this is that step, once. :class:`Listening` keeps the
runner between ``start`` and ``stop`` for the fakes that are objects, and
:func:`gate` is the middleware shape their front doors share: failure
switches and credentials checked before any handler runs, the first refusal
answered as the real service would.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


@dataclass(frozen=True, slots=True)
class Served:
    """A running listener: stop it with ``await runner.cleanup()``."""

    runner: web.AppRunner
    url: str  # http(s)://host:port
    address: str  # host:port, as a Prometheus target or a Host header names it


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_context: ssl.SSLContext | None = None,
    **runner_options: Any,
) -> Served:
    """Listen on ``host:port`` (0: a free port) without an access log; the bound address comes back."""
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    bound_host, bound_port = runner.addresses[0][:2]
    address = f"{bound_host}:{bound_port}"
    return Served(runner, f"{'https' if ssl_context else 'http'}://{address}", address)


class Listening:
    """The start/stop half of a fake server: ``await self._listen(app, ...)`` serves, :meth:`stop` ends it."""

    _runner: web.AppRunner | None = None

    async def _listen(
        self, app: web.Application, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Serve ``app`` until :meth:`stop`; the base URL it answers on."""
        served = await serve(app, host, port, ssl_context=ssl_context)
        self._runner = served.runner
        return served.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def gate(refusal: Callable[[web.Request], web.StreamResponse | None]) -> Middleware:
    """Middleware that answers ``refusal(request)`` where it has an answer (503, 401...), else the handler."""

    @web.middleware
    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = refusal(request)
        return refused if refused is not None else await handler(request)

    return guarded


def authorization(request: web.Request) -> tuple[str, str]:
    """The ``Authorization`` header as (scheme in lower case, credentials); empty strings where absent."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower(), credentials
