"""The one small protocol every detector implements.

A detector turns one raw signal (NVML, the kernel log, InfiniBand sysfs, …)
into :class:`~repairbot.model.Finding` objects. It never cordons, drains or
talks to Kubernetes: the agent collects findings and hands them to intake.

Two shapes exist because signals arrive two ways:

* :class:`Detector` — polled every interval (counters, link states, GPU count);
* :class:`EventSource` — pushes findings as they happen (NVML Xid events,
  ``/dev/kmsg``), so the agent runs it in a thread of its own and a fatal Xid
  is acted on within milliseconds, not at the next poll.

A signal that cannot be read (no permission, missing file, exporter down) is
reported through :class:`SignalHealth` as ``unknown``/``error`` — never as a
finding, because an unreadable counter is not a broken GPU.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from repairbot.model import Finding


class SignalState(enum.StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # could not be read; says nothing about the hardware
    ERROR = "error"  # the detector itself failed unexpectedly


@dataclass(slots=True)
class SignalHealth:
    """Whether a detector could read its signal, for agent metrics and ``--once`` reports."""

    detector: str
    state: SignalState = SignalState.OK
    message: str = ""


@dataclass(slots=True)
class DetectorReport:
    """What one poll saw: findings, whether the signal was readable, and raw observations.

    ``observations`` holds the values behind the verdict (counters, link
    states, per-GPU readings) so ``repairbot agent --once --json`` can show an
    SRE everything, not only what was judged bad.
    """

    detector: str
    findings: list[Finding] = field(default_factory=list)
    health: SignalHealth | None = None
    observations: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.health is None:
            self.health = SignalHealth(self.detector)


@runtime_checkable
class Detector(Protocol):
    """A polled signal."""

    name: str

    def poll(self) -> DetectorReport:
        """Read the signal once. Must not raise for unreadable input: report it in ``health``."""
        ...


@runtime_checkable
class EventSource(Protocol):
    """A pushed signal, consumed from a dedicated thread."""

    name: str

    def events(self, stop: threading.Event) -> Iterator[Finding]:
        """Yield findings as they happen until ``stop`` is set; check ``stop`` at least every second."""
        ...


@runtime_checkable
class ResumableSource(Protocol):
    """An event source whose log outlives the agent (the kernel log): a new agent reads on where the last stopped.

    ``marks`` are ``(boot id, position)`` pairs of records already reported (kept as evidence on the node's
    GPURepairs and in the agent's state file); the source reports only what comes after the highest mark of
    the current boot. Such a source also sets ``caught_up`` once it has read what was logged before it
    started: until then the agent cannot call the node healthy.
    """

    caught_up: bool

    def resume_after(self, marks: Iterable[tuple[str, int]]) -> None: ...
