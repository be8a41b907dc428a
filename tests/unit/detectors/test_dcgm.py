"""DcgmExporterDetector against a tiny real HTTP server on 127.0.0.1 serving exposition text."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from repairbot.detectors.base import SignalState
from repairbot.detectors.dcgm import DcgmExporterDetector, parse_exposition
from repairbot.model import Action, Severity

UUID0 = "GPU-0b4f2a9e-1c11-4b71-9a41-7d1c2f1e0000"
UUID1 = "GPU-0b4f2a9e-1c11-4b71-9a41-7d1c2f1e0001"

# dcgm-exporter <= 4.5.x spells the host label "Hostname"; main since May 2026 spells it "hostname".
GPU0 = {"gpu": "0", "UUID": UUID0, "pci_bus_id": "00000000:18:00.0", "device": "nvidia0", "Hostname": "gpu-node-000"}
GPU1 = {"gpu": "1", "UUID": UUID1, "pci_bus_id": "00000000:2A:00.0", "device": "nvidia1", "hostname": "gpu-node-000"}
ELSEWHERE = {**GPU1, "hostname": "other-node"}


def series(name: str, value: float, labels: dict[str, str], **extra: str) -> str:
    rendered = ",".join(f'{key}="{text}"' for key, text in {**labels, **extra}.items())
    return f"{name}{{{rendered}}} {value:g}"


def exposition(*families: tuple[str, str, list[str]]) -> str:
    lines = []
    for name, kind, samples in families:
        lines += [f"# HELP {name} {name}", f"# TYPE {name} {kind}", *samples]
    return "\n".join(lines) + "\n"


def healthy(last_xid: int = 0) -> str:
    return exposition(
        (
            "DCGM_FI_DEV_GPU_TEMP",
            "gauge",
            [series("DCGM_FI_DEV_GPU_TEMP", 41, GPU0), series("DCGM_FI_DEV_GPU_TEMP", 43, GPU1)],
        ),
        ("DCGM_FI_DEV_XID_ERRORS", "gauge", [series("DCGM_FI_DEV_XID_ERRORS", last_xid, GPU0, err_code=str(last_xid))]),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", [series("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", 0, GPU0)]),
        ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", [series("DCGM_FI_DEV_ROW_REMAP_FAILURE", 0, GPU1)]),
    )


HEALTHY = healthy()
FAULTY = exposition(
    (
        "DCGM_EXP_XID_ERRORS_COUNT",
        "counter",
        [
            series("DCGM_EXP_XID_ERRORS_COUNT", 1, GPU0, xid="79"),
            series("DCGM_EXP_XID_ERRORS_COUNT", 2, ELSEWHERE, xid="48"),
        ],
    ),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", [series("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", 3, GPU1)]),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", [series("DCGM_FI_DEV_ROW_REMAP_FAILURE", 1, GPU0)]),
    (
        "DCGM_EXP_GPU_HEALTH_STATUS",
        "counter",
        [
            series(
                "DCGM_EXP_GPU_HEALTH_STATUS", 10, GPU1, health_watch="PCIE", health_error_code="DCGM_FR_PCI_REPLAY_RATE"
            ),
            series(
                "DCGM_EXP_GPU_HEALTH_STATUS",
                20,
                GPU0,
                health_watch="MEM",
                health_error_code="DCGM_FR_VOLATILE_DBE_DETECTED",
            ),
        ],
    ),
)


class Exporter:
    """What the fake exporter serves next."""

    def __init__(self) -> None:
        self.body = HEALTHY
        self.status = 200


@pytest.fixture
def exporter() -> Iterator[tuple[Exporter, str]]:
    state = Exporter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.body.encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_parse_strips_the_parsers_total_suffix_from_counters() -> None:
    names = {name for name, _, _ in parse_exposition(FAULTY)}
    assert "DCGM_EXP_XID_ERRORS_COUNT" in names and "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in names


def test_healthy_exporter(exporter: tuple[Exporter, str]) -> None:
    _, url = exporter
    report = DcgmExporterDetector(url, hostname="gpu-node-000").poll()
    assert report.findings == []
    assert report.health is not None and report.health.state is SignalState.OK
    assert report.observations["series"] == 5


def test_faults_with_both_host_label_spellings(exporter: tuple[Exporter, str]) -> None:
    state, url = exporter
    state.body = FAULTY
    report = DcgmExporterDetector(url, hostname="gpu-node-000").poll()
    found = {(f.code, f.gpu.uuid): f for f in report.findings}
    assert set(found) == {
        ("xid-79", UUID0),
        ("ecc-dbe", UUID1),
        ("row-remap-failure", UUID0),
        ("dcgm-health-warn", UUID1),
        ("dcgm-health-fail", UUID0),
    }  # the Xid 48 series belongs to other-node
    assert found["xid-79", UUID0].action is Action.REBOOT and found["xid-79", UUID0].xid == 79
    assert found["ecc-dbe", UUID1].gpu.pci == "0000:2a:00.0"
    assert found["dcgm-health-fail", UUID0].severity is Severity.CRITICAL


def test_last_xid_gauge_counts_only_changes(exporter: tuple[Exporter, str]) -> None:
    state, url = exporter
    detector = DcgmExporterDetector(url)
    state.body = healthy(last_xid=13)
    assert detector.poll().findings == []  # a stale value from before we started
    assert detector.poll().findings == []
    state.body = healthy(last_xid=95)
    (finding,) = detector.poll().findings
    assert (finding.code, finding.action) == ("xid-95", Action.GPU_RESET)


def test_exporter_down_is_unknown_never_a_finding() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    report = DcgmExporterDetector(f"http://127.0.0.1:{port}/metrics", timeout_s=0.5).poll()
    assert report.findings == []
    assert report.health is not None and report.health.state is SignalState.UNKNOWN


def test_exporter_error_status_is_unknown(exporter: tuple[Exporter, str]) -> None:
    state, url = exporter
    state.status = 503
    report = DcgmExporterDetector(url).poll()
    assert report.findings == [] and report.health is not None
    assert report.health.state is SignalState.UNKNOWN and "503" in report.health.message
