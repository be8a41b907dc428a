"""The remediation registry: every rung that changes the machine has exactly one remediation, run in one place."""

from __future__ import annotations

import pytest

from repairbot.catalog.xid import default_catalog
from repairbot.contract import AGENT_REQUEST_ACTIONS, VALIDATE
from repairbot.model import Action
from repairbot.policy.types import DEFAULT_LADDERS, TIMED_ACTIONS
from repairbot.remediations.action import RunsOn, Settles
from repairbot.remediations.gpu_reset import GpuReset
from repairbot.remediations.power_cycle import PowerCycle
from repairbot.remediations.registry import REGISTRY, Registry

STATE_MACHINE_RUNGS = frozenset({Action.NONE, Action.NOTIFY, Action.QUARANTINE})
"""Rungs that change nothing on the machine: the operator's state machine handles them, no remediation does."""

EXPECTED = {
    Action.GPU_RESET: (RunsOn.AGENT, Settles.ON_RETURN, True),
    Action.DRIVER_RELOAD: (RunsOn.AGENT, Settles.ON_RETURN, True),
    Action.REBOOT: (RunsOn.AGENT, Settles.ON_NEW_BOOT, False),
    Action.POWER_CYCLE: (RunsOn.OPERATOR, Settles.ON_NEW_BOOT, False),
}


def ladder_actions() -> set[Action]:
    """Every action a ladder can name: the policy's defaults, the Xid catalog's ladders, and every timed rung."""
    actions = {rung.action for rungs in DEFAULT_LADDERS.values() for rung in rungs}
    actions |= {action for entry in default_catalog() for action in entry.default_ladder}
    return actions | set(TIMED_ACTIONS)


@pytest.mark.parametrize("action", list(Action))
def test_every_action_that_changes_the_machine_has_exactly_one_remediation(action: Action) -> None:
    on_node, through_bmc = action in REGISTRY.on_node, action in REGISTRY.through_bmc
    if action in STATE_MACHINE_RUNGS:
        assert not (on_node or through_bmc) and REGISTRY.get(action) is None
        return
    assert action.is_destructive
    assert on_node != through_bmc, f"{action} must be registered exactly once"
    remediation = REGISTRY.get(action)
    assert remediation is not None and remediation.action is action
    assert (remediation.runs, remediation.settles, remediation.repeat_safe) == EXPECTED[action]


def test_every_ladder_action_is_a_remediation_or_the_state_machines() -> None:
    assert ladder_actions() - STATE_MACHINE_RUNGS <= REGISTRY.actions
    assert REGISTRY.actions == set(EXPECTED)


def test_the_agent_runs_exactly_the_remediations_the_contract_sends_it() -> None:
    """The operator↔agent contract and the registry agree on which actions the agent answers."""
    assert set(REGISTRY.on_node) == AGENT_REQUEST_ACTIONS - {VALIDATE}
    assert all(REGISTRY.node_local(action) is None for action in REGISTRY.through_bmc)
    assert REGISTRY.node_local(VALIDATE) is None and REGISTRY.node_local("format-disk") is None


def test_actions_judged_by_a_new_boot_are_never_repeated() -> None:
    """A restarted agent or operator waits for the boot id instead: a second reboot would hit a node that came back."""
    for action in REGISTRY.actions:
        remediation = REGISTRY.get(action)
        assert remediation is not None
        if remediation.settles is Settles.ON_NEW_BOOT:
            assert not remediation.repeat_safe, action
    assert REGISTRY.settles_on_new_boot("reboot") and not REGISTRY.settles_on_new_boot("gpu-reset")
    assert not REGISTRY.settles_on_new_boot(VALIDATE)


def test_a_registry_refuses_an_action_twice_or_under_the_wrong_runner() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        Registry.of(on_node=(GpuReset(), GpuReset()), through_bmc=())
    with pytest.raises(ValueError, match="runs on the operator, registered for the agent"):
        Registry.of(on_node=(PowerCycle(),), through_bmc=())  # type: ignore[arg-type]
