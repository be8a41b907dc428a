"""Fixtures for the operator's own actions: BMCs (ours and sushy-tools'), nodes that point at them.

sushy-tools' ``sushy-emulator --fake`` is OpenStack's Redfish emulator, an
implementation we did not write: tests against it catch what our own sim would
agree with us about. Its tests skip cleanly where it is not installed.
"""

from __future__ import annotations

import base64
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from child_servers import ChildServers, binary_or_skip, free_port, start_prometheus, venv_binary_or_skip
from kubernetes import client

from repairbot.kube.client import api_client
from repairbot.model import Action
from repairbot.operator.bmc_credentials import KubeBmcCredentials
from repairbot.remediations.action import ActionOutcome, BmcContext
from repairbot.remediations.redfish import (
    ANNOTATION_BMC_ADDRESS,
    ANNOTATION_BMC_SECRET,
    ANNOTATION_BMC_SYSTEM,
    BmcConnector,
    RedfishTiming,
)
from repairbot.remediations.registry import REGISTRY
from repairbot_sim.redfish import RedfishSim

BMC_USER = "admin"
BMC_PASSWORD = "s3cret-bmc"
FAST = RedfishTiming(
    attempts=4, first_backoff=0.01, max_backoff=0.05, request_timeout=5, power_off_timeout=1, poll_interval=0.05
)
"""Retries and polls in milliseconds: the tests prove the bounds, not the production pacing."""


@pytest.fixture
def unused_local_url() -> str:
    """An http URL on loopback where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
async def redfish_sim() -> AsyncIterator[RedfishSim]:
    """Our BMC emulator on the test's event loop, credentials ``BMC_USER``/``BMC_PASSWORD``, no systems yet."""
    sim = RedfishSim(username=BMC_USER, password=BMC_PASSWORD)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def self_signed_tls(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate (made with the openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "bmc.crt", tmp_path / "bmc.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class BmcFleet:
    """Nodes and BMC Secrets in the emulated API server, and a :class:`BmcConnector` that reads them."""

    server: Any
    bmc: BmcConnector

    def power_cycle(self, node: str) -> ActionOutcome:
        """The registered power-cycle remediation, run as the operator runs it."""
        remediation = REGISTRY.bmc(Action.POWER_CYCLE)
        assert remediation is not None
        return remediation.run(BmcContext(node, self.bmc))

    def add_node(
        self,
        name: str,
        bmc_url: str,
        *,
        system: str | None = None,
        username: str = BMC_USER,
        password: str = BMC_PASSWORD,
        secret: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> str:
        """A GPU node annotated with its BMC, and its Secret ``repairbot/bmc-<name>`` unless ``secret`` names one."""
        secret_ref = secret or f"repairbot/bmc-{name}"
        annotations = {ANNOTATION_BMC_ADDRESS: bmc_url, ANNOTATION_BMC_SECRET: secret_ref, **(extra or {})}
        if system is not None:
            annotations[ANNOTATION_BMC_SYSTEM] = system
        node = _gpu_node(name)
        node["metadata"]["annotations"] = annotations
        self.server.create_object(node)
        if secret is None:
            self.server.create_object(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": {"name": f"bmc-{name}", "namespace": "repairbot"},
                    "data": {"username": _b64(username), "password": _b64(password)},
                }
            )
        return secret_ref


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _gpu_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.present": "true"}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


@pytest.fixture
def bmc_fleet(apiserver: Any) -> Iterator[BmcFleet]:
    api: client.ApiClient = api_client(str(apiserver.kubeconfig))
    try:
        yield BmcFleet(apiserver.server, BmcConnector(KubeBmcCredentials(api), timing=FAST))
    finally:
        api.close()


# --------------------------------------------------------------------------- sushy-tools


_ACCESS_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*([A-Z]+) (\S+) HTTP/[0-9.]+(?:\x1b\[[0-9;]*m)*" (\d{3})')


@dataclass(frozen=True)
class SushyEmulator:
    url: str
    system_ids: tuple[str, ...]
    log_path: Path

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request so far, from the emulator's access log."""
        found = _ACCESS_LINE.findall(self.log_path.read_text(errors="replace"))
        return [(method, path, int(status)) for method, path, status in found]


SushyFactory = Callable[..., SushyEmulator]


def _bcrypt_line(username: str, password: str) -> str:
    bcrypt = pytest.importorskip("bcrypt")
    return f"{username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"


@pytest.fixture
def sushy_emulator(tmp_path: Path) -> Iterator[SushyFactory]:
    """Start ``sushy-emulator --fake`` with N fake systems (powered On) behind basic auth; stopped after the test."""
    binary = venv_binary_or_skip("sushy-emulator", "sushy-tools")

    def start(systems: int = 1) -> SushyEmulator:
        home = tmp_path / f"sushy-{len(children.started)}"
        home.mkdir()
        (home / "htpasswd").write_text(_bcrypt_line(BMC_USER, BMC_PASSWORD))
        ids = tuple(f"0000000{index}-9e44-4fa7-8e91-f3527a1ef094" for index in range(systems))
        fakes = [
            {"uuid": uid, "name": f"fake-{index}", "power_state": "On", "external_notifier": False, "nics": []}
            for index, uid in enumerate(ids)
        ]
        config = home / "emulator.conf"
        config.write_text(
            f"SUSHY_EMULATOR_STATE_DIR = {str(home / 'state')!r}\n"
            f"SUSHY_EMULATOR_AUTH_FILE = {str(home / 'htpasswd')!r}\n"
            f"SUSHY_EMULATOR_FAKE_SYSTEMS = {fakes!r}\n"
        )
        port = free_port()
        command = [binary, "--config", str(config), "--fake", "-i", "127.0.0.1", "-p", str(port)]
        url = f"http://127.0.0.1:{port}"
        log = children.start(command, home, ready_url=f"{url}/redfish/v1/")
        return SushyEmulator(url, ids, log)

    with ChildServers() as children:
        yield start


# --------------------------------------------------------------------------- Prometheus (Debian package)


PrometheusFactory = Callable[[list[str]], str]


@pytest.fixture
def real_prometheus(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Start the real ``prometheus`` scraping ``targets`` (host:port) every second; returns its URL.

    Skips where the binary is absent (Debian: ``apt-get install -y prometheus``).
    The packaged service is not used: this server runs on a free loopback port
    with a throw-away TSDB under the test's tmp_path.
    """
    binary_or_skip("prometheus")

    def start(targets: list[str]) -> str:
        config = (
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs: [{{job_name: dcgm, static_configs: [{{targets: {targets!r}}}]}}]\n"
        )
        return start_prometheus(children, tmp_path / f"prometheus-{len(children.started)}", config)

    with ChildServers() as children:
        yield start
