"""The one table from a ladder's :class:`~repairbot.model.Action` to the remediation that performs it.

The agent's executor looks its requests up in :attr:`Registry.on_node`; the
operator's reconciler looks the rungs it runs itself up in
:attr:`Registry.through_bmc`. Neither names an action: adding one is a new
module beside these and one line below. Rungs that change nothing on the
machine (``notify``, ``quarantine``) are the state machine's own and have no
remediation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from repairbot.model import Action
from repairbot.remediations.action import BmcContext, NodeContext, Remediation, RunsOn, Settles
from repairbot.remediations.driver_reload import DRIVER_RELOAD
from repairbot.remediations.gpu_reset import GPU_RESET
from repairbot.remediations.power_cycle import POWER_CYCLE
from repairbot.remediations.reboot import REBOOT


@dataclass(frozen=True, slots=True)
class Registry:
    on_node: Mapping[Action, Remediation[NodeContext]]
    """Run by the agent on its own node (:attr:`RunsOn.AGENT`)."""
    through_bmc: Mapping[Action, Remediation[BmcContext]]
    """Run by the operator through the node's BMC (:attr:`RunsOn.OPERATOR`)."""

    @classmethod
    def of(
        cls, *, on_node: Iterable[Remediation[NodeContext]], through_bmc: Iterable[Remediation[BmcContext]]
    ) -> Registry:
        """Build the table; raises ValueError for an action registered twice or under the wrong runner."""
        node, bmc = _keyed(on_node, RunsOn.AGENT), _keyed(through_bmc, RunsOn.OPERATOR)
        twice = set(node) & set(bmc)
        if twice:
            raise ValueError(f"registered both on the node and through the BMC: {sorted(twice)}")
        return cls(node, bmc)

    def get(self, action: str | None) -> Remediation[NodeContext] | Remediation[BmcContext] | None:
        """The remediation for ``action`` (a request's action string or an :class:`Action`); None when none."""
        node_local = self.node_local(action)
        return node_local if node_local is not None else self.bmc(action)

    def node_local(self, action: str | None) -> Remediation[NodeContext] | None:
        """The remediation the agent runs for ``action``; None when it is not an agent's."""
        return self.on_node.get(Action(action)) if action in _ACTIONS else None

    def bmc(self, action: str | None) -> Remediation[BmcContext] | None:
        """The remediation the operator runs through the BMC for ``action``; None when it is not one."""
        return self.through_bmc.get(Action(action)) if action in _ACTIONS else None

    def settles_on_new_boot(self, action: str | None) -> bool:
        """Is ``action``'s verdict a changed boot id (a reboot, a power cycle) rather than what ``run`` returned?"""
        remediation = self.get(action)
        return remediation is not None and remediation.settles is Settles.ON_NEW_BOOT

    @property
    def actions(self) -> frozenset[Action]:
        return frozenset(self.on_node) | frozenset(self.through_bmc)


_ACTIONS = frozenset(a.value for a in Action)


C = TypeVar("C")


def _keyed(remediations: Iterable[Remediation[C]], runs: RunsOn) -> dict[Action, Remediation[C]]:
    table: dict[Action, Remediation[C]] = {}
    for remediation in remediations:
        if remediation.runs is not runs:
            raise ValueError(f"{remediation.action}: runs on the {remediation.runs}, registered for the {runs}")
        if remediation.action in table:
            raise ValueError(f"{remediation.action}: registered twice")
        table[remediation.action] = remediation
    return table


REGISTRY = Registry.of(
    on_node=(GPU_RESET, DRIVER_RELOAD, REBOOT),
    through_bmc=(POWER_CYCLE,),
)
"""Every remediation RepairBot has. A new action: one module in this package, one line here."""
