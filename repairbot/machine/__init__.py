"""The repair state machine and its safety rules, pure: no Kubernetes, no clock, no I/O.

One GPURepair and the facts around it go in; the next step comes out
(:func:`decide`). The operator (:mod:`repairbot.operator`) is the kopf handlers
and API writes around this package; the fleet simulation drives the very same
functions over weeks of simulated failures, so what it reports is what this
policy does.

- :mod:`~repairbot.machine.decide`: the choice itself, one function per phase;
- :mod:`~repairbot.machine.repair_view`: its input, a GPURepair and its facts, parsed once;
- :mod:`~repairbot.machine.decision`: its output, the step and the status patches around it;
- :mod:`~repairbot.machine.transitions`: a step written down as a status patch;
- :mod:`~repairbot.machine.blockers`: what stops a step (opt-out, dry run, budget, storm, lemon, reboot cap);
- :mod:`~repairbot.machine.breaker` and :mod:`~repairbot.machine.breaker_flow`: the storm breaker;
- :mod:`~repairbot.machine.unmanaged`: pods no controller owns, told apart in the history;
- :mod:`~repairbot.machine.deferral`: repairs that wait for idle GPUs (a pending row remap), never evicting.

This module is the public face: code outside the package imports machine names from here.
"""

from __future__ import annotations

from repairbot.machine.blockers import BlockReason, budget_exhausted
from repairbot.machine.breaker import FLEET, Breaker, Breakers, BreakerState, Fault, failure_domain
from repairbot.machine.decide import (
    AGENT_ACTIONS,
    DESTRUCTIVE_STEPS,
    POLL,
    AgentAnswer,
    CatalogEntry,
    Decision,
    Facts,
    PoolUsage,
    RepairView,
    Request,
    Step,
    XidLookup,
    catalog_fallback,
    decide,
    driving_finding,
    request_id,
)
from repairbot.machine.repair_view import GpuRepair

__all__ = [
    "AGENT_ACTIONS",
    "DESTRUCTIVE_STEPS",
    "FLEET",
    "POLL",
    "AgentAnswer",
    "BlockReason",
    "Breaker",
    "BreakerState",
    "Breakers",
    "CatalogEntry",
    "Decision",
    "Facts",
    "Fault",
    "GpuRepair",
    "PoolUsage",
    "RepairView",
    "Request",
    "Step",
    "XidLookup",
    "budget_exhausted",
    "catalog_fallback",
    "decide",
    "driving_finding",
    "failure_domain",
    "request_id",
]
