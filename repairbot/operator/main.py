"""``repairbot operator``: load the policy, win the lease, run kopf with RepairBot's handlers.

Start-up refuses a bad policy (every error named by field), so a typo can
never reach the fleet. The same :func:`build_operator` serves the sandbox,
which runs the operator in-process against its emulated API server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client
from prometheus_client import start_http_server

from repairbot.kube.client import api_client
from repairbot.kube.events import EventRecorder
from repairbot.kube.intake import Intake
from repairbot.kube.rate_limit import DEFAULT_BURST, DEFAULT_QPS, rate_limited
from repairbot.notify.alertmanager import AlertmanagerSilences
from repairbot.notify.grafana import GrafanaAnnotations
from repairbot.notify.http_access import HttpAccess
from repairbot.operator.annotations import AnnotationDispatcher
from repairbot.operator.bmc_credentials import KubeBmcCredentials
from repairbot.operator.breaker_store import CONFIGMAP as BREAKER_CONFIGMAP
from repairbot.operator.breaker_store import BreakerStore
from repairbot.operator.dispatcher import ChatEndpoints, NotificationDispatcher, build_notifiers
from repairbot.operator.facts import FactGatherer, read_fleet
from repairbot.operator.fleet_cache import FleetCache
from repairbot.operator.handlers import register
from repairbot.operator.leader import LEASE_NAME, LeaderElector
from repairbot.operator.metrics import OperatorMetrics
from repairbot.operator.reconciler import Reconciler
from repairbot.operator.retention import RetentionCollector
from repairbot.operator.scheduler import RepairScheduler
from repairbot.operator.silences import SilenceKeeper
from repairbot.operator.slurm_step import SlurmStep
from repairbot.operator.standby import StandbyHealth
from repairbot.policy import Policy, PolicyError, PolicyFileError, load_policy, parse_policy
from repairbot.remediations.prometheus_access import PrometheusAccess
from repairbot.remediations.redfish import BmcConnector
from repairbot.remediations.validation import QuietPeriodCheck

log = logging.getLogger(__name__)

COMPONENT = "repairbot-operator"
EXECUTOR_SPARE = 8
"""Threads beyond the reconcile slots: kopf's sync handlers and the manual-label intake share the executor."""


@dataclass
class OperatorOptions:
    policy_path: Path | None = None
    kubeconfig: str | None = None
    namespace: str = field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "repairbot"))
    identity: str = field(default_factory=lambda: os.environ.get("POD_NAME") or socket.gethostname())
    metrics_port: int = 9403
    health_port: int = 8081
    leader_election: bool = True
    max_parallel: int = 64
    """Repairs decided at once; the API rate limit (``api_qps``/``api_burst``) is what bounds the API load."""
    api_qps: float = DEFAULT_QPS
    api_burst: int = DEFAULT_BURST
    lease_name: str = LEASE_NAME
    """The leader-election Lease; the chart names it after the release."""
    breaker_configmap: str = BREAKER_CONFIGMAP
    """The storm breaker's ConfigMap; the chart names it after the release."""
    prometheus: PrometheusAccess = field(default_factory=PrometheusAccess)
    """TLS trust and credentials for the quiet-period query (never in the policy file)."""
    alertmanager: HttpAccess = field(default_factory=HttpAccess)
    """TLS trust and credentials for Alertmanager's silences API (never in the policy file)."""


@dataclass
class OperatorParts:
    """Everything one running operator is made of; the sandbox and tests build it the same way."""

    api: client.ApiClient
    policy: Policy
    registry: kopf.OperatorRegistry
    scheduler: RepairScheduler
    reconciler: Reconciler
    metrics: OperatorMetrics
    notifications: NotificationDispatcher
    retention: RetentionCollector | None = None
    """Deletes finished repairs past the policy's retention; runs only while this operator leads."""
    silences: SilenceKeeper | None = None
    """Holds each disruptive repair's Alertmanager silence (policy ``alertmanager.url``); None when off."""
    annotations: AnnotationDispatcher | None = None
    """Posts each repair step as a Grafana annotation (policy ``grafana.url``); None when off."""


def read_policy(path: Path | None) -> Policy:
    """The policy file, or the packaged defaults; raises :class:`PolicyError` naming every bad field."""
    return load_policy(path) if path else parse_policy({})


def build_operator(
    api: client.ApiClient,
    policy: Policy,
    *,
    namespace: str,
    bmc: BmcConnector | None = None,
    metrics: OperatorMetrics | None = None,
    max_parallel: int = 64,
    chat: ChatEndpoints | None = None,
    breaker_configmap: str = BREAKER_CONFIGMAP,
    prometheus: PrometheusAccess | None = None,
    grafana_token: str | None = None,
    alertmanager: HttpAccess | None = None,
) -> OperatorParts:
    """Every part of one operator. ``grafana_token`` (else ``REPAIRBOT_GRAFANA_TOKEN``) is Grafana's API token,
    required when the policy names a Grafana: an annotation lane that cannot log in is refused at start-up."""
    metrics = metrics or OperatorMetrics()
    cache = FleetCache()
    quiet = QuietPeriodCheck(
        policy.validation.prometheus_url, policy.validation.promql, access=prometheus or PrometheusAccess()
    ) if policy.validation.prometheus_url else None  # fmt: skip
    reconciler = Reconciler(
        api=api,
        policy=policy,
        breakers=BreakerStore(api, namespace, breaker_configmap),
        events=EventRecorder(api, component=COMPONENT),
        metrics=metrics,
        bmc=bmc if bmc is not None else BmcConnector(KubeBmcCredentials(api)),
        gatherer=FactGatherer(api, policy, quiet, fleet=lambda: cache.view() if cache.primed else read_fleet(api),
                              cached_node=lambda name: cache.node(name) if cache.primed else None),
        fleet_cache=cache,
        slurm=SlurmStep(policy.slurm) if policy.slurm.enabled else None,
    )
    scheduler = RepairScheduler(
        reconcile=reconciler.reconcile,
        report_error=reconciler.record_error,
        own_write=reconciler.wrote_last,
        max_parallel=max_parallel,
    )
    slack, jira = build_notifiers(policy, chat if chat is not None else ChatEndpoints.from_environment(os.environ))
    notifications = NotificationDispatcher(
        api,
        lambda: list(cache.view().repairs),
        slack=slack,
        jira=jira,
        runbook_base_url=policy.runbook_base_url,
        metrics=metrics,
    )
    registry = kopf.OperatorRegistry()
    register(registry, api=api, scheduler=scheduler, intake=Intake(api), metrics=metrics, fleet_cache=cache)
    retention = RetentionCollector(api, policy.retention, metrics)
    parts = OperatorParts(api, policy, registry, scheduler, reconciler, metrics, notifications, retention)
    parts.silences = build_silences(api, policy, lambda: list(cache.view().repairs), metrics, access=alertmanager)
    parts.annotations = build_annotations(api, policy, lambda: list(cache.view().repairs), metrics,
                                          grafana_token or os.environ.get("REPAIRBOT_GRAFANA_TOKEN"))  # fmt: skip
    return parts


def build_silences(
    api: client.ApiClient,
    policy: Policy,
    repairs: Callable[[], list[Mapping[str, Any]]],
    metrics: OperatorMetrics,
    *,
    access: HttpAccess | None = None,
) -> SilenceKeeper | None:
    """The silence keeper when the policy names an Alertmanager (reached with ``access``: CA, credentials)."""
    if policy.alertmanager.url is None:
        return None
    silences = AlertmanagerSilences(policy.alertmanager.url, access=access)
    return SilenceKeeper(api, repairs, silences, policy.alertmanager,
                         runbook_base_url=policy.runbook_base_url, metrics=metrics)  # fmt: skip


def build_annotations(
    api: client.ApiClient,
    policy: Policy,
    repairs: Callable[[], list[Mapping[str, Any]]],
    metrics: OperatorMetrics,
    token: str | None,
) -> AnnotationDispatcher | None:
    """The annotation lane when the policy names a Grafana; a Grafana without a token is a configuration error."""
    if policy.grafana.url is None:
        return None
    if not token:
        raise ValueError("policy grafana.url is set but no API token is: set REPAIRBOT_GRAFANA_TOKEN (the chart's "
                         "grafana.existingSecret), a Grafana service-account token with annotations:write")  # fmt: skip
    return AnnotationDispatcher(api, repairs, GrafanaAnnotations(policy.grafana.url, token), policy.grafana,
                                metrics=metrics)  # fmt: skip


def run_kopf(
    parts: OperatorParts, stop: threading.Event, ready: threading.Event | None = None, *, health_port: int = 0
) -> None:
    """Run kopf (blocking) until ``stop`` is set; clusterwide, no kopf peering (we hold a Lease).

    ``health_port`` serves kopf's liveness probe at ``/healthz`` (0: none), for the Deployment's probes.
    """
    liveness = f"http://0.0.0.0:{health_port}/healthz" if health_port else None
    asyncio.run(_operate(parts, stop, ready, liveness))


async def _operate(
    parts: OperatorParts, stop: threading.Event, ready: threading.Event | None, liveness: str | None
) -> None:
    # Reconciles run in the loop's default executor (asyncio.to_thread): sized to the scheduler's slots,
    # not to the CPU count (5 threads on a 2-core pod), or most decisions in flight would wait for a thread.
    workers = parts.scheduler.max_parallel + EXECUTOR_SPARE
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers, thread_name_prefix="reconcile"))
    parts.notifications.start()
    if parts.retention is not None:
        parts.retention.start()
    for lane in (parts.silences, parts.annotations):
        if lane is not None:
            lane.start()
    try:
        await kopf.operator(
            registry=parts.registry,
            clusterwide=True,
            standalone=True,
            stop_flag=stop,
            ready_flag=ready,
            liveness_endpoint=liveness,
        )
    finally:
        # kopf waits on a threading stop flag from an executor thread; set it so that thread ends
        # too, or interpreter shutdown would wait on it forever after a SIGTERM.
        stop.set()
        await parts.scheduler.stop()
        await asyncio.to_thread(parts.notifications.stop)
        if parts.retention is not None:
            await asyncio.to_thread(parts.retention.stop)
        for lane in (parts.silences, parts.annotations):
            if lane is not None:
                await asyncio.to_thread(lane.stop)


def run_operator(options: OperatorOptions) -> int:
    try:
        policy = read_policy(options.policy_path)
    except PolicyError as error:
        log.error("refusing to start: bad policy %s", options.policy_path)
        if isinstance(error, PolicyFileError):  # no policy at all: one line, the file and the problem
            print(f"repairbot operator: bad policy {error}")
        else:  # a policy with bad fields: every field, one per line
            print(f"repairbot operator: bad policy {options.policy_path}:\n{error}")
        return 2
    problems = options.prometheus.problems() if policy.validation.prometheus_url else []
    if problems:
        print("repairbot operator: cannot reach Prometheus as configured:\n" + "\n".join(problems))
        return 2
    problems = options.alertmanager.problems() if policy.alertmanager.url else []
    if problems:
        print("repairbot operator: cannot reach Alertmanager as configured (--alertmanager-*-file):\n"
              + "\n".join(problems))  # fmt: skip
        return 2
    api = rate_limited(api_client(options.kubeconfig), options.api_qps, options.api_burst)
    parts = build_operator(
        api, policy, namespace=options.namespace, max_parallel=options.max_parallel,
        breaker_configmap=options.breaker_configmap, prometheus=options.prometheus, alertmanager=options.alertmanager,
    )  # fmt: skip
    if options.metrics_port:
        start_http_server(options.metrics_port, registry=parts.metrics.registry)
    stop = threading.Event()
    elector = None
    if options.leader_election:
        elector = LeaderElector(
            api, options.namespace, options.identity, lease_name=options.lease_name, on_leading=parts.metrics.set_leader
        )
        elector.run_in_background()
        log.info("waiting to become the active operator identity=%s", options.identity,
                 extra={"identity": options.identity})
        standby = StandbyHealth(options.health_port, lambda: elector.electing) if options.health_port else None
        if standby is not None:
            standby.start()
        try:
            if not elector.wait_until_leader(stop):
                return 0
        finally:
            if standby is not None:
                standby.stop()
        threading.Thread(target=_stop_when_lost, args=(elector, stop), daemon=True).start()
    else:
        parts.metrics.set_leader(True)  # one replica, no election: it is the active operator
    try:
        run_kopf(parts, stop, health_port=options.health_port)
    finally:
        if elector:
            elector.stop()
    return 1 if elector is not None and elector.lost.is_set() else 0


def _stop_when_lost(elector: LeaderElector, stop: threading.Event) -> None:
    """A leader that lost its lease stops at once: another replica may already be acting."""
    elector.lost.wait()
    stop.set()
