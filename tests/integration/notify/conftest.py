"""Fixtures: the fake Slack and Jira servers on real sockets, on their own event loop in a thread.

The real slack-sdk and jira clients are synchronous; running the fakes on a
separate loop lets a test call the clients directly, exactly as the operator will.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from repairbot.model import Action, Finding, GpuRef, Phase, Severity
from repairbot.notify.view import RepairView
from repairbot_sim.jira import JiraSim
from repairbot_sim.slack import SlackSim

T = TypeVar("T")


class SimLoop:
    """An event loop in a daemon thread, for servers the synchronous clients talk to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="notify-sims", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def sim_loop() -> Iterator[SimLoop]:
    loop = SimLoop()
    yield loop
    loop.close()


@pytest.fixture
def slack_sim(sim_loop: SimLoop) -> Iterator[SlackSim]:
    sim = SlackSim()
    sim_loop.run(sim.start())
    yield sim
    sim_loop.run(sim.stop())


def _jira(sim_loop: SimLoop, *, cloud: bool) -> Iterator[JiraSim]:
    sim = JiraSim(cloud=cloud)
    sim_loop.run(sim.start())
    yield sim
    sim_loop.run(sim.stop())


@pytest.fixture
def make_jira(sim_loop: SimLoop) -> Iterator[Callable[..., JiraSim]]:
    """A fake Jira of the test's own shape (``JiraSim`` arguments: a project, ``cloud``), started and stopped."""
    started: list[JiraSim] = []

    def make(**options: Any) -> JiraSim:
        sim = JiraSim(**options)
        sim_loop.run(sim.start())
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim_loop.run(sim.stop())


@pytest.fixture
def jira_sim(sim_loop: SimLoop) -> Iterator[JiraSim]:
    yield from _jira(sim_loop, cloud=False)


@pytest.fixture
def jira_cloud_sim(sim_loop: SimLoop) -> Iterator[JiraSim]:
    yield from _jira(sim_loop, cloud=True)


@pytest.fixture
def view() -> RepairView:
    detected = datetime(2026, 1, 5, 3, 14, 0, tzinfo=UTC)
    finding = Finding(
        code="xid-79",
        message="NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
        action=Action.REBOOT,
        severity=Severity.FATAL,
        gpu=GpuRef(index=3, uuid="GPU-8f2c1d3e-0000-1111-2222-333344445555", pci="0000:3b:00.0"),
        xid=79,
        first_seen=detected,
        evidence={"serial": "1654321098765", "dashboardURL": "https://grafana.example/d/gpu?var-node=gpu-17"},
    )
    return RepairView(
        name="gpu-17-20260105031400",
        node="gpu-17",
        phase=Phase.CORDONED,
        reason="xid-79",
        findings=(finding,),
        action=Action.REBOOT,
        attempt=1,
        detected_at=detected,
        acknowledged_at=detected + timedelta(milliseconds=850),
        runbook_base_url="https://runbooks.example/gpu",
    )
