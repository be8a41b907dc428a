"""``repairbot simulate``: a discrete-event simulation of a GPU fleet under three ways of repairing it.

A seeded trace of node failures at the rates of Meta's Llama 3 record
(:mod:`~repairbot_fleetsim.failures`) is fed to RepairBot's policy, a 5-minute
polling checker and a human on call (:mod:`~repairbot_fleetsim.strategies`),
each running on the same small event loop (:mod:`~repairbot_fleetsim.engine`).
RepairBot's side reuses the operator's own pieces — the policy file, its
ladders with the Xid catalog behind them, the budget arithmetic and the storm
breakers, fleet-wide and per leaf switch — so the simulation runs what the
operator runs, only faster than real time. :mod:`~repairbot_fleetsim.report` and :mod:`~repairbot_fleetsim.plot`
write what came out.

Like :mod:`repairbot_sim`, this package sits on top: the product never imports it.
"""

from repairbot_fleetsim.config import SimConfig, Timings, default_policy
from repairbot_fleetsim.simulate import SimulationResult, simulate, write_outputs

__all__ = ["SimConfig", "SimulationResult", "Timings", "default_policy", "simulate", "write_outputs"]
