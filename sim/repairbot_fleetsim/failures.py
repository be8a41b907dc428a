"""What breaks, how often, and what really fixes it: the failure mix and the seeded failure trace.

The rates are Meta's Llama 3 405B pre-training record (Dubey et al. 2024, "The
Llama 3 Herd of Models", Table 5): 419 unexpected interruptions in 54 days on
16,384 H100 GPUs, that is 2,048 nodes of 8 — the fleet size this simulation
defaults to. Each category arrives as its own Poisson process, scaled linearly
to the simulated fleet and horizon.

The table says what broke, not what a node needed to work again, so every
category carries a *true fix*: the weakest remedy that would have cured it
(a GPU reset, a reboot, a power cycle, a hardware replacement, a repair of the
fabric by the network team, or nothing at all because the job crashed on a
healthy node). The mixes are our assumptions, each written beside its row and
grounded in NVIDIA's Xid resolution buckets (REFERENCE.md §1.3) where one applies.

A trace is drawn once per seed and fed unchanged to every strategy; every
random number a strategy needs later comes from :func:`failure_rng`, keyed by
the failure's id, so two strategies facing the same failure draw the same luck.
"""

from __future__ import annotations

import enum
import hashlib
import random
from dataclasses import dataclass, field, replace

from repairbot.model import Action

LLAMA3_NODES = 2048
"""16,384 GPUs in 8-GPU nodes: the fleet the Llama 3 table was counted on."""
LLAMA3_DAYS = 54.0
LLAMA3_SOURCE = "Dubey et al. 2024, The Llama 3 Herd of Models, Table 5 (54 days, 16,384 H100 GPUs)"

NODE_ACTIONS = (Action.GPU_RESET, Action.DRIVER_RELOAD, Action.REBOOT, Action.POWER_CYCLE)
"""Destructive actions on the node itself: what the simulation counts."""


class TrueFix(enum.StrEnum):
    """The weakest remedy that cures a failure."""

    NONE = "none"  # the job crashed; the node is healthy (software bug, NCCL timeout)
    GPU_RESET = "gpu-reset"
    REBOOT = "reboot"
    POWER_CYCLE = "power-cycle"
    REPLACE = "replace"  # hardware replacement: quarantine and RMA
    FABRIC = "fabric"  # a switch, cable or transceiver: the network team's job, no node action helps
    MAINTENANCE = "maintenance"  # host maintenance, done by hand alike under every strategy

    def fixed_by(self, action: Action) -> bool:
        """Does ``action`` on the node cure this failure?"""
        if self is TrueFix.NONE:
            return True
        if self in (TrueFix.GPU_RESET, TrueFix.REBOOT, TrueFix.POWER_CYCLE):
            return action in NODE_ACTIONS and action.severity >= Action(self.value).severity
        return False

    @property
    def node_needed_action(self) -> bool:
        """False where any action on the node is wasted: a healthy node, or a fault outside it."""
        return self not in (TrueFix.NONE, TrueFix.FABRIC)


@dataclass(frozen=True, slots=True)
class Category:
    """One row of the Llama 3 table, with how RepairBot would see it and what cures it."""

    name: str
    count: int
    finding: str | None  # the finding class a detector (or an alert) reports; None: nothing on the node fires
    fixes: tuple[tuple[TrueFix, float], ...]
    why: str
    detected_by: str = "agent"  # agent (NVML/kmsg/sysfs event), alert (Grafana/Alertmanager), none
    node_blamed: bool = True  # does anyone point at a node? (a failed dependency names none)
    storm_share: float = 0.0  # share of events that take a whole failure domain at once


def _fixes(*pairs: tuple[TrueFix, float]) -> tuple[tuple[TrueFix, float], ...]:
    return pairs


_HOST_HW = "host hardware outside the GPUs: an alert on the node, a human confirms, the part is replaced"

# fmt: off
LLAMA3_MIX: tuple[Category, ...] = (
    Category("Faulty GPU", 148, "xid-79", _fixes((TrueFix.REBOOT, 0.40), (TrueFix.POWER_CYCLE, 0.25),
             (TrueFix.REPLACE, 0.35)), "Xid 79 bucket RESTART_BM: a reboot, a BMC power cycle if the GPU stays "
             "missing, RMA on recurrence"),
    Category("GPU HBM3 memory", 72, "ecc-dbe", _fixes((TrueFix.GPU_RESET, 0.55), (TrueFix.REBOOT, 0.15),
             (TrueFix.REPLACE, 0.30)), "double-bit ECC: a reset activates the row remap; a failed remap is RMA"),
    Category("Software bug", 54, "xid-13", _fixes((TrueFix.NONE, 1.0)),
             "Xid 13 bucket RESTART_APP: the job restarts; the node is fine"),
    Category("Network switch/cable", 35, "ib-port-down", _fixes((TrueFix.FABRIC, 1.0)),
             "the network team replaces the cable or switch; a fifth of the events are a whole leaf switch",
             storm_share=0.2),
    Category("Host maintenance", 32, None, _fixes((TrueFix.MAINTENANCE, 1.0)),
             "urgent host work done by hand: the same under every strategy", detected_by="none"),
    Category("GPU SRAM memory", 19, "xid-95", _fixes((TrueFix.GPU_RESET, 0.60), (TrueFix.REBOOT, 0.15),
             (TrueFix.REPLACE, 0.25)), "uncontained SRAM error, bucket RESET_GPU; repeats are RMA"),
    Category("GPU system processor", 17, "xid-119", _fixes((TrueFix.GPU_RESET, 0.55), (TrueFix.REBOOT, 0.40),
             (TrueFix.REPLACE, 0.05)), "GSP RPC timeout, bucket RESET_GPU; reboot if the reset fails"),
    Category("NIC", 7, "ib-port-down", _fixes((TrueFix.REPLACE, 1.0)), "a dead HCA is replaced"),
    Category("NCCL watchdog timeouts", 7, None, _fixes((TrueFix.NONE, 1.0)),
             "a collective hung; the job restarts, no node detector fires", detected_by="none"),
    Category("Silent data corruption", 6, "dcgm-health-fail", _fixes((TrueFix.REPLACE, 1.0)),
             "a GPU that computes wrong answers is replaced"),
    Category("GPU thermal interface + sensor", 6, "thermal", _fixes((TrueFix.REPLACE, 1.0)),
             "thermal paste or a sensor: hands-on hardware work"),
    Category("SSD", 3, "node-hardware", _fixes((TrueFix.REPLACE, 1.0)), _HOST_HW, detected_by="alert"),
    Category("Power supply", 3, "node-hardware", _fixes((TrueFix.REPLACE, 1.0)), _HOST_HW, detected_by="alert"),
    Category("Server chassis", 2, "node-hardware", _fixes((TrueFix.REPLACE, 1.0)), _HOST_HW, detected_by="alert"),
    Category("IO expansion board", 2, "node-hardware", _fixes((TrueFix.REPLACE, 1.0)), _HOST_HW,
             detected_by="alert"),
    Category("Dependency", 2, None, _fixes((TrueFix.NONE, 1.0)), "an outside service failed; no node to blame",
             detected_by="none", node_blamed=False),
    Category("CPU", 2, "node-hardware", _fixes((TrueFix.REPLACE, 1.0)), _HOST_HW, detected_by="alert"),
    Category("System memory", 2, "node-hardware", _fixes((TrueFix.REPLACE, 1.0)), _HOST_HW, detected_by="alert"),
)
# fmt: on
"""Table 5's 18 rows (419 interruptions). The paper prints 30.1% beside Faulty GPU's 148, which is 35.3%
of 419; the counts add up to 419 and are what the simulation uses."""

CATEGORIES = {category.name: category for category in LLAMA3_MIX}


@dataclass(frozen=True, slots=True)
class Failure:
    """One node failing at one moment, with every random draw a strategy needs already made."""

    id: str
    at: float  # seconds since the simulation started
    node: int
    domain: int
    category: str
    finding: str | None
    fix: TrueFix
    agent_delay: float  # RepairBot's agent: NVML event / kmsg line to finding
    alert_delay: float  # a Grafana alert rule's evaluation and pending time
    poll_delay: float  # a 5-minute poller: time until its next look
    storm: str | None = None  # the leaf-switch event this failure belongs to
    relapse_of: str | None = None  # the failure a masked repair left behind

    @property
    def fabric_key(self) -> str:
        """One switch or cable per key: a storm's nodes share one network repair."""
        return self.storm or self.id

    @property
    def kind(self) -> Category:
        return CATEGORIES[self.category]


@dataclass(frozen=True, slots=True)
class Trace:
    """The failures of one seeded run, in time order."""

    failures: tuple[Failure, ...]
    storms: int
    seed: int
    horizon: float
    nodes: int
    domain_size: int
    per_category: dict[str, int] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """A fingerprint of the trace: strategies that saw the same digest faced the same failures."""
        lines = (f"{f.id},{f.at:.3f},{f.node},{f.category},{f.fix.value}" for f in self.failures)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def failure_rng(seed: int, failure_id: str, purpose: str) -> random.Random:
    """Luck that belongs to one failure, identical for every strategy (string seeds hash with SHA-512)."""
    return random.Random(f"{seed}:{failure_id}:{purpose}")


def generate_trace(
    *, nodes: int, days: float, seed: int, domain_size: int, poll_interval: float, storm_jitter: float = 5.0
) -> Trace:
    """Draw the failures of ``nodes`` nodes over ``days`` days: one Poisson process per category."""
    rng = random.Random(seed)
    horizon = days * 86400.0
    scale = nodes / LLAMA3_NODES / (LLAMA3_DAYS * 86400.0)
    domains = max(1, -(-nodes // domain_size))
    drawn: list[Failure] = []
    storms = serial = 0
    per_category: dict[str, int] = {}
    for category in LLAMA3_MIX:
        rate = category.count * scale
        at = rng.expovariate(rate)
        while at < horizon:
            node = rng.randrange(nodes)
            fix = _pick_fix(rng, category)
            serial += 1
            base = _failure(rng, f"{serial:05d}", at, node, node // domain_size, category, fix,
                            poll_interval)  # fmt: skip
            per_category[category.name] = per_category.get(category.name, 0) + 1
            if category.storm_share and rng.random() < category.storm_share:
                storms += 1
                domain = rng.randrange(domains)
                members = range(domain * domain_size, min(nodes, (domain + 1) * domain_size))
                for member in members:
                    jitter = rng.uniform(0.0, storm_jitter)
                    drawn.append(replace(_failure(rng, f"{base.id}s{member}", at + jitter, member, domain, category,
                                                  fix, poll_interval), storm=f"storm-{base.id}"))  # fmt: skip
            else:
                drawn.append(base)
            at += rng.expovariate(rate)
    failures = tuple(sorted((f for f in drawn if f.at < horizon), key=lambda f: (f.at, f.id)))
    return Trace(failures, storms, seed, horizon, nodes, domain_size, per_category)


def relapse(parent: Failure, *, number: int, at: float, seed: int, poll_interval: float) -> Failure:
    """The same hardware fault coming back on the same node after a repair that only masked it."""
    failure_id = f"{parent.relapse_of or parent.id}r{number}"
    rng = failure_rng(seed, failure_id, "draws")
    return replace(
        _failure(rng, failure_id, at, parent.node, parent.domain, parent.kind, parent.fix, poll_interval),
        relapse_of=parent.relapse_of or parent.id,
    )


def _pick_fix(rng: random.Random, category: Category) -> TrueFix:
    fixes = [fix for fix, _ in category.fixes]
    weights = [weight for _, weight in category.fixes]
    return rng.choices(fixes, weights)[0]


def _failure(
    rng: random.Random,
    failure_id: str,
    at: float,
    node: int,
    domain: int,
    category: Category,
    fix: TrueFix,
    poll_interval: float,
) -> Failure:
    return Failure(
        id=failure_id,
        at=at,
        node=node,
        domain=domain,
        category=category.name,
        finding=category.finding,
        fix=fix,
        agent_delay=rng.uniform(0.1, 1.0),
        alert_delay=rng.uniform(60.0, 120.0),
        poll_delay=rng.uniform(0.0, poll_interval),
    )
