"""Real servers nobody here wrote (Prometheus, Alertmanager, sushy-tools) as child processes of one test.

Shared by the integration and end-to-end suites: pytest puts ``tests/`` on
``sys.path`` (its conftest), so both import this module by name.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ChildServers:
    """Servers run as child processes for one test: started until they answer, always stopped after."""

    def __init__(self) -> None:
        self.started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        self,
        command: list[str],
        home: Path,
        *,
        ready_url: str,
        timeout: float = 30,
        ready_with: dict[str, Any] | None = None,
    ) -> Path:
        """Run ``command`` in ``home`` until ``ready_url`` answers 200; returns the path of its output log.

        ``ready_with``: what the readiness request needs beyond the URL (httpx's ``verify``, ``auth``).
        """
        log_path = home / "server.log"
        log = log_path.open("wb")
        process = subprocess.Popen(command, cwd=home, stdout=log, stderr=subprocess.STDOUT)
        self.started.append((process, log))
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(ready_url, timeout=1, **(ready_with or {})).status_code == 200:
                    return log_path
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{Path(command[0]).name} did not start:\n{log_path.read_text()}")
            time.sleep(0.1)

    def __enter__(self) -> ChildServers:
        return self

    def __exit__(self, *_: object) -> None:
        for process, log in self.started:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            log.close()


def binary_or_skip(*names: str) -> str:
    """The first of ``names`` on PATH; skip the test (naming the Debian package) when none is."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"{' / '.join(names)} is not installed (Debian: apt-get install -y prometheus prometheus-alertmanager)")


def venv_binary_or_skip(name: str, package: str) -> str:
    """``name`` installed beside this Python (a PyPI wheel's console script) or on PATH; skip naming ``package``."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} (PyPI {package}) is not installed")
    return found


def start_prometheus(
    children: ChildServers,
    home: Path,
    config: str,
    *,
    web_config: str | None = None,
    ready_with: dict[str, Any] | None = None,
) -> str:
    """Debian's ``prometheus`` with ``config`` (YAML text), a throw-away TSDB and a free loopback port; its URL.

    ``web_config``: Prometheus's own ``--web.config.file`` (TLS, basic auth), which makes the URL https when it
    has ``tls_server_config``; ``ready_with`` then says how the readiness check gets in (CA, credentials).
    """
    binary = binary_or_skip("prometheus")
    home.mkdir(parents=True, exist_ok=True)
    (home / "prometheus.yml").write_text(config)
    port = free_port()
    scheme = "https" if web_config and "tls_server_config" in web_config else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    command = [
        binary, f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", f"--web.external-url={url}", "--log.level=warn",
    ]  # fmt: skip
    if web_config is not None:
        (home / "web.yml").write_text(web_config)
        command.append(f"--web.config.file={home / 'web.yml'}")
    children.start(command, home, ready_url=f"{url}/-/ready", ready_with=ready_with)
    return url


def start_alertmanager(
    children: ChildServers,
    home: Path,
    config: str,
    *,
    web_config: str | None = None,
    ready_with: dict[str, Any] | None = None,
) -> str:
    """Debian's ``prometheus-alertmanager`` (upstream ``alertmanager``), clustering off, on a free port; its URL.

    ``web_config``: its ``--web.config.file`` (TLS, basic auth), https when it has ``tls_server_config``;
    ``ready_with`` then says how the readiness check gets in (CA, credentials).
    """
    binary = binary_or_skip("prometheus-alertmanager", "alertmanager")
    home.mkdir(parents=True, exist_ok=True)
    (home / "alertmanager.yml").write_text(config)
    port = free_port()
    command = [
        binary, f"--config.file={home / 'alertmanager.yml'}", f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn",
    ]  # fmt: skip
    scheme = "https" if web_config and "tls_server_config" in web_config else "http"
    if web_config is not None:
        (home / "web.yml").write_text(web_config)
        command.append(f"--web.config.file={home / 'web.yml'}")
    url = f"{scheme}://127.0.0.1:{port}"
    children.start(command, home, ready_url=f"{url}/-/ready", ready_with=ready_with)
    return url


def self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (its own CA), and its key, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
