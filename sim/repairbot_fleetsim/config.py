"""The simulation's knobs: fleet shape, clocks, and the policy RepairBot runs under.

Every time here is an assumption, written where it is set with the reason for
its value; the report prints this table so a reader can disagree with a number
and rerun. Timeouts, the budget, the storm breaker and the lemon rule are not
here: they come from the RepairBot policy itself (the shipped default unless
``--policy`` names another file), so the simulation runs what the operator runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import yaml

from repairbot.model import Action
from repairbot.policy import DEFAULT_POLICY_YAML, Policy, parse_policy

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


def default_policy() -> Policy:
    """The policy the operator ships with (``repairbot/data/policy-default.yaml``)."""
    return parse_policy(yaml.safe_load(DEFAULT_POLICY_YAML))


@dataclass(frozen=True, slots=True)
class Timings:
    """How long things take. Seconds throughout."""

    intake: float = 1.0
    """Finding → GPURepair → first reconcile → node cordoned (one watch event, one patch)."""
    poll_interval: float = 5 * MINUTE
    """The polling checker looks at each node every five minutes: detection waits 0-300 s."""
    drain: float = 2 * MINUTE
    """The training job on a failed node has already crashed; its pods leave within their grace period."""
    action_runtime: Mapping[Action, float] = field(
        default_factory=lambda: MappingProxyType(
            {
                Action.GPU_RESET: 1 * MINUTE,  # nvidia-smi -r with the GPU's users stopped
                Action.DRIVER_RELOAD: 3 * MINUTE,
                Action.REBOOT: 8 * MINUTE,  # an 8-GPU node with IB HCAs through BIOS and POST
                Action.POWER_CYCLE: 12 * MINUTE,  # BMC off, wait, on, then a full boot
            }
        )
    )
    validation: float = 3 * MINUTE
    """``dcgmi diag -r 2`` and the agent's checks before a node takes work again."""
    validation_miss: float = 0.15
    """Chance that a validation passes a node whose hardware fault only went quiet (it comes back later)."""
    relapse_mean: float = 2 * DAY
    """Mean time until such a masked fault strikes again (exponential)."""
    replacement: float = 3 * DAY
    """Quarantine → RMA ticket → part swapped by the hardware team → node back for validation."""
    fabric_repair: float = 4 * HOUR
    """The network team replaces a cable, transceiver or leaf switch once paged."""
    maintenance: float = 2 * HOUR
    """Unplanned host maintenance, done by hand under every strategy."""
    human_ack: float = 101.0
    """A human's time to acknowledge a page: Naver's reported 1 min 41 s."""
    manual_action: float = 30 * MINUTE
    """A human's repair action, drain and check included (the issue's manual MTTR per action)."""
    resume_after: float = 30 * MINUTE
    """Each storm incident (a breaker that opened) waits this long for a human to look and resume it."""
    storm_jitter: float = 5.0
    """A failing leaf switch takes its nodes down within this many seconds of each other."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """One run: the fleet, the horizon, the seed, the clocks and the policy."""

    nodes: int = 2048
    days: float = 54.0
    seed: int = 1
    gpus_per_node: int = 8
    domain_size: int = 16
    """Nodes behind one leaf switch (the ``repairbot.io/failure-domain`` label)."""
    timings: Timings = field(default_factory=Timings)
    policy: Policy = field(default_factory=default_policy)
    policy_source: str = "repairbot/data/policy-default.yaml"

    @property
    def horizon(self) -> float:
        return self.days * DAY
