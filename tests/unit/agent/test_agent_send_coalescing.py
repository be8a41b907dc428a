"""The agent's send path: a burst's first finding goes at once, the rest wait for the send in flight and go as one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from repairbot.agent.runner import NodeAgent
from repairbot.model import Action, Finding, GpuRef


def xid(gpu: int) -> Finding:
    return Finding("xid-79", "Xid 79", Action.REBOOT, gpu=GpuRef(index=gpu), xid=79)


class SlowSink:
    """Intake whose first report is held in flight until ``release`` is set."""

    def __init__(self) -> None:
        self.reports: list[list[int]] = []
        self.in_flight = threading.Event()
        self.release = threading.Event()

    def report(self, node: str, findings: list[Finding]) -> None:
        if not self.reports:
            self.in_flight.set()
            assert self.release.wait(5)
        self.reports.append(sorted(f.gpu.index or 0 for f in findings))


def test_findings_arriving_during_an_in_flight_send_coalesce_into_one_next_write_and_none_is_lost() -> None:
    sink = SlowSink()
    later: list[tuple[float, Callable[[], None]]] = []
    agent = NodeAgent(node="gpu-1", detectors=[], sink=sink, send_spacing=0.5,
                      schedule=lambda delay, call: later.append((delay, call)))  # fmt: skip

    first = threading.Thread(target=agent.on_event, args=(xid(0),))
    first.start()
    assert sink.in_flight.wait(5)  # the first finding is sent at once
    others = [threading.Thread(target=agent.on_event, args=(xid(gpu),)) for gpu in (1, 2, 3, 4)]
    for thread in others:
        thread.start()
    time.sleep(0.1)  # they queue behind the send in flight
    sink.release.set()
    for thread in (first, *others):
        thread.join(5)

    assert sink.reports == [[0]]
    assert len(later) == 1 and 0 < later[0][0] <= 0.5  # one flush scheduled, within the spacing
    time.sleep(later[0][0])
    later[0][1]()  # the scheduler runs it when due
    assert sink.reports == [[0], [1, 2, 3, 4]]  # one write for the four, none lost


def test_a_finding_after_the_spacing_is_sent_at_once() -> None:
    sink = SlowSink()
    sink.release.set()
    agent = NodeAgent(node="gpu-1", detectors=[], sink=sink, send_spacing=0.05,
                      schedule=lambda delay, call: (_ for _ in ()).throw(AssertionError("held back")))  # fmt: skip
    agent.on_event(xid(0))
    time.sleep(0.1)
    agent.on_event(xid(1))
    assert sink.reports == [[0], [1]]
