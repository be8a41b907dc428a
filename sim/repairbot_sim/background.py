"""Run a sandbox on a background thread, for tests, benchmarks and scripts that are not async.

The sandbox's API server and control endpoint live on their own event loop
in a daemon thread; the caller talks to them over real sockets like any
client, which is the point.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from repairbot_sim.sandbox import Sandbox, SandboxConfig

T = TypeVar("T")


class BackgroundSandbox:
    """``with BackgroundSandbox(config) as sandbox: ...`` — started on enter, stopped on exit."""

    def __init__(self, config: SandboxConfig) -> None:
        self.sandbox = Sandbox(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox-loop", daemon=True)
        self.state: dict[str, Any] = {}

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        self._thread.start()
        self.state = self.call(self.sandbox.start(), timeout)
        return self.state

    def stop(self, timeout: float = 60.0) -> None:
        try:
            self.call(self.sandbox.stop(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the sandbox's loop (e.g. to touch the API server's store)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __enter__(self) -> BackgroundSandbox:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
