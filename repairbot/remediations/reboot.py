"""Reboot the node from inside with ``systemctl reboot``: the rung for faults only a new boot clears.

Run by the agent on its node. ``systemctl reboot`` returns at once and the
agent goes down with the machine, so ``run`` only starts it: the verdict comes
later, when an agent on the node sees a boot id different from the one it
recorded before asking (:attr:`Settles.ON_NEW_BOOT`, judged in the agent's
executor).

Not safe to repeat: a second reboot would land on a node that already came
back — mid-validation, or running work again — so a restarted agent judges the
first one by the boot id instead of rebooting again.
"""

from __future__ import annotations

from dataclasses import dataclass

from repairbot.model import Action
from repairbot.remediations.action import ActionOutcome, NodeContext, RunsOn, Settles


@dataclass(frozen=True, slots=True)
class Reboot:
    action: Action = Action.REBOOT
    runs: RunsOn = RunsOn.AGENT
    settles: Settles = Settles.ON_NEW_BOOT
    repeat_safe: bool = False

    def run(self, ctx: NodeContext) -> ActionOutcome:
        return ctx.host.run(["systemctl", "reboot"])


REBOOT = Reboot()
