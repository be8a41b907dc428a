"""``/metrics`` and ``/healthz`` for the agent, on a plain threaded HTTP server.

The agent is thread-based (NVML's event wait blocks in C), so a small
``http.server`` fits better than an event loop. ``/healthz`` fails when the
poll loop has stalled, so the kubelet restarts a wedged agent.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from repairbot.agent.metrics import AgentMetrics


class AgentHttpServer:
    def __init__(self, metrics: AgentMetrics, *, host: str, port: int, stall_after: float) -> None:
        self._metrics = metrics
        self._stall_after = stall_after
        self._started = time.time()
        handler = self._handler_class()
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="agent-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def healthy(self) -> tuple[bool, str]:
        """Healthy while the last completed poll is recent (or the agent has just started)."""
        reference = self._metrics.last_poll_at or self._started
        age = time.time() - reference
        if age > self._stall_after:
            return False, f"no completed poll for {age:.0f}s"
        return True, "ok"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, outer._metrics.exposition(), CONTENT_TYPE_LATEST)
                elif self.path in ("/healthz", "/readyz"):
                    ok, message = outer.healthy()
                    self._send(200 if ok else 503, message.encode(), "text/plain")
                else:
                    self._send(404, b"not found: try /metrics or /healthz", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes every few seconds would drown the agent's own log

        return Handler
