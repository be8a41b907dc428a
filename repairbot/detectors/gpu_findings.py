"""The findings GPU health rules raise, shared by the polled detector and the NVML event source.

Both halves name a lost GPU or a driver recovery request the same way, with
the same action and severity, so an SRE sees one vocabulary whichever signal
caught the fault first.
"""

from __future__ import annotations

from repairbot.catalog.xid import RecoveryAction, recovery_action_to_action
from repairbot.model import Action, Finding, GpuRef, Severity

NO_GPU_DRIVER = "no GPU driver on this node"

# The fixed response of each finding this module raises; recovery-action, nvlink-down and
# xid-<n> take theirs from the driver, the policy knob and the Xid catalog.
FINDING_RESPONSES: dict[str, tuple[Action, Severity]] = {
    "gpu-lost": (Action.REBOOT, Severity.FATAL),
    "reset-required": (Action.GPU_RESET, Severity.CRITICAL),
    "ecc-dbe": (Action.GPU_RESET, Severity.CRITICAL),
    "row-remap-failure": (Action.GPU_RESET, Severity.CRITICAL),
    "row-remap-pending": (Action.GPU_RESET, Severity.WARNING),
    "retired-pages-pending": (Action.GPU_RESET, Severity.WARNING),
    "pcie-degraded": (Action.NOTIFY, Severity.WARNING),
    "pcie-replay": (Action.NOTIFY, Severity.WARNING),
    "thermal": (Action.NOTIFY, Severity.WARNING),
}


def gpu_finding(
    code: str, gpu: GpuRef, message: str, *, response: tuple[Action, Severity] | None = None, **evidence: object
) -> Finding:
    action, severity = response or FINDING_RESPONSES[code]
    name = gpu.identity() or "unknown"
    label = f"GPU {gpu.index} ({name})" if gpu.index is not None else f"GPU {name}"
    return Finding(
        code=code,
        message=f"{label}: {message}",
        action=action,
        severity=severity,
        gpu=gpu,
        evidence={key: str(value) for key, value in evidence.items()},
    )


def gpu_lost_finding(gpu: GpuRef, detail: str) -> Finding:
    return gpu_finding(
        "gpu-lost", gpu, "GPU is lost (fallen off the bus); only a reboot or power cycle brings it back", detail=detail
    )


def recovery_finding(gpu: GpuRef, value: int) -> Finding | None:
    """The driver's recovery-action flag as a finding (``None`` when it asks for nothing)."""
    if value == RecoveryAction.NONE:
        return None
    action = recovery_action_to_action(value)  # one mapping for the poll and for Xid 154
    try:
        name = RecoveryAction(value).name
    except ValueError:
        name = f"UNKNOWN_{value}"
    severity = Severity.WARNING if action is Action.NOTIFY else Severity.CRITICAL
    return gpu_finding(
        "recovery-action",
        gpu,
        f"driver requests recovery action {name}",
        response=(action, severity),
        recovery_action=name,
        value=value,
    )
