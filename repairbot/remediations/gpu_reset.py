"""Reset one GPU (or all of a node's) in place with ``nvidia-smi --gpu-reset``: the lightest rung.

Run by the agent on its node, after the drain. A reset fails with "In use by
another client" while any process holds the GPU, and would kill that process
if it did not, so a GPU still held is refused, not attempted: the operator
climbs to the next rung (a reboot clears every holder). Persistence mode keeps
a handle open too; NVIDIA's own tooling turns it off around a reset and back
on after, and so does this.

Safe to repeat: a second reset of a GPU nobody holds is just another reset,
and the holder check runs again first.
"""

from __future__ import annotations

from dataclasses import dataclass

from repairbot.model import Action, GpuRef
from repairbot.remediations.action import ActionOutcome, NodeContext, RunsOn, Settles


def reset_target(gpu: GpuRef) -> list[str]:
    """``-i <gpu>`` for nvidia-smi: UUID, else PCI address, else index (all three are accepted); [] for all GPUs.

    UUID and PCI address first: they name the same board whatever order the
    driver enumerated the GPUs in this boot.
    """
    target = gpu.uuid or gpu.pci or (None if gpu.index is None else str(gpu.index))
    return ["-i", target] if target else []


@dataclass(frozen=True, slots=True)
class GpuReset:
    action: Action = Action.GPU_RESET
    runs: RunsOn = RunsOn.AGENT
    settles: Settles = Settles.ON_RETURN
    repeat_safe: bool = True

    def run(self, ctx: NodeContext) -> ActionOutcome:
        holders = ctx.host.gpu_processes(ctx.gpu)
        if holders:
            return ActionOutcome(
                False,
                f"refused: processes {holders} still hold GPU {ctx.gpu.identity() or 'all'}; drain them first",
                refused=True,
            )
        target = reset_target(ctx.gpu)
        ctx.host.run(["nvidia-smi", "-pm", "0", *target], check=False)
        outcome = ctx.host.run(["nvidia-smi", "--gpu-reset", *target])
        ctx.host.run(["nvidia-smi", "-pm", "1", *target], check=False)
        return outcome


GPU_RESET = GpuReset()
