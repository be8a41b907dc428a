"""``repairbot demo``: a bad afternoon on a 16-node GPU pod, repaired while you watch — and checked.

The sandbox comes up (emulated API server, simulated GPU nodes with their
agents, the operator, the webhook, fake Slack and Jira); then faults arrive on
a schedule (:mod:`repairbot_sim.demo_scenarios`): an Xid 79, a double-bit ECC
error, an application's Xid 13, memory that cannot be remapped, a flapping
InfiniBand port, a Grafana alert, a node a human had cordoned, and finally a
storm on one leaf switch. A live view (or plain lines, for logs) shows the
nodes, the GPURepairs and every step; a summary closes the show, and every
scenario is checked (:mod:`repairbot_sim.demo_expectations`): the exit code is
0 only if all of them ended as they must, so the demo is an end-to-end test too.

Faults go in through the doors a real fault or a real client uses: the
sandbox's control endpoint (as ``repairbot inject``), the webhook over HTTP
with its bearer token, the Kubernetes API for the human's cordon. What is
shown is read from the API server, the fake Slack's ``/_recorded`` and the
fake Jira's REST API.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import httpx
from rich.console import Console

from repairbot.model import API_VERSION, KIND
from repairbot_sim.demo_expectations import (
    Observation,
    check_all,
    exit_code,
    notifications_caught_up,
    phase_of,
    settled,
)
from repairbot_sim.demo_feed import DemoEvent, DemoView, EventKind, Frame, HistoryFeed, SlackFeed, now_event
from repairbot_sim.demo_live import LiveView
from repairbot_sim.demo_plain import PlainView
from repairbot_sim.demo_scenarios import MIN_NODES, Injection, Kind, Scenario, demo_scenarios, grafana_notification
from repairbot_sim.demo_slack import DEMO_SRE, canary_done, press_resume_storm, storm_message
from repairbot_sim.demo_summary import explore_commands, render_summary, summary_rows
from repairbot_sim.host import ActionTimes
from repairbot_sim.sandbox import Sandbox, SandboxConfig

DEMO_POLICY = Path(__file__).resolve().parent / "data" / "policy-demo.yaml"
DEADLINE = 150.0
"""Seconds of wall time (at --speed 1) after which the show ends whatever it waits for: CI must not hang."""
TICK = 0.25
REBOOT_WATCH = 5.0
"""After the storm, watch this long (at --speed 1; a simulated reboot takes 4 s) to be sure no reboot follows."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    state_dir: Path = Path("rb-state")
    nodes: int = MIN_NODES
    live: bool | None = None  # None: live when stdout is a terminal
    keep: bool = False
    speed: float = 1.0
    policy_path: Path | None = None
    rolling_restart: bool = False  # restart every agent while repairs are in flight, as a DaemonSet rollout does


def action_times(speed: float) -> ActionTimes:
    """How long simulated actions take: a GPU reset 1 s, a reboot 4 s at --speed 1 (minutes on real iron)."""
    return ActionTimes(gpu_reset=1.0 / speed, driver_reload=2.0 / speed, reboot=4.0 / speed)


class _LogTap(logging.Handler):
    """RepairBot's warnings (the breaker opening, say) go to the event log, not across the live view."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[logging.LogRecord] = deque(maxlen=200)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("repairbot") or record.levelno >= logging.ERROR:
            self.records.append(record)


class Show:
    """One run of the demo: performs the injections, watches the cluster, feeds the view."""

    def __init__(
        self, sandbox: Sandbox, state: dict[str, Any], view: DemoView, options: DemoOptions, tap: _LogTap
    ) -> None:
        self.sandbox, self.state, self.view, self.options, self.tap = sandbox, state, view, options, tap
        self.http = httpx.AsyncClient(timeout=10)
        self.started = time.monotonic()
        self.act = "starting"
        self.history, self.slack_feed = HistoryFeed(), SlackFeed()
        self.slack_recorded: list[dict[str, Any]] = []
        self._ticks = 0
        self._announced: set[str] = set()
        self.boots_before: dict[str, str] = {}
        self.storm_snapshot: Observation | None = None

    @property
    def deadline(self) -> float:
        return self.started + DEADLINE / max(self.options.speed, 1.0)

    def repairs(self) -> list[dict[str, Any]]:
        return self.sandbox.api.list_objects(API_VERSION, KIND)

    def nodes(self) -> list[dict[str, Any]]:
        return self.sandbox.api.list_objects("v1", "Node")

    def say(self, text: str, *, node: str = "", kind: EventKind = EventKind.NOTE, bad: bool = False) -> None:
        self.view.event(now_event(text, node=node, kind=kind, bad=bad))

    def begin(self, act: str, detail: str = "") -> None:
        self.act = act
        self.say(f"{act}: {detail}" if detail else act)

    async def tick(self) -> None:
        """Look at the cluster once: new history steps, Slack messages and warnings become events; redraw."""
        self._ticks += 1
        if self._ticks % 4 == 0:
            await self.read_slack()
        repairs = self.repairs()
        events: list[DemoEvent] = self.history.update(repairs) + self.slack_feed.update(self.slack_recorded)
        while self.tap.records:
            record = self.tap.records.popleft()
            events.append(now_event(f"{record.levelname.lower()}: {record.getMessage()}", kind=EventKind.LOG))
        for event in events:
            self.view.event(event)
        self.view.show(Frame(tuple(self.nodes()), tuple(repairs), self.act, time.monotonic() - self.started))

    async def watch(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as error:  # a missed frame is no reason to stop watching
                self.say(f"could not read the cluster: {type(error).__name__}: {error}", bad=True)
            await asyncio.sleep(TICK)

    async def run(self, scenarios: tuple[Scenario, ...]) -> None:
        """Play the scenarios while watching the cluster."""
        watcher = asyncio.create_task(self.watch())
        try:
            await self.play(scenarios)
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher

    async def read_slack(self) -> None:
        try:
            response = await self.http.get(f"{self.state['slack'].removesuffix('/').removesuffix('/api')}/_recorded")
            self.slack_recorded = response.json()
        except (httpx.HTTPError, ValueError):
            pass  # the next tick reads it again

    async def boot_ids(self) -> dict[str, str]:
        response = await self.http.get(f"{self.state['control']}/nodes")
        response.raise_for_status()
        return {name: str(info.get("bootId", "")) for name, info in response.json().items()}

    async def until(self, done: Callable[[], bool], seconds: float) -> bool:
        """Wait (watching) until ``done()``, ``seconds`` (at --speed 1), or the show's deadline."""
        end = min(time.monotonic() + seconds / self.options.speed, self.deadline)
        while not done():
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(TICK)
        return True

    # ------------------------------------------------------------ injections

    async def perform(self, injection: Injection, scenario: Scenario) -> None:
        expect = "" if scenario.key in self._announced else f" — expect: {scenario.expected}"
        self._announced.add(scenario.key)
        self.say(f"{injection.describe()}{expect}", node=injection.node, kind=EventKind.INJECT)
        try:
            if injection.kind is Kind.CORDON:
                await self._cordon(injection.node)
            elif injection.kind is Kind.JOB_DONE:
                await self._finish_job(injection.fault)
            elif injection.kind is Kind.ALERT:
                await self._alert(injection)
            elif injection.persistent:
                self._break_for_good(injection)
            else:
                response = await self.http.post(
                    f"{self.state['control']}/nodes/{injection.node}/faults",
                    json={"fault": injection.fault, "gpu": injection.gpu},
                )
                if response.status_code != 202:
                    raise RuntimeError(response.json().get("error", response.text))
        except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as error:
            self.say(f"injection failed: {error}", node=injection.node, bad=True)

    async def restart_agents(self, batch: int = 4) -> None:
        """A DaemonSet rollout: every node's agent replaced, ``batch`` at a time (``maxUnavailable``).

        Nothing a repair does may notice beyond the gap: the new agents take back what the old ones knew.
        """
        names = [node["metadata"]["name"] for node in self.nodes() if node["metadata"]["name"] in self.state["nodes"]]
        self.begin("a rolling restart of every agent", f"{len(names)} agents, {batch} at a time")
        for first in range(0, len(names), batch):
            wave = names[first : first + batch]
            posts = [
                self.http.post(
                    f"{self.state['control']}/nodes/{name}/faults", json={"fault": "agent-restart"}, timeout=30
                )
                for name in wave
            ]
            for name, answer in zip(wave, await asyncio.gather(*posts, return_exceptions=True), strict=True):
                if isinstance(answer, BaseException) or answer.status_code != 202:
                    self.say(f"agent restart failed: {answer}", node=name, bad=True)
            await self.tick()

    async def _cordon(self, node: str) -> None:
        """What ``kubectl cordon`` sends."""
        async with httpx.AsyncClient(timeout=10, verify=self.state["apiCA"]) as kube:  # the API is HTTPS only
            response = await kube.patch(
                f"{self.state['api']}/api/v1/nodes/{node}",
                content=b'{"spec":{"unschedulable":true}}',
                headers={
                    "Content-Type": "application/strategic-merge-patch+json",
                    "Authorization": f"Bearer {self.state['tokens']['admin']}",  # a human's kubectl: cluster-admin
                },
            )
        response.raise_for_status()

    async def _finish_job(self, pod: str) -> None:
        """A finished job's pods go: what a training operator's ``cleanPodPolicy`` sends for its worker."""
        namespace, name = pod.split("/", 1)
        async with httpx.AsyncClient(timeout=10, verify=self.state["apiCA"]) as kube:
            response = await kube.delete(
                f"{self.state['api']}/api/v1/namespaces/{namespace}/pods/{name}",
                headers={"Authorization": f"Bearer {self.state['tokens']['admin']}"},
            )
        response.raise_for_status()

    async def _alert(self, injection: Injection) -> None:
        body = grafana_notification(
            injection.node, xid=injection.fault, gpu=injection.gpu, now=datetime.now(UTC),
            external_url="https://grafana.example/",
        )  # fmt: skip
        response = await self.http.post(
            f"{self.state['webhook']}/webhook/grafana",
            json=body,
            headers={"Authorization": f"Bearer {self.state['webhookToken']}"},
        )
        answer = response.json()
        opened = ", ".join(r.get("name", "?") for r in answer.get("repairs") or []) or "nothing"
        self.say(f"webhook answered {response.status_code}: {opened}", node=injection.node, kind=EventKind.INJECT)
        if response.status_code != 202:
            raise RuntimeError(f"webhook refused the alert: {response.text}")

    def _break_for_good(self, injection: Injection) -> None:
        """A fault that survives resets and reboots is the simulated machine's, not a request's: set it in-process."""
        agents = self.sandbox.agents
        if agents is None:
            raise RuntimeError("the sandbox runs no simulated nodes")
        agents.members[injection.node].node.inject(injection.fault, injection.gpu, persistent=True)

    # ------------------------------------------------------------ the acts

    async def play(self, scenarios: tuple[Scenario, ...]) -> None:
        speed = self.options.speed
        singles = [s for s in scenarios if not s.finale]
        self.begin("Act 1: faults arrive one by one", f"{len(singles)} scenarios, one injection every few seconds")
        start = time.monotonic()
        for injection, scenario in sorted(((i, s) for s in singles for i in s.injections), key=lambda p: p[0].at):
            await asyncio.sleep(max(0.0, start + injection.at / speed - time.monotonic()))
            await self.perform(injection, scenario)
        if self.options.rolling_restart:
            await self.restart_agents()
        self.begin("waiting for the repairs to finish")
        if not await self.until(partial(self.all_settled, singles), 120):
            self.say("some repairs did not settle in time", bad=True)
        for finale in (s for s in scenarios if s.finale):
            self.begin("Act 2: a storm", finale.title)
            for injection in finale.injections:
                await self.perform(injection, finale)
            if not await self.until(partial(self.all_settled, [finale]), 30):
                self.say("the storm's repairs were not all Blocked in time", bad=True)
            if self.options.rolling_restart:
                await self.restart_agents()
            self.begin("watching that nothing reboots")
            await self.until(lambda: False, REBOOT_WATCH)
            await self.resume_from_slack(finale)
        self.begin("waiting for Slack and Jira to catch up")
        await self.until(lambda: notifications_caught_up(self.repairs()), 20)
        self.begin("done")
        await self.read_slack()
        await self.tick()

    async def resume_from_slack(self, storm: Scenario) -> None:
        """Act 3 (:mod:`repairbot_sim.demo_slack`): the storm as it stands is kept for its check, then resumed."""
        await self.read_slack()
        self.storm_snapshot = Observation(
            repairs=tuple(self.repairs()), nodes={n["metadata"]["name"]: n for n in self.nodes()},
            boots_before=self.boots_before, boots_after=await self.boot_ids(), slack=tuple(self.slack_recorded),
        )  # fmt: skip
        slack = self.sandbox.slack
        if slack is not None:  # the storm's message shows its button once the dispatcher has written it
            await self.until(lambda: storm_message(self.repairs(), storm.nodes, slack) is not None, 20)
        message = storm_message(self.repairs(), storm.nodes, slack) if slack is not None else None
        if slack is None or message is None:
            self.say("the storm has no Slack message to resume it from", bad=True)
            return
        self.begin("Act 3: resumed from Slack", f"<@{DEMO_SRE}> presses Resume storm on the storm's message")
        status = await press_resume_storm(slack, message)
        self.say(f"Slack POST /slack/actions (signed block_actions) answered {status}", kind=EventKind.INJECT)
        if not await self.until(canary_done(self.repairs, storm.nodes), 40):
            self.say("the storm's canary did not come back in time", bad=True)

    def all_settled(self, scenarios: Sequence[Scenario]) -> bool:
        repairs = self.repairs()
        return all(settled(s, repairs) for s in scenarios)

    async def jira_statuses(self, keys: list[str]) -> dict[str, str]:
        jira = self.sandbox.jira
        if jira is None:
            return {}
        found: dict[str, str] = {}
        for key in keys:
            response = await self.http.get(
                f"{self.state['jira']}/rest/api/2/issue/{key}", auth=(jira.user, jira.password)
            )
            if response.status_code == 200:
                found[key] = str(response.json()["fields"]["status"]["name"])
        return found


def _view(options: DemoOptions, out: TextIO, console: Console) -> DemoView:
    live = options.live if options.live is not None else out.isatty()
    if live:
        return LiveView(console)
    return PlainView(out, datetime.now(UTC))


async def run_demo(options: DemoOptions, *, out: TextIO | None = None) -> int:
    """Play the demo; 0 if every scenario ended as expected, else 1."""
    stream = out or sys.stdout
    scenarios = demo_scenarios(options.nodes)
    console = Console(file=stream, width=None if stream.isatty() else 160)
    view = _view(options, stream, console)
    sandbox = Sandbox(
        SandboxConfig(
            state_dir=options.state_dir,
            nodes=options.nodes,
            action_times=action_times(options.speed),
            policy_path=options.policy_path or DEMO_POLICY,
        )
    )
    root = logging.getLogger()
    saved_handlers, tap = root.handlers[:], _LogTap()
    root.handlers = [tap]
    show: Show | None = None
    wall = time.monotonic()
    try:
        view.start()
        view.event(
            now_event(f"starting the sandbox: {options.nodes} simulated GPU nodes, operator, webhook, Slack, Jira")
        )
        try:
            state = await sandbox.start()
            show = Show(sandbox, state, view, options, tap)
            boots_before = show.boots_before = await show.boot_ids()
            show.say(f"sandbox up: {options.nodes} GPU nodes of 8 GPUs, API server {state['api']}")
            await show.run(scenarios)
        finally:
            view.stop()
        repairs = show.repairs()
        observation = Observation(
            repairs=tuple(repairs),
            nodes={n["metadata"]["name"]: n for n in show.nodes()},
            boots_before=boots_before,
            boots_after=await show.boot_ids(),
            slack=tuple(show.slack_recorded),
        )
        verdicts = check_all(scenarios, observation, before_resume=show.storm_snapshot)
        keys = [k for r in repairs if (k := ((r.get("status") or {}).get("jira") or {}).get("key"))]
        rows = summary_rows(repairs, show.slack_recorded, await show.jira_statuses(keys))
        quarantined = next((r["metadata"]["name"] for r in repairs if phase_of(r) == "Quarantined"), "")
        slack_base = state["slack"].removesuffix("/").removesuffix("/api") if options.keep else None
        console.print()
        render_summary(
            console, rows, verdicts,
            explore_commands(options.state_dir, kept=options.keep, slack_url=slack_base, quarantined=quarantined),
            kept=options.keep,
        )  # fmt: skip
        console.print(f"\ndemo wall time {time.monotonic() - wall:.1f} s")
        code = exit_code(verdicts)
        if options.keep:
            await _until_interrupted()
        return code
    finally:
        root.handlers = saved_handlers
        if show is not None:
            await show.http.aclose()
        await sandbox.stop()


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
