"""How RepairBot repairs a node, one module per action, and how it proves the repair held.

Node-local actions (GPU reset, driver reload, reboot) run in the agent's
executor; the actions here are the ones the operator runs itself because the
node cannot: a power cycle through the BMC (:mod:`.redfish`) for a host that is
hung or whose GPU fell off the bus, and the extra validation checks that look
at the node from outside (:mod:`.validation`: a quiet period in Prometheus).

These modules import only :mod:`repairbot.model`, :mod:`repairbot.policy` and
:mod:`repairbot.kube` (DESIGN.md's dependency rule); the simulated BMC lives in
:mod:`repairbot_sim.redfish` and meets this code only over HTTP.
"""
