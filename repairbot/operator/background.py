"""One pass of work, again and again on a daemon thread, until the operator stops it.

The operator's side lanes — Slack and Jira deliveries, Grafana annotations,
Alertmanager silences, the retention sweep — each poll on their own thread so
that one slow service never holds back the others or the reconciler. They
share one lifecycle, kept here so it is written (and fixed) once:

* the first pass runs at once on :meth:`BackgroundLoop.start` (a new leader
  catches up on what piled up while it stood by), then one every ``interval``;
* a pass that raises is logged and the loop goes on: a side lane's failure
  must never stop the operator, and the next pass retries;
* :meth:`BackgroundLoop.stop` wakes the wait at once and joins the thread for
  a bounded time (a pass stuck in a call to a dead service cannot hold the
  shutdown forever; the thread is a daemon).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

STOP_TIMEOUT = 10.0
"""Seconds :meth:`BackgroundLoop.stop` waits for a pass in flight to end."""


class BackgroundLoop:
    """Run ``work`` on thread ``name`` every ``interval()`` seconds between :meth:`start` and :meth:`stop`.

    ``interval`` is read before each wait, so a lane whose interval changes
    (tests shorten it) waits the current one. ``failed`` is the line logged
    (with the traceback, on ``logger``) when a pass raises.
    """

    def __init__(
        self, name: str, work: Callable[[], object], interval: Callable[[], float], *,
        failed: str, logger: logging.Logger,
    ) -> None:  # fmt: skip
        self.name = name
        self._work = work
        self._interval = interval
        self._failed = failed
        self._log = logger
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """Ask the loop to end after its pass in flight, without waiting (stop several lanes at once)."""
        self._stop.set()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """End the loop and wait up to ``timeout`` seconds for its thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._work()
            except Exception:  # a side lane's failure must never stop the next pass, nor the operator
                self._log.exception(self._failed)
            if self._stop.wait(self._interval()):
                return
