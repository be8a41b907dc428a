"""``/healthz`` for a replica that is waiting for the Lease.

kopf serves the liveness endpoint only once it runs, and it runs only on the
leader. Without this, the standby replica of a two-replica Deployment would
fail its liveness probe forever and be restarted in a loop. While waiting, the
standby is alive exactly when its election loop is: that is all it does.
When it becomes leader the server closes and kopf takes the same port.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)


class StandbyHealth:
    """A tiny HTTP server answering ``GET /healthz``: 200 while ``alive()``, 503 otherwise."""

    def __init__(self, port: int, alive: Callable[[], bool], *, host: str = "0.0.0.0") -> None:
        self._alive = alive
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="standby-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the port (kopf binds it next)."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        alive = self._alive

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/healthz":
                    self._answer(404, {"error": "not found"})
                    return
                ok = alive()
                self._answer(200 if ok else 503, {"role": "standby", "electing": ok})

            def _answer(self, code: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: not news
                return

        return Handler
