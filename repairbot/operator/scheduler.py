"""One worker per active GPURepair: reconcile, then sleep until poked or due again.

kopf's daemons and timers would do this, but they put a finalizer on every
object they serve, so a finished GPURepair could not be deleted without the
operator running. The scheduler gives the same shape without finalizers: a
watch event pokes the repair's worker (starting it if needed); the worker
reconciles in a thread (the kubernetes client is synchronous) and sleeps for
the decision's ``requeue_after`` or until the next poke.

Errors are retried with a growing backoff and, once they persist, written on
the GPURepair itself so the SRE sees them in ``kubectl describe`` — an API
error is never swallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from repairbot.kube.client import describe_error
from repairbot.operator.reconciler import ReconcileResult

log = logging.getLogger(__name__)

Reconcile = Callable[[str], ReconcileResult | None]
OwnWrite = Callable[[str, str], bool]
ReportError = Callable[[str, str], None]


@dataclass
class RepairScheduler:
    reconcile: Reconcile
    report_error: ReportError = lambda name, message: None
    own_write: OwnWrite = lambda name, resource_version: False
    default_requeue: float = 10.0
    max_parallel: int = 16
    error_backoff_max: float = 30.0
    report_after_failures: int = 3
    _workers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    _slots: asyncio.Semaphore | None = None

    def poke(self, name: str, resource_version: str = "") -> None:
        """Something about repair ``name`` changed: reconcile it soon (start its worker if idle).

        A change that is only the echo of the worker's own status write is skipped.
        """
        if name in self._workers and self.own_write(name, resource_version):
            return
        wakeup = self._wakeups.get(name)
        if wakeup is not None:
            wakeup.set()
            return
        self._wakeups[name] = asyncio.Event()
        self._workers[name] = asyncio.get_running_loop().create_task(self._work(name), name=f"repair-{name}")

    def forget(self, name: str) -> None:
        task = self._workers.pop(name, None)
        self._wakeups.pop(name, None)
        if task is not None:
            task.cancel()

    @property
    def active(self) -> list[str]:
        return sorted(self._workers)

    async def stop(self) -> None:
        tasks = list(self._workers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._wakeups.clear()

    async def _work(self, name: str) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_parallel)
        failures = 0
        try:
            while True:
                wakeup = self._wakeups[name]
                wakeup.clear()
                try:
                    async with self._slots:
                        result = await asyncio.to_thread(self.reconcile, name)
                except Exception as error:  # retried with backoff, reported once it persists
                    failures += 1
                    delay = min(self.error_backoff_max, 0.5 * 2**failures)
                    described = describe_error(error)
                    log.warning(
                        "reconcile failed repair=%s attempt=%d retry_in=%.1fs error=%s", name, failures, delay,
                        described,
                    )
                    if failures == self.report_after_failures:
                        await asyncio.to_thread(self._report, name, described)
                    await self._sleep(wakeup, delay)
                    continue
                failures = 0
                if result is None:
                    return  # finished or deleted: the worker ends, a later poke starts a new one
                await self._sleep(wakeup, _seconds(result.requeue_after, self.default_requeue))
        finally:
            if self._workers.get(name) is asyncio.current_task():
                self._workers.pop(name, None)
                self._wakeups.pop(name, None)

    def _report(self, name: str, message: str) -> None:
        try:
            self.report_error(name, message)
        except Exception as error:
            log.warning("could not record reconcile error on repair=%s: %s", name, error)

    @staticmethod
    async def _sleep(wakeup: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout=seconds)


def _seconds(delay: timedelta | None, default: float) -> float:
    return default if delay is None else max(0.0, delay.total_seconds())
