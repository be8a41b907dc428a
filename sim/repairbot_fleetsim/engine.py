"""The event loop and the fleet it runs: processes that sleep and wait, nodes that go out and come back.

A repair is written as a generator that yields what it waits for — a number of
seconds, or a :class:`Signal` (a breaker closing, a budget slot freeing, the
network team finishing) — in the manner of SimPy, in a few dozen lines of
our own. The :class:`Kernel` orders wake-ups by time and then by arrival, so a
run is deterministic for its seed.

The :class:`Fleet` is the world every strategy acts on: which nodes are out of
service and since when, how many are cordoned (the budget counts those), which
failures arrived while a node was already out (they are merged into the
running repair and come back afterwards unless the repair cured them), and the
:class:`~repairbot_fleetsim.ledger.Ledger` everything is written to.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace

from repairbot.machine import budget_exhausted
from repairbot.model import Action
from repairbot_fleetsim.config import DAY, SimConfig
from repairbot_fleetsim.failures import Failure, TrueFix, failure_rng, relapse
from repairbot_fleetsim.ledger import ActionTaken, Ledger, Resolution


class Signal:
    """Something processes wait for; fired once, it lets every waiter (and every later one) through."""

    __slots__ = ("_waiters", "fired")

    def __init__(self) -> None:
        self.fired = False
        self._waiters: list[Process] = []


Wait = float | Signal
Process = Generator[Wait, None, None]


class Kernel:
    """Discrete-event time: a heap of (wake-up time, arrival order, process)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Process]] = []
        self._order = itertools.count()

    def spawn(self, process: Process, delay: float = 0.0) -> None:
        heapq.heappush(self._queue, (self.now + max(0.0, delay), next(self._order), process))

    def fire(self, signal: Signal) -> None:
        if signal.fired:
            return
        signal.fired = True
        for waiter in signal._waiters:
            self.spawn(waiter)
        signal._waiters.clear()

    def fire_later(self, signal: Signal, delay: float) -> None:
        def later() -> Process:
            yield delay
            self.fire(signal)

        self.spawn(later())

    def run(self, until: float) -> None:
        """Step every process due before ``until``; whatever is still waiting then is left as it is."""
        while self._queue and self._queue[0][0] <= until:
            at, _, process = heapq.heappop(self._queue)
            self.now = at
            try:
                wait = next(process)
            except StopIteration:
                continue
            if isinstance(wait, Signal):
                if wait.fired:
                    self.spawn(process)
                else:
                    wait._waiters.append(process)
            else:
                self.spawn(process, wait)
        self.now = until


class Pulse:
    """A condition that changes now and then (budget, breaker): wait on :meth:`next`, wake on :meth:`pulse`."""

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._signal = Signal()

    def next(self) -> Signal:
        return self._signal

    def pulse(self) -> None:
        fired, self._signal = self._signal, Signal()
        self._kernel.fire(fired)


@dataclass
class NodeState:
    busy: bool = False  # an incident (repair, quarantine, network wait, maintenance) holds the node
    out_since: float | None = None
    cordoned: bool = False
    outcome: str = "unfinished"
    pending: list[Failure] = field(default_factory=list)
    reboots: list[float] = field(default_factory=list)
    acted_repairs: list[float] = field(default_factory=list)  # repairs that reached a rung (the lemon rule)


class Fleet:
    """The nodes under one strategy, and the bookkeeping every strategy shares."""

    def __init__(
        self, config: SimConfig, kernel: Kernel, ledger: Ledger, start: Callable[[Failure], Process] | None = None
    ) -> None:
        self.config = config
        self.timings = config.timings
        self.policy = config.policy
        self.kernel = kernel
        self.ledger = ledger
        self.budget = Pulse(kernel)
        self.start = start
        """The strategy's process for one failure; set once the strategy is bound to this fleet."""
        self._nodes: dict[int, NodeState] = {}
        self._cordoned = 0
        self._network: dict[str, Signal] = {}
        self._relapses: dict[str, int] = {}
        self._validation_luck: dict[str, Iterator[float]] = {}

    @property
    def now(self) -> float:
        return self.kernel.now

    def node(self, index: int) -> NodeState:
        return self._nodes.setdefault(index, NodeState())

    def arrive(self, failure: Failure, delay: float = 0.0) -> None:
        """Schedule ``failure`` ``delay`` seconds from now under this fleet's strategy."""
        assert self.start is not None, "bind a strategy to the fleet first"
        self.kernel.spawn(self.start(failure), delay)

    # --- incidents

    def begin(self, failure: Failure, *, broken: bool) -> bool:
        """Open an incident on the failure's node; False (merged) when one is already open there."""
        self.ledger.seen.append(failure.id)
        state = self.node(failure.node)
        if state.busy:
            state.pending.append(failure)
            self.ledger.merged += 1
            return False
        state.busy = True
        state.outcome = "unfinished"
        state.out_since = self.now if broken else None
        return True

    def cordon(self, failure: Failure, *, acknowledge: bool = True) -> None:
        """Take the node out of service (idempotent); the first cordon of a failure is its acknowledgement."""
        state = self.node(failure.node)
        if state.cordoned:
            return
        state.cordoned = True
        self._cordoned += 1
        if state.out_since is None:
            state.out_since = self.now
        if acknowledge:
            self.ledger.mtta.append(self.now - failure.at)

    def budget_allows(self) -> bool:
        """The policy's ``maxUnavailable`` arithmetic, the operator's own function."""
        return budget_exhausted(self._cordoned, self.config.nodes, "gpu-nodes", self.policy) is None

    def set_outcome(self, failure: Failure, outcome: str) -> None:
        self.node(failure.node).outcome = outcome

    def finish(
        self, failure: Failure, outcome: str, *, cured_by: tuple[Action, ...] = (), replaced: bool = False
    ) -> None:
        """The node is back in service. Failures merged meanwhile come back unless this incident cured them."""
        state = self.node(failure.node)
        if state.out_since is not None:
            self.ledger.intervals.append((failure.node, state.out_since, self.now, outcome))
        if state.cordoned:
            self._cordoned -= 1
            self.budget.pulse()
        self.ledger.resolutions.append(Resolution(failure.id, failure.category, outcome, failure.at, self.now))
        pending, state.pending = state.pending, []
        state.busy, state.cordoned, state.out_since = False, False, None
        for merged in pending:
            if not self._cured(merged, cured_by, replaced):
                self.arrive(replace(merged, at=self.now))

    def close(self) -> None:
        """At the horizon: record every node still out of service up to now."""
        for index, state in sorted(self._nodes.items()):
            if state.out_since is not None:
                self.ledger.intervals.append((index, state.out_since, self.now, state.outcome))

    def _cured(self, failure: Failure, cured_by: tuple[Action, ...], replaced: bool) -> bool:
        if failure.fix is TrueFix.FABRIC:
            signal = self._network.get(failure.fabric_key)
            return signal is not None and signal.fired
        if failure.fix in (TrueFix.NONE, TrueFix.MAINTENANCE) or replaced:
            return True
        return any(failure.fix.fixed_by(action) for action in cured_by)

    # --- the world's answers

    def network_repair(self, failure: Failure, *, paged_at: float) -> Signal:
        """The network team's repair of the failure's switch or cable; the first page starts it."""
        key = failure.fabric_key
        if key not in self._network:
            self._network[key] = Signal()
            self.kernel.fire_later(self._network[key], paged_at - self.now + self.timings.fabric_repair)
        return self._network[key]

    def validation_passes(self, failure: Failure, cured: bool) -> bool:
        """A cured node passes; an uncured hardware fault slips through ``validation_miss`` of the time."""
        if cured:
            return True
        if failure.fix is not TrueFix.REPLACE:
            return False
        luck = self._validation_luck.get(failure.id)
        if luck is None:
            rng = failure_rng(self.config.seed, failure.id, "validation")
            luck = self._validation_luck[failure.id] = iter(rng.random, None)
        return next(luck) < self.timings.validation_miss

    def relapse_later(self, failure: Failure) -> None:
        """A masked hardware fault strikes the same node again some days later."""
        origin = failure.relapse_of or failure.id
        number = self._relapses[origin] = self._relapses.get(origin, 0) + 1
        rng = failure_rng(self.config.seed, f"{origin}r{number}", "delay")
        delay = rng.expovariate(1.0 / self.timings.relapse_mean)
        at = self.now + delay
        self.ledger.relapses += 1
        again = relapse(failure, number=number, at=at, seed=self.config.seed, poll_interval=self.timings.poll_interval)
        self.arrive(again, delay)

    # --- what a strategy did

    def act(self, failure: Failure, action: Action, *, by: str, cured: bool) -> None:
        """Record a destructive action on the node (reboots count against the policy's reboot cap)."""
        state = self.node(failure.node)
        if action in (Action.REBOOT, Action.POWER_CYCLE):
            state.reboots.append(self.now)
        self.ledger.actions.append(
            ActionTaken(self.now, failure.node, action, by, cured,
                        failure.fix.node_needed_action, failure.storm is not None, failure.id)
        )  # fmt: skip

    def reboot_cap_wait(self, failure: Failure) -> float:
        """Seconds until the node may reboot again under ``rebootsPerDay`` (0: now)."""
        cap = self.policy.reboots_per_day
        recent = [t for t in self.node(failure.node).reboots if self.now - DAY < t <= self.now]
        if len(recent) < cap:
            return 0.0
        return recent[-cap] + DAY - self.now
