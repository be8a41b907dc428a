"""InfiniBand port health from Linux sysfs (REFERENCE §5).

``<sysfs>/class/infiniband/<dev>/ports/<n>/`` holds the port's ``state``
(``4: ACTIVE``), ``phys_state`` (``5: LinkUp``), ``rate``
(``400 Gb/sec (4X NDR)``) and a ``counters/`` directory. A GPU node whose
fabric port is down or flapping cannot run multi-node jobs even though every
GPU is fine, so these findings keep the node out of service but ask for no
node action: a reboot does not fix a cable, a switch port or the Subnet Manager.

Rules (all counters are judged as deltas over time, never absolute values,
because they only reset with the port or with ``perfquery -R``):

* port not ``ACTIVE`` + ``LinkUp`` → ``ib-port-down`` (notify, critical);
* ``link_downed`` rising by ``flap_threshold`` within ``flap_window_s`` → ``ib-flap``;
* error counters rising faster than their per-minute limit → ``ib-errors``;
* rate below the configured rate, or below the first rate seen → ``ib-rate-degraded``.

Several ports produce one finding per code; the evidence is keyed by port
(``mlx5_0/1``) so intake can merge repeats without losing a port.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from repairbot.detectors.base import DetectorReport, SignalHealth, SignalState
from repairbot.model import Action, Finding, Severity

STATE_ACTIVE = 4
PHYS_STATE_LINK_UP = 5

# Per-minute growth tolerated before ``ib-errors``. symbol_error may tick a little after
# link-up; the integrity/overrun counters should never move.
DEFAULT_ERROR_RATE_LIMITS: Mapping[str, float] = {
    "symbol_error": 10.0,
    "link_error_recovery": 1.0,
    "port_rcv_errors": 10.0,
    "port_rcv_remote_physical_errors": 10.0,
    "local_link_integrity_errors": 1.0,
    "excessive_buffer_overrun_errors": 1.0,
}

# Counter widths the kernel decodes; a counter at 2**width - 1 is pegged and says nothing more.
COUNTER_BITS = {
    "symbol_error": 16,
    "link_error_recovery": 8,
    "link_downed": 8,
    "port_rcv_errors": 16,
    "port_rcv_remote_physical_errors": 16,
    "local_link_integrity_errors": 4,
    "excessive_buffer_overrun_errors": 4,
}

_FINDING_TEXT = {
    "ib-port-down": ("InfiniBand port(s) not ACTIVE/LinkUp", Severity.CRITICAL),
    "ib-flap": ("InfiniBand port(s) flapping", Severity.CRITICAL),
    "ib-errors": ("InfiniBand error counters rising", Severity.WARNING),
    "ib-rate-degraded": ("InfiniBand port(s) running below their rate", Severity.WARNING),
}

_NUMBERED = re.compile(r"^\s*(\d+)\s*:\s*(.*?)\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*Gb/sec")


def parse_numbered_state(text: str) -> tuple[int | None, str]:
    """``"4: ACTIVE"`` → ``(4, "ACTIVE")``; anything else → ``(None, text)``."""
    match = _NUMBERED.match(text)
    if not match:
        return None, text.strip()
    return int(match.group(1)), match.group(2)


def parse_rate_gbps(text: str) -> float | None:
    """``"400 Gb/sec (4X NDR)"`` → ``400.0``."""
    match = _RATE.match(text)
    return float(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class PortReading:
    """One port as read from sysfs in one poll."""

    name: str  # "mlx5_0/1"
    state: str
    state_code: int | None
    phys_state: str
    phys_state_code: int | None
    rate_gbps: float | None
    rate: str
    link_layer: str
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return self.state_code == STATE_ACTIVE and self.phys_state_code == PHYS_STATE_LINK_UP


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def read_ports(sysfs_root: Path) -> list[PortReading] | None:
    """Every port under ``<root>/class/infiniband``; ``None`` when the tree is absent."""
    base = sysfs_root / "class" / "infiniband"
    if not base.is_dir():
        return None
    ports = []
    for device in sorted(base.iterdir()):
        for port in sorted((device / "ports").glob("*")):
            state_code, state = parse_numbered_state(_read(port / "state"))
            phys_code, phys = parse_numbered_state(_read(port / "phys_state"))
            rate = _read(port / "rate")
            counters = {}
            for counter in sorted((port / "counters").glob("*")):
                text = _read(counter)
                if text.isdigit():
                    counters[counter.name] = int(text)
            ports.append(
                PortReading(
                    name=f"{device.name}/{port.name}",
                    state=state,
                    state_code=state_code,
                    phys_state=phys,
                    phys_state_code=phys_code,
                    rate_gbps=parse_rate_gbps(rate),
                    rate=rate,
                    link_layer=_read(port / "link_layer"),
                    counters=counters,
                )
            )
    return ports


class InfinibandDetector:
    """Polls InfiniBand ports; see the module docstring for the rules."""

    name = "infiniband"

    def __init__(
        self,
        sysfs_root: Path = Path("/sys"),
        *,
        clock: Callable[[], float] = time.monotonic,
        flap_threshold: int = 3,
        flap_window_s: float = 600.0,
        error_rate_limits: Mapping[str, float] | None = None,
        expected_rate_gbps: float | None = None,
        ports: Collection[str] | None = None,
    ) -> None:
        """``ports`` limits the check to named ports (``mlx5_0/1``) — e.g. to skip an unused RoCE port."""
        self._root = Path(sysfs_root)
        self._clock = clock
        self._flap_threshold = flap_threshold
        self._flap_window_s = flap_window_s
        self._limits = dict(DEFAULT_ERROR_RATE_LIMITS if error_rate_limits is None else error_rate_limits)
        self._expected_rate = expected_rate_gbps
        self._ports = set(ports) if ports is not None else None
        self._previous: dict[str, tuple[float, dict[str, int]]] = {}
        self._link_downs: dict[str, deque[tuple[float, int]]] = {}
        self._first_rate: dict[str, float] = {}

    def poll(self) -> DetectorReport:
        report = DetectorReport(self.name)
        ports = read_ports(self._root)
        if ports is None:
            report.health = SignalHealth(
                self.name, SignalState.UNKNOWN, f"no InfiniBand devices under {self._root}/class/infiniband"
            )
            return report
        if self._ports is not None:
            ports = [port for port in ports if port.name in self._ports]
        now = self._clock()
        evidence: dict[str, dict[str, str]] = {code: {} for code in _FINDING_TEXT}
        for port in ports:
            seen: dict[str, object] = {
                "state": f"{port.state_code}: {port.state}",
                "phys_state": f"{port.phys_state_code}: {port.phys_state}",
                "rate": port.rate,
                "link_layer": port.link_layer,
                "counters": port.counters,
            }
            report.observations[port.name] = seen
            if not port.up:
                evidence["ib-port-down"][port.name] = f"state {port.state_code}: {port.state}, " + (
                    f"phys_state {port.phys_state_code}: {port.phys_state}"
                )
            flaps = self._flaps(port, now)
            seen["link_downed_in_window"] = flaps
            if flaps >= self._flap_threshold:
                evidence["ib-flap"][port.name] = f"link_downed +{flaps} within {self._flap_window_s:.0f}s"
            rates = self._error_rates(port, now)
            seen["errors_per_minute"] = rates
            too_fast = {name: rate for name, rate in rates.items() if rate > self._limits.get(name, float("inf"))}
            if too_fast:
                evidence["ib-errors"][port.name] = ", ".join(
                    f"{name} {rate:.1f}/min > {self._limits[name]:g}/min" for name, rate in sorted(too_fast.items())
                )
            slower = self._rate_shortfall(port)
            if slower:
                evidence["ib-rate-degraded"][port.name] = slower
        report.findings = [self._finding(code, per_port) for code, per_port in evidence.items() if per_port]
        return report

    def _flaps(self, port: PortReading, now: float) -> int:
        """``link_downed`` increments inside the flap window (0 on the first sample)."""
        value = port.counters.get("link_downed")
        history = self._link_downs.setdefault(port.name, deque())
        if value is None:
            return 0
        history.append((now, value))
        while history and now - history[0][0] > self._flap_window_s:
            history.popleft()
        increments = 0
        for (_, before), (_, after) in zip(history, list(history)[1:], strict=False):
            increments += max(after - before, 0)  # a drop means the counter was reset
        return increments

    def _error_rates(self, port: PortReading, now: float) -> dict[str, float]:
        previous = self._previous.get(port.name)
        self._previous[port.name] = (now, dict(port.counters))
        if previous is None or now <= previous[0]:
            return {}
        minutes = (now - previous[0]) / 60.0
        rates = {}
        for name in self._limits:
            before, after = previous[1].get(name), port.counters.get(name)
            if before is None or after is None or after < before:
                continue
            if name in COUNTER_BITS and before == 2 ** COUNTER_BITS[name] - 1:
                continue  # pegged at its maximum: no information left
            rates[name] = (after - before) / minutes
        return rates

    def _rate_shortfall(self, port: PortReading) -> str:
        """Why this port's rate is low ('' when it is not, or when the port is down)."""
        if not port.up or port.rate_gbps is None:
            return ""
        reference = self._expected_rate or self._first_rate.setdefault(port.name, port.rate_gbps)
        source = "configured" if self._expected_rate else "first seen"
        if port.rate_gbps < reference:
            return f"{port.rate} below {reference:g} Gb/sec ({source})"
        return ""

    @staticmethod
    def _finding(code: str, per_port: dict[str, str]) -> Finding:
        names = ", ".join(sorted(per_port))
        message, severity = _FINDING_TEXT[code]
        details = "; ".join(f"{name}: {why}" for name, why in sorted(per_port.items()))
        return Finding(
            code=code,
            message=f"{message}: {names} ({details})",
            action=Action.NOTIFY,
            severity=severity,
            evidence=dict(per_port),
        )
