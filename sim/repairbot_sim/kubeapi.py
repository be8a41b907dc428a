"""The emulated Kubernetes API server, public entry point.

No cluster is reachable where RepairBot is built and tested, so the sandbox,
the integration tests and the benchmarks run against this server over a real
socket. Real clients — ``kubectl``, the ``kubernetes`` Python client, kopf —
talk to it unmodified; see :mod:`repairbot_sim.kube` for what is emulated.

In-process helpers (:meth:`KubeApiServer.create_object` and friends) act with
the powers of a kubelet or controller: they keep ``status`` on create and
create missing namespaces. They are safe to call from any thread: when the
server runs on an event loop in another thread, the call is marshalled onto
that loop, because the store is single-threaded by design.

Requests over HTTP are authenticated and authorized as on a real server:
bearer tokens issued by :meth:`KubeApiServer.issue_token` (the server starts
with one cluster-admin token, :attr:`KubeApiServer.admin_token`, a member of
``system:masters``), RBAC from the Roles and bindings stored in the cluster
(Kubernetes' bootstrap roles for discovery and health are seeded), and every
decision kept in :attr:`KubeApiServer.audit` (``GET /_sim/audit``).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import pathlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from aiohttp import web

from repairbot_sim.kube.api import KubeApi, Selector, WriteOptions
from repairbot_sim.kube.audit import AuditLog
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.faults import FaultInjector
from repairbot_sim.kube.identity import SANDBOX_ADMIN, UserInfo
from repairbot_sim.kube.pods import PodLifecycle
from repairbot_sim.kube.rbac import BOOTSTRAP_POLICY, Authorizer
from repairbot_sim.kube.resources import Registry, ResourceInfo
from repairbot_sim.kube.server import SimState, build_app
from repairbot_sim.kube.store import Store
from repairbot_sim.kube.tls import ServingCert
from repairbot_sim.serving import serve

__all__ = ["ApiError", "KubeApiServer", "write_kubeconfig"]

T = TypeVar("T")

_DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class KubeApiServer:
    """An aiohttp server that real Kubernetes clients take for a small cluster."""

    def __init__(self, *, history_limit: int = 5000, bookmark_interval: float = 5.0) -> None:
        self.store = Store(history_limit=history_limit)
        self.registry = Registry()
        self.faults = FaultInjector()
        self._state = SimState(self.store, self.registry, self.faults, bookmark_interval=bookmark_interval)
        self.api: KubeApi = self._state.api
        self.pods: PodLifecycle = self._state.pods
        self.url = ""
        self.tls: ServingCert | None = None
        """The serving certificate once started: HTTPS only, as a real API server (``ca_file`` verifies it)."""
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        for namespace in _DEFAULT_NAMESPACES:
            self.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for obj in BOOTSTRAP_POLICY:
            self.create_object(obj)
        self.admin_token = self.issue_token(SANDBOX_ADMIN)
        """A cluster-admin token (``system:masters``): what ``write_kubeconfig`` hands to humans and tests."""

    @property
    def audit(self) -> AuditLog:
        return self._state.audit

    @property
    def authorizer(self) -> Authorizer:
        """The RBAC authorizer HTTP requests pass: ``authorizer.authorize(user, request_attributes(...))``."""
        return self._state.authorizer

    def issue_token(self, user: UserInfo) -> str:
        """A bearer token that authenticates as ``user`` (e.g. ``service_account("repairbot", "repairbot-agent")``)."""
        return self._call(lambda: self._state.tokens.issue(user))

    def write_kubeconfig(
        self, path: pathlib.Path, *, token: str | None = None, context: str = "repairbot-sandbox"
    ) -> None:
        """A kubeconfig for this server: the admin token unless ``token`` names another user's."""
        ca = self.tls.ca_pem if self.tls else None
        write_kubeconfig(self.url, path, token=token or self.admin_token, context=context, ca_pem=ca)

    @property
    def ca_file(self) -> str:
        """For raw HTTPS callers (httpx ``verify=``, ``ssl.create_default_context(cafile=)``)."""
        if self.tls is None:
            raise RuntimeError("the API server is not started")
        return str(self.tls.ca_file)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 = a free port); returns the base URL."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self.tls is None:
            self.tls = ServingCert.generate()
        served = await serve(
            build_app(self._state), host, port, ssl_context=self.tls.server_context(), handler_cancellation=True
        )
        self._runner, self.url = served.runner, served.url
        self._state.server_address = served.address
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.tls is not None:
            self.tls.remove()
            self.tls = None
        self._loop = None
        self._loop_thread = None

    # ---------------------------------------------------------- in-process

    def _call(self, func: Callable[[], T]) -> T:
        """Run ``func`` on the server's loop thread when called from elsewhere."""
        loop = self._loop
        if loop is None or not loop.is_running() or threading.get_ident() == self._loop_thread:
            return func()

        async def run() -> T:
            return func()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), loop)
        return future.result(timeout=30)

    def _info(self, api_version: str, kind: str) -> ResourceInfo:
        info = self.registry.by_kind(api_version, kind)
        if info is None:
            raise LookupError(f"the emulated API server does not serve {kind} in {api_version}")
        return info

    def create_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` by its apiVersion/kind, with kubelet/controller powers.

        Raises :class:`ApiError` (e.g. 409 AlreadyExists) like the HTTP API would.
        """
        info = self._info(obj.get("apiVersion", ""), obj.get("kind", ""))
        namespace = obj.get("metadata", {}).get("namespace") or ("default" if info.namespaced else None)
        return self._call(lambda: self.api.create(info, namespace, obj, WriteOptions(trusted=True)))

    def apply_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create, or replace (unconditionally, status included) when it exists."""
        info = self._info(obj.get("apiVersion", ""), obj.get("kind", ""))
        namespace = obj.get("metadata", {}).get("namespace") or ("default" if info.namespaced else None)
        name = obj["metadata"]["name"]

        def apply() -> dict[str, Any]:
            if self.store.get(info.storage_key, namespace if info.namespaced else None, name) is None:
                return self.api.create(info, namespace, obj, WriteOptions(trusted=True))
            body = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}
            updated = self.api.update(info, namespace, name, body, WriteOptions(trusted=True))
            if "status" in obj and info.status_subresource:
                updated = self.api.update(info, namespace, name, body, WriteOptions(trusted=True), subresource="status")
            return updated

        return self._call(apply)

    def get_object(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        info = self._info(api_version, kind)
        obj = self._call(lambda: self.store.get(info.storage_key, namespace if info.namespaced else None, name))
        return self.api._as_version(info, obj) if obj is not None else None

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        info = self._info(api_version, kind)
        items, _, _ = self._call(lambda: self.api.list(info, namespace, Selector(label_selector)))
        return items

    def delete_object(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        """Delete as a client would (finalizers and pod grace apply)."""
        info = self._info(api_version, kind)
        if info.plural == "pods" and not info.group:
            self._call(lambda: self.pods.delete_pod(namespace or "default", name, WriteOptions()))
        else:
            self._call(lambda: self.api.delete_object(info, namespace, name, WriteOptions()))

    def load_yaml(self, path: pathlib.Path) -> list[dict[str, Any]]:
        """Create every document of a YAML file (e.g. the chart's CRD)."""
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        return [self.apply_object(document) for document in documents]


def write_kubeconfig(
    url: str, path: pathlib.Path, *, token: str, context: str = "repairbot-sandbox", ca_pem: bytes | None = None
) -> None:
    """A kubeconfig for ``url`` with a bearer token the server issued (it checks it) and the CA that signed it."""
    cluster: dict[str, Any] = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}],
        "current-context": context,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # libyaml's emitter where present (the same YAML): the sandbox writes one kubeconfig per agent, 20,000 at scale.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(yaml.dump(config, Dumper=dumper, sort_keys=False))
