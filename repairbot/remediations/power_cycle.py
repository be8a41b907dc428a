"""Power-cycle a node through its BMC's Redfish API: the rung after a reboot that did not help.

A node whose GPU fell off the bus, or whose kernel hung, cannot reboot itself:
its agent went down with it. The BMC beside the host still answers, so the
operator (not the agent) asks it for ``ComputerSystem.Reset``, through the
:class:`~repairbot.remediations.redfish.BmcConnector` in its context.

BMCs differ in which resets they accept (sushy-tools has no PowerCycle; some
vendors have no ForceRestart), so the reset is chosen from the system's own
``ResetType@Redfish.AllowableValues``: see :func:`choose_reset_plan`.

The verdict comes later, as for a reboot: the node is back when its agent
reports a boot id other than the one recorded before the reset (judged by the
operator's state machine). Not safe to repeat: a second hard reset would hit
the host mid-boot, so a reset POST is retried only when it surely never
reached the BMC (see :mod:`~repairbot.remediations.redfish`), and a
restarted operator waits for the boot id rather than resetting again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

from repairbot.model import Action
from repairbot.remediations.action import ActionOutcome, BmcContext, RunsOn, Settles
from repairbot.remediations.bmc_access import RedfishError
from repairbot.remediations.redfish import BmcSession, reset_capability

log = logging.getLogger(__name__)

UNSUPPORTED_RESET_STATUS = frozenset({400, 501})
"""What a BMC answers when it does not know a reset type it did not advertise."""


@dataclass(frozen=True, slots=True)
class ResetPlan:
    """Reset types to POST in order, waiting for PowerState Off between two.

    ``fallback`` replaces the single step when the BMC refuses it as unsupported;
    it is set only when the BMC did not advertise what it allows.
    """

    steps: tuple[str, ...]
    fallback: str | None = None

    @property
    def name(self) -> str:
        return "+".join(self.steps)


def choose_reset_plan(allowable: Sequence[str] | None) -> ResetPlan:
    """PowerCycle, else ForceRestart, else ForceOff then On. Raises ValueError when none is allowed.

    PowerCycle cuts power, which is what clears a GPU that fell off the bus;
    ForceRestart is a hard reset, nearly as good; ForceOff + On does the same in
    two steps. Graceful resets are never chosen: this rung exists because the
    host no longer answers.
    """
    if allowable is None:
        return ResetPlan(("PowerCycle",), fallback="ForceRestart")
    allowed = set(allowable)
    for single in ("PowerCycle", "ForceRestart"):
        if single in allowed:
            return ResetPlan((single,))
    power_on = next((value for value in ("On", "ForceOn") if value in allowed), None)
    if "ForceOff" in allowed and power_on is not None:
        return ResetPlan(("ForceOff", power_on))
    raise ValueError(
        f"allows no reset that power-cycles a hung host (it allows: {', '.join(allowable) or 'nothing'}); "
        "RepairBot needs PowerCycle, ForceRestart, or ForceOff and On"
    )


def cycle(session: BmcSession) -> ActionOutcome:
    """Choose the reset from what the node's system allows and run it; raises :class:`RedfishError`.

    The outcome's details say which reset the BMC accepted (``reset``) and,
    when it answered 202, the task that tracks it (``task``).
    """
    where = f"node {session.target.node}: BMC {session.target.address}"
    system_path, system = session.find_system()
    try:
        capability = reset_capability(system)
        plan = choose_reset_plan(capability.allowable)
    except ValueError as error:
        raise RedfishError(f"{where} {error}") from None
    reset_type = plan.steps[0]
    try:
        response = session.reset(capability.target, reset_type)
    except RedfishError as refused:
        if plan.fallback is None or refused.status not in UNSUPPORTED_RESET_STATUS:
            raise
        reset_type = plan.fallback
        response = session.reset(capability.target, reset_type)
    for next_type in plan.steps[1:]:
        session.wait_for_power_state(system_path, "Off")
        response = session.reset(capability.target, next_type)
        reset_type = plan.name
    task_url = response.headers.get("Location") if response.status_code == 202 else None
    message = f"{where} accepted {reset_type} for {system_path}" + (f"; task {task_url}" if task_url else "")
    return ActionOutcome(True, message, details={"reset": reset_type} | ({"task": task_url} if task_url else {}))


@dataclass(frozen=True, slots=True)
class PowerCycle:
    action: Action = Action.POWER_CYCLE
    runs: RunsOn = RunsOn.OPERATOR
    settles: Settles = Settles.ON_NEW_BOOT
    repeat_safe: bool = False

    def run(self, ctx: BmcContext) -> ActionOutcome:
        """Never raises for a BMC or configuration problem: the outcome is failed and its message says why."""
        try:
            with closing(ctx.bmc.open_session(ctx.node)) as session:
                outcome = cycle(session)
        except RedfishError as error:
            log.warning("power-cycle failed node=%s error=%s", ctx.node, error)
            return ActionOutcome(False, str(error))
        log.info(
            "power-cycle sent node=%s reset=%s task=%s", ctx.node, outcome.details["reset"], outcome.details.get("task")
        )
        return outcome


POWER_CYCLE = PowerCycle()
