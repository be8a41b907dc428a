"""Serve one aiohttp application on a loopback port: what every fake server of the simulated world does.

The sandbox's fakes (the Kubernetes API, Slack, Jira, the BMC, dcgm-exporter,
the control endpoint) each listen on a port chosen by the kernel and tell
their callers where; this is that step, once.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web


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
