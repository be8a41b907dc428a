"""What every remediation is: one :class:`Remediation`, run with the context it needs, returning one outcome.

A remediation is one rung of a repair ladder that changes the machine (a GPU
reset, a driver reload, a reboot, a power cycle). Each lives in its own module
of this package and says, beside its ``run``:

- ``action``: the :class:`~repairbot.model.Action` it performs (the registry's key);
- ``runs``: who runs it — the agent on its own node (:attr:`RunsOn.AGENT`, handed
  a :class:`NodeContext`: the node's :class:`Host` and the GPU), or the operator
  through the node's BMC (:attr:`RunsOn.OPERATOR`, handed a :class:`BmcContext`),
  because a host that hung or lost its GPU cannot repair itself;
- ``settles``: how its verdict is known — by what ``run`` returns
  (:attr:`Settles.ON_RETURN`), or only later, by a changed boot id
  (:attr:`Settles.ON_NEW_BOOT`): a reboot's ``run`` returns while the machine is
  going down, and the agent that could report on it goes down too;
- ``repeat_safe``: whether running it a second time for the same fault harms
  nothing beyond running it once. This is what a restarted agent or operator
  has to weigh when it cannot tell whether the first run happened; the
  executor and the reconciler today never run one request twice (the operator
  climbs the ladder instead), and each module says why its answer is what it is.

``run`` is synchronous: the agent's executor and the operator's reconciler
run it in their own worker threads, and each action is a few host commands or
a handful of HTTP requests.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from repairbot.model import Action, GpuRef

if TYPE_CHECKING:
    from repairbot.remediations.redfish import BmcConnector


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What an action did: ``ok``, else failed; ``refused`` means it was not attempted, with the reason.

    ``details`` carries what a human may want beside the sentence (a command's
    output, the reset type a BMC accepted); it lands in the agent's answer.
    """

    ok: bool
    message: str
    refused: bool = False
    details: dict[str, str] = field(default_factory=dict)


class RunsOn(enum.StrEnum):
    """Who performs a remediation, and so which context it is handed."""

    AGENT = "agent"
    """The node's own agent, on the node (it answers the operator's request under ``status.agent``)."""
    OPERATOR = "operator"
    """The operator, from outside the node, through its BMC."""


class Settles(enum.Enum):
    """How a remediation's verdict is known."""

    ON_RETURN = "on-return"
    """``run`` returns when the action is done; its outcome is the verdict."""
    ON_NEW_BOOT = "on-new-boot"
    """``run`` only starts it (the machine goes down); success is a changed boot id, seen once the node is back.

    A failed ``run`` (the command or the BMC refused) is still a verdict at once.
    """


class Host(Protocol):
    """The node as a node-local remediation sees it: primitives only, no repair logic.

    The agent's real host runs commands in PID 1's namespaces; the sandbox's
    simulated host acts the same commands out on simulated hardware, so the
    remediations' own command sequences are what the sandbox exercises.
    """

    def boot_id(self) -> str:
        """The kernel's boot id (``/proc/sys/kernel/random/boot_id``): it changes on every boot."""
        ...

    def gpu_processes(self, gpu: GpuRef) -> list[int]:
        """PIDs holding ``gpu`` (all GPUs when the ref is empty)."""
        ...

    def run(self, args: Sequence[str], *, check: bool = True) -> ActionOutcome:
        """Run one command on the host; with ``check`` a non-zero exit is a failed outcome, else only recorded."""
        ...


@dataclass(frozen=True, slots=True)
class NodeContext:
    """What a remediation the agent runs is handed: its node's host and the GPU the fault is on (empty: all)."""

    host: Host
    gpu: GpuRef = field(default_factory=GpuRef)


@dataclass(frozen=True, slots=True)
class BmcContext:
    """What a remediation the operator runs is handed: the node's name and the way to its BMC."""

    node: str
    bmc: BmcConnector


Context = TypeVar("Context", contravariant=True)
"""The context a remediation needs: :class:`NodeContext` or :class:`BmcContext`."""


class Remediation(Protocol[Context]):
    """One repair action; see the module docstring for what each attribute promises."""

    @property
    def action(self) -> Action: ...

    @property
    def runs(self) -> RunsOn: ...

    @property
    def settles(self) -> Settles: ...

    @property
    def repeat_safe(self) -> bool: ...

    def run(self, ctx: Context) -> ActionOutcome:
        """Perform the action; never raises for a refusal or a failure of the machine (the outcome says why)."""
        ...
