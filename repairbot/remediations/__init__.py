"""How RepairBot repairs a node: one module per action, one protocol, one registry.

How does RepairBot reset a GPU? :mod:`.gpu_reset`. Reload the driver?
:mod:`.driver_reload`. Reboot? :mod:`.reboot`. Power-cycle a hung host?
:mod:`.power_cycle`. Each module holds one remediation and says what it does,
where it runs, how its verdict is known and whether it is safe to repeat.

- :mod:`.action` — the :class:`~.action.Remediation` protocol every action
  implements (``action``, ``runs``, ``settles``, ``repeat_safe``,
  ``run(ctx) -> ActionOutcome``), the :class:`~.action.ActionOutcome` it
  returns (ok, refused with the reason, or failed, plus details), and the two
  contexts: :class:`~.action.NodeContext` (the node's
  :class:`~.action.Host` — boot id, GPU holders, run a host command — and the
  GPU) for the actions the agent runs on its own node, and
  :class:`~.action.BmcContext` (the node's name and a BMC connector) for the
  ones the operator runs from outside, because the node cannot.
- :mod:`.registry` — :data:`~.registry.REGISTRY`, the one table from a
  ladder's :class:`~repairbot.model.Action` to its remediation. The agent's
  executor and the operator's reconciler dispatch through it and name no
  action themselves.
- :mod:`.redfish` and :mod:`.bmc_access` — the Redfish protocol and the
  node's BMC settings (annotations, Secret) the power cycle is built on; the
  Secret itself is read by the operator through an injected
  :class:`~.bmc_access.BmcCredentialsReader`.
- :mod:`.validation` — checks that look at the node from outside after a
  repair (a quiet period in Prometheus).

To add an action: a new module here with a class whose attributes say the
above and whose ``run`` does the work, and one line in
:data:`~.registry.REGISTRY` (``on_node`` or ``through_bmc``). Node-local
actions reach the machine only through :class:`~.action.Host`, so the
sandbox's simulated host runs the very same code; a new host command needs
the simulated host to act it out too.

These modules import only :mod:`repairbot.model` and each other (DESIGN.md's
dependency rule): never the Kubernetes layer, the agent, the operator or the
simulated world, which meets this code only through the protocols here (the
simulated BMC over HTTP, the simulated host as a :class:`~.action.Host`).
"""
