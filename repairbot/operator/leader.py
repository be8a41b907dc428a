"""Leader election with a coordination.k8s.io Lease: two replicas, one active.

The same protocol as client-go's leaderelection: the leader renews
``renewTime`` every ``renew_every``; a candidate takes the lease over once the
lease record has not *changed* for ``lease_duration`` by the candidate's own
monotonic clock. ``renewTime`` is written (it is what ``kubectl`` shows) but
never compared with a local clock: a replica whose wall clock is 12 s off
would otherwise judge a live leader expired, or a dead one alive. Updates
carry the lease's resourceVersion, so two candidates racing for an expired
lease cannot both win (one gets 409). A leader that fails to renew within the
duration steps down — the operator then exits and the Deployment restarts it
as a candidate, which is how controller-runtime operators behave too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.kube.client import describe_error, raw_call
from repairbot.model import format_time

log = logging.getLogger(__name__)

LEASE_NAME = "repairbot-operator"


@dataclass
class LeaderElector:
    api: client.ApiClient
    namespace: str
    identity: str
    lease_name: str = LEASE_NAME
    """One Lease per release (the chart passes ``--lease-name``): two releases in a namespace never share one."""
    lease_duration: timedelta = timedelta(seconds=15)
    renew_every: timedelta = timedelta(seconds=5)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    monotonic: Callable[[], float] = time.monotonic
    _observed: tuple[Any, ...] | None = None
    _observed_at: float = 0.0
    _leading: threading.Event = field(default_factory=threading.Event)
    _lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    on_leading: Callable[[bool], None] = lambda leading: None
    """Told each time this replica becomes or stops being the leader (the ``repairbot_operator_leader`` gauge)."""

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def try_acquire_or_renew(self) -> bool:
        """One round of the protocol; True while this candidate holds the lease."""
        coordination = client.CoordinationV1Api(self.api)
        now = self.clock()
        try:
            lease = raw_call(coordination.read_namespaced_lease, self.lease_name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            return self._create(coordination, now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration.total_seconds())
        self._observe(lease)
        if holder and holder != self.identity and not self._expired(duration):
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        lease["spec"] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration.total_seconds()),
            "acquireTime": spec.get("acquireTime") if holder == self.identity else _micro(now),
            "renewTime": _micro(now),
            "leaseTransitions": transitions,
        }
        try:
            written = raw_call(coordination.replace_namespaced_lease, self.lease_name, self.namespace, lease)
        except ApiException as error:
            if error.status == 409:
                return False  # someone else renewed or took it first
            raise
        self._observe(written)
        if holder != self.identity:
            log.warning("leader election: %s took the lease from %s", self.identity, holder or "nobody")
        return True

    def _observe(self, lease: Mapping[str, Any]) -> None:
        """client-go's rule: remember the record and *our* monotonic time whenever it changes.

        The record is what the holder writes each renewal (holder, renewTime,
        transitions) plus the resourceVersion, so a renewal by a holder whose
        clock stands still still counts as a change.
        """
        spec = lease.get("spec") or {}
        record = (
            spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"),
            spec.get("leaseTransitions"), (lease.get("metadata") or {}).get("resourceVersion"),
        )  # fmt: skip
        if record != self._observed:
            self._observed, self._observed_at = record, self.monotonic()

    def _expired(self, duration: float) -> bool:
        """Has the record stood unchanged for ``duration`` seconds by this observer's own clock?"""
        return self.monotonic() - self._observed_at > duration

    def _create(self, coordination: client.CoordinationV1Api, now: datetime) -> bool:
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.lease_name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration.total_seconds()),
                "acquireTime": _micro(now),
                "renewTime": _micro(now),
                "leaseTransitions": 0,
            },
        }
        try:
            created = raw_call(coordination.create_namespaced_lease, self.namespace, body)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        self._observe(created)
        return True

    def run_in_background(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)
        self._thread.start()

    def wait_until_leader(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            if self._leading.wait(0.5):
                return True
        return False

    @property
    def electing(self) -> bool:
        """Is the election loop still running (what a standby's liveness probe asks)?"""
        return self._thread is not None and self._thread.is_alive()

    @property
    def lost(self) -> threading.Event:
        return self._lost

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _loop(self) -> None:
        last_renewal: float | None = None  # monotonic: a leader steps down by its own elapsed time, too
        while not self._stop.is_set():
            try:
                held = self.try_acquire_or_renew()
            except Exception as error:
                log.warning("leader election error identity=%s: %s", self.identity, describe_error(error))
                held = False
            now = self.monotonic()
            if held:
                last_renewal = now
                if not self._leading.is_set():
                    log.info("leader election: %s is the active operator", self.identity,
                             extra={"identity": self.identity, "leader": True})  # fmt: skip
                    self._leading.set()
                    self.on_leading(True)
            elif self._leading.is_set() and (
                last_renewal is None or now - last_renewal > self.lease_duration.total_seconds()
            ):
                log.error("leader election: %s lost the lease; stepping down", self.identity,
                          extra={"identity": self.identity, "leader": False})  # fmt: skip
                self._leading.clear()
                self.on_leading(False)
                self._lost.set()
            self._stop.wait((self.renew_every if held else self.renew_every / 2).total_seconds())


def _micro(when: datetime) -> str:
    """Leases use MicroTime: RFC 3339 with microseconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


__all__ = ["LEASE_NAME", "LeaderElector", "format_time"]
