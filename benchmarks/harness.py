"""The processes and observers the benchmarks share.

* :class:`ClusterProcess` — the emulated cluster (``sandbox_server.py``) in its
  own process, with its request counter (``/_sim/requests``).
* :class:`OperatorProcess` — ``repairbot operator`` as its own process, as in a
  pod; ready once kopf watches nodes and GPURepairs and its CPU has settled.
* :class:`NodeMarks` — a raw watch on nodes that records when each node was
  first seen cordoned *and* tainted by RepairBot: the acknowledgement as the
  cluster shows it, not as the operator reports it.
* :class:`ProcessMeter` — CPU seconds per wall second and RSS of a process.

Everything speaks to the cluster over HTTP with User-Agent ``repairbot-bench``,
so the API server's request counts tell the benchmark's own requests apart
from the operator's (``OpenAPI-Generator`` for its writes, ``kopf`` for its watches).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from common import cpu_seconds, rss_mib
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.model import TAINT_UNHEALTHY, Action, Finding, GpuRef, Severity, Source

BENCH_AGENT = "repairbot-bench"
HERE = Path(__file__).parent


def write_policy(directory: Path, overrides: dict[str, Any], name: str = "policy.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(overrides))
    return path


def bench_client(kubeconfig: str) -> client.ApiClient:
    """A kubernetes client whose requests the API server counts as the benchmark's."""
    api = api_client(kubeconfig)
    api.user_agent = f"{BENCH_AGENT}/1"
    return api


def fatal_xid(code: int, gpu: int, at: datetime, source: Source = Source.AGENT) -> Finding:
    """A finding as the agent sends it for a fatal Xid (79: fallen off the bus, reboot first)."""
    return Finding(
        code=f"xid-{code}",
        message=f"benchmark: Xid {code} on GPU {gpu}",
        action=Action.REBOOT,
        severity=Severity.FATAL,
        gpu=GpuRef(index=gpu),
        xid=code,
        source=source,
        first_seen=at,
    )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ClusterProcess:
    """``with ClusterProcess(root, nodes) as cluster:`` — the emulated cluster in its own process."""

    def __init__(self, root: Path, nodes: int, *, termination_seconds: int | None = None) -> None:
        self.root = root
        self.nodes = nodes
        self.termination_seconds = termination_seconds
        self.state: dict[str, Any] = {}
        self._process: subprocess.Popen[str] | None = None
        self._log = root / "cluster.log"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def kubeconfig(self) -> str:
        return str(self.state["kubeconfig"])

    @property
    def operator_kubeconfig(self) -> str:
        """The operator's own ServiceAccount credentials: it runs under the chart's RBAC, as in a cluster."""
        return str(self.state["kubeconfigs"]["operator"])

    @property
    def admin_token(self) -> str:
        return str(self.state["tokens"]["admin"])

    @property
    def api_ca(self) -> str:
        """The API server's certificate: it serves HTTPS only."""
        return str(self.state["apiCA"])

    @property
    def node_names(self) -> list[str]:
        return list(self.state["nodes"])

    def start(self, timeout: float | None = None) -> dict[str, Any]:
        """Start the cluster and wait for its ready line (by default 180 s, plus 30 ms a node past 6,000 nodes)."""
        timeout = timeout if timeout is not None else 180.0 + 0.03 * max(0, self.nodes - 6000)
        profile = os.environ.get("REPAIRBOT_BENCH_PROFILE_CLUSTER")
        command = [
            sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []), str(HERE / "sandbox_server.py"),
            "--state-dir", str(self.root / "state"), "--nodes", str(self.nodes),
        ]  # fmt: skip
        if self.termination_seconds is not None:
            command += ["--pod-termination-seconds", str(self.termination_seconds)]
        with self._log.open("w") as log:
            self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self._process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if not line:
                raise RuntimeError(f"the cluster process exited before it was ready:\n{_tail(self._log)}")
            if line.startswith("{"):
                self.state = json.loads(line)
                if self.state.get("ready"):
                    return self.state
        raise TimeoutError(f"the cluster ({self.nodes} nodes) was not ready within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def requests(self) -> dict[str, Any]:
        """What the API server has served since the last reset: ``{"total": n, "requests": [rows]}``."""
        response = httpx.get(f"{self.state['api']}/_sim/requests", timeout=30, verify=self.state["apiCA"])
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def reset_requests(self) -> None:
        httpx.delete(f"{self.state['api']}/_sim/requests", timeout=30, verify=self.state["apiCA"]).raise_for_status()

    def __enter__(self) -> ClusterProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def requests_by_client(counts: dict[str, Any]) -> dict[str, int]:
    """Request totals per client product: ``repairbot-bench``, ``OpenAPI-Generator`` (operator writes), ``kopf``."""
    totals: dict[str, int] = {}
    for row in counts["requests"]:
        product = row["client"].split("/", 1)[0]
        totals[product] = totals.get(product, 0) + row["count"]
    return totals


def operator_requests(counts: dict[str, Any]) -> list[dict[str, Any]]:
    """The operator's rows (everything not sent by the benchmark itself), largest first."""
    rows = [r for r in counts["requests"] if not r["client"].startswith(BENCH_AGENT)]
    return sorted(rows, key=lambda r: -r["count"])


class OperatorProcess:
    """``repairbot operator`` as its own process (no leader election, no metrics port)."""

    def __init__(self, root: Path, kubeconfig: str, policy: Path | None) -> None:
        self.root = root
        self.kubeconfig = kubeconfig
        self.policy = policy
        self.started_at = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = root / "operator.log"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> OperatorProcess:
        env = {**os.environ, "POD_NAMESPACE": "repairbot"}
        command = [
            sys.executable, "-m", "repairbot.cli", "operator", "--kubeconfig", self.kubeconfig,
            "--metrics-port", "0", "--health-port", "0", "--no-leader-election",
        ]  # fmt: skip
        if self.policy is not None:
            command += ["--policy", str(self.policy)]
        with self._log.open("w") as log:
            self._process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.started_at = time.monotonic()
        return self

    def wait_ready(self, cluster: ClusterProcess, timeout: float = 120.0, quiet: float = 0.15) -> float:
        """Until kopf watches nodes and GPURepairs and the initial listing is digested (CPU below
        ``quiet`` of a core over a second). Returns the seconds from start to ready."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the operator exited with {self._process.returncode}:\n{_tail(self._log)}")
            watched = {r["resource"] for r in cluster.requests()["requests"] if r["verb"] == "watch"
                       and r["client"].startswith("kopf")}  # fmt: skip
            if {"nodes", "gpurepairs"} <= watched:
                break
            time.sleep(0.2)
        else:
            raise TimeoutError(f"the operator did not watch nodes and gpurepairs within {timeout:.0f} s")
        meter = ProcessMeter(self.pid)
        while time.monotonic() < deadline:
            meter.reset()
            time.sleep(1.0)
            if meter.cpu_per_wall() < quiet:
                return time.monotonic() - self.started_at
        raise TimeoutError(f"the operator did not settle within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class ProcessMeter:
    """CPU seconds per wall second of one process since :meth:`reset`, and its RSS (now and peak)."""

    pid: int
    _cpu0: float = 0.0
    _wall0: float = 0.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._cpu0, self._wall0 = cpu_seconds(self.pid), time.monotonic()

    def cpu_per_wall(self) -> float:
        wall = time.monotonic() - self._wall0
        return (cpu_seconds(self.pid) - self._cpu0) / wall if wall > 0 else 0.0

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    def peak_rss_mib(self) -> float:
        return rss_mib(self.pid, field="VmHWM:")


class RawWatch:
    """One watch stream over raw HTTP (no client-side model objects), each event handed to ``on_event``.

    Starts with a list (each item handed over as ``ADDED``), then follows from its resourceVersion.
    """

    def __init__(
        self, api_url: str, path: str, on_event: Callable[[str, dict[str, Any]], None], *, token: str, ca: str
    ) -> None:
        self.api_url = api_url
        self.ca = ca
        self.path = path
        self.on_event = on_event
        self._stop = threading.Event()
        self._headers = {"User-Agent": f"{BENCH_AGENT}-observer/1", "Authorization": f"Bearer {token}"}

    def start(self) -> RawWatch:
        with httpx.Client(base_url=self.api_url, headers=self._headers, timeout=60, verify=self.ca) as http:
            listing = http.get(self.path).raise_for_status().json()
        for item in listing["items"]:
            self.on_event("ADDED", item)
        version = listing["metadata"]["resourceVersion"]
        threading.Thread(target=self._follow, args=(version,), name=f"watch {self.path}", daemon=True).start()
        return self

    def _follow(self, version: str) -> None:
        params = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true"}
        timeout = httpx.Timeout(10, read=None)
        with httpx.Client(base_url=self.api_url, headers=self._headers, timeout=timeout, verify=self.ca) as http:
            while not self._stop.is_set():
                try:
                    with http.stream("GET", self.path, params=params) as stream:
                        for line in stream.iter_lines():
                            if self._stop.is_set():
                                return
                            if not line:
                                continue
                            event = json.loads(line)
                            params["resourceVersion"] = event["object"]["metadata"]["resourceVersion"]
                            if event["type"] in ("ADDED", "MODIFIED"):
                                self.on_event(event["type"], event["object"])
                except httpx.HTTPError:
                    if not self._stop.is_set():
                        time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


class NodeMarks:
    """Note when each node is first seen cordoned *and* tainted by RepairBot (a watch on nodes)."""

    def __init__(self, api_url: str, *, token: str, ca: str) -> None:
        self.marked: dict[str, float] = {}
        """node → wall time (``time.time()``) the watch delivered it cordoned and tainted."""
        self._changed = threading.Condition()
        self._watch = RawWatch(api_url, "/api/v1/nodes", self._observe, token=token, ca=ca)

    def start(self) -> NodeMarks:
        self._watch.start()
        with self._changed:
            self.marked = dict.fromkeys(self.marked, 0.0)  # marked before the benchmark began
        return self

    def _observe(self, _: str, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        if name in self.marked:
            return
        spec = node.get("spec") or {}
        tainted = any(t.get("key") == TAINT_UNHEALTHY for t in spec.get("taints") or [])
        if spec.get("unschedulable") and tainted:
            with self._changed:
                self.marked[name] = time.time()
                self._changed.notify_all()

    def wait_for(self, names: list[str], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: all(n in self.marked for n in names), timeout)

    def stop(self) -> None:
        self._watch.stop()
