"""The state machine's output: the :class:`Step` to run and the :class:`Decision` that carries it.

Apart from :mod:`repairbot.machine.decide` because the handler executes these
(writes ``patch``, marks the node, runs the step, writes ``after``) without
needing to know how they were chosen, and :mod:`repairbot.machine.transitions`
builds them. The poll interval and deterministic request ids live here too: both
the machine and the builders put them into decisions. Import through
:mod:`repairbot.machine.decide`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from repairbot.machine.breaker import Breakers
from repairbot.model import Action, NodeState

POLL = timedelta(seconds=5)
"""How soon a waiting step wants to be looked at again (drains, agent answers)."""


class Step(enum.StrEnum):
    ADMIT = "admit"
    QUEUE = "queue"
    BLOCK = "block"
    CANCEL = "cancel"
    CORDON = "cordon"
    START_DRAIN = "start-drain"
    CONTINUE_DRAIN = "continue-drain"
    DRAIN_TIMED_OUT = "drain-timed-out"
    REQUEST_ACTION = "request-action"
    WAIT_FOR_AGENT = "wait-for-agent"
    POWER_CYCLE = "power-cycle"
    VALIDATE = "validate"
    RETURN_TO_SERVICE = "return-to-service"
    NEXT_RUNG = "next-rung"
    ESCALATE = "escalate"
    QUARANTINE = "quarantine"
    HOLD = "hold"
    DEFER = "defer"
    RECORD_DRY_RUN = "record-dry-run"
    NOTHING = "nothing"


DESTRUCTIVE_STEPS = frozenset({Step.START_DRAIN, Step.CONTINUE_DRAIN, Step.REQUEST_ACTION, Step.POWER_CYCLE})
"""Steps that disturb workloads or the machine: never while the breaker is open or in dry-run."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The next step, the status to write before it (``patch``) and after it succeeded (``after``).

    ``event`` is the Kubernetes event reason and log word ("" for quiet waits);
    ``message`` the human sentence for history, events and Slack. Node marks:
    ``cordon`` (cordon + taint), ``node_state`` (label value), ``uncordon``,
    ``remove_marks`` (taint and state label off). ``breakers`` is the storm
    breakers' state after this decision (the machine computes it, the shell
    stores it when it changed; None: unchanged). ``resume_consumed``: a
    human's resume annotation did its work and is to be cleared, so one
    resume never acts twice.
    """

    step: Step
    message: str = ""
    patch: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    event: str = ""
    action: Action | None = None
    request_id: str | None = None
    cordon: bool = False
    node_state: NodeState | None = None
    uncordon: bool = False
    remove_marks: bool = False
    requeue_after: timedelta | None = None
    breakers: Breakers | None = None
    resume_consumed: bool = False
    slurm_requeue: tuple[str, ...] = ()
    """Slurm jobs the shell is to requeue (``scontrol requeue``) on the repair's node, never cancel."""

    @property
    def is_destructive(self) -> bool:
        return self.step in DESTRUCTIVE_STEPS

    @property
    def touches_node(self) -> bool:
        """Does executing this step change the Node object or the machine at all?"""
        marks = self.cordon or self.uncordon or self.remove_marks or self.node_state is not None
        return self.is_destructive or marks


def request_id(repair: str, attempt: int, action: str) -> str:
    """Deterministic: a restarted operator writes the same id, so the agent never acts twice."""
    return f"{repair}-{attempt}-{action}"
