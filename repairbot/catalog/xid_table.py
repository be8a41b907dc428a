"""RepairBot's response tables for Xids and SXids: NVIDIA's words → our actions.

NVIDIA's catalog answers "what kind of fault is this" with a bucket name; these
tables answer "so what do we do": the first action, how bad it is, and the
ladder of rungs to climb when a rung does not cure the GPU. They are the only
place that decision is written down, so a reviewer (or an SRE tuning the
policy file) reads the whole of RepairBot's Xid behaviour on one screen.

Every destructive ladder here ends in quarantine; ``tests/unit/test_xid_catalog.py``
holds the tables to that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from repairbot.model import Action, Severity

RESET_LADDER: tuple[Action, ...] = (Action.GPU_RESET, Action.REBOOT, Action.QUARANTINE)
REBOOT_LADDER: tuple[Action, ...] = (Action.REBOOT, Action.POWER_CYCLE, Action.QUARANTINE)

LADDER_FOR_ACTION: dict[Action, tuple[Action, ...]] = {
    Action.NONE: (Action.NONE,),
    Action.NOTIFY: (Action.NOTIFY,),
    Action.GPU_RESET: RESET_LADDER,
    Action.DRIVER_RELOAD: (Action.DRIVER_RELOAD, Action.REBOOT, Action.QUARANTINE),
    Action.REBOOT: REBOOT_LADDER,
    Action.POWER_CYCLE: (Action.POWER_CYCLE, Action.QUARANTINE),
    Action.QUARANTINE: (Action.QUARANTINE,),
}
"""The ladder an action starts when nobody gave one: every destructive start ends in quarantine."""

NVLINK5_CODES = range(144, 151)
XID_RECOVERY_ACTION_CHANGED = 154
WORKFLOW_NVLINK5 = "WORKFLOW_NVLINK5_ERR"


@dataclass(frozen=True, slots=True)
class Response:
    """What we do about one bucket (or one code): first action, how bad, how to escalate."""

    action: Action
    severity: Severity
    ladder: tuple[Action, ...]
    application_class: bool = False


NOTIFY_ONLY = Response(Action.NOTIFY, Severity.WARNING, (Action.NOTIFY,))
APPLICATION_ONLY = Response(Action.NONE, Severity.WARNING, (Action.NONE,), application_class=True)
RESET_GPU_RESPONSE = Response(Action.GPU_RESET, Severity.CRITICAL, RESET_LADDER)

BUCKET_RESPONSES: dict[str, Response] = {
    # The application failed, the GPU did not: tell the workload owner, touch nothing.
    "RESTART_APP": APPLICATION_ONLY,
    "WORKFLOW_XID_13": APPLICATION_ONLY,
    "WORKFLOW_XID_31": APPLICATION_ONLY,
    # Xid 45 only echoes an earlier Xid in the burst; act on that one instead.
    "WORKFLOW_XID_45": APPLICATION_ONLY,
    "IGNORE": Response(Action.NONE, Severity.INFO, (Action.NONE,)),
    "RESET_GPU": RESET_GPU_RESPONSE,
    # Uncorrectable ECC and NVLink errors: drain, reset, let validation read remap state.
    "WORKFLOW_XID_48": RESET_GPU_RESPONSE,
    "WORKFLOW_NVLINK_ERR": RESET_GPU_RESPONSE,
    # The fatal rows of the NVLink5 decode; assess() downgrades Nonfatal lines.
    WORKFLOW_NVLINK5: RESET_GPU_RESPONSE,
    "RESTART_VM": Response(Action.REBOOT, Severity.CRITICAL, REBOOT_LADDER),
    "RESTART_BM": Response(Action.REBOOT, Severity.FATAL, REBOOT_LADDER),
    # A cable or a board, not software: no rung of the ladder can fix it.
    "CHECK_MECHANICALS": Response(Action.QUARANTINE, Severity.CRITICAL, (Action.QUARANTINE,)),
    "XID_154": NOTIFY_ONLY,
    "CHECK_UVM": NOTIFY_ONLY,
    "UPDATE_SWFW": NOTIFY_ONLY,
    "CONTACT_SUPPORT": NOTIFY_ONLY,
    "": NOTIFY_ONLY,  # NVIDIA left the bucket blank (codes 162-172): tell a human, act on nothing
}


class RecoveryAction(enum.IntEnum):
    """NVML's GPU recovery-action field (``NVML_FI_DEV_GET_GPU_RECOVERY_ACTION``, REFERENCE §1.5)."""

    NONE = 0
    GPU_RESET = 1
    NODE_REBOOT = 2
    DRAIN_P2P = 3
    DRAIN_AND_RESET = 4
    RECOVER_IMEX_DOMAIN = 5
    BUS_RESET = 6
    SYSTEM_REBOOT = 7


RECOVERY_ACTIONS: dict[RecoveryAction, Action] = {
    RecoveryAction.NONE: Action.NONE,
    RecoveryAction.GPU_RESET: Action.GPU_RESET,
    RecoveryAction.NODE_REBOOT: Action.REBOOT,
    # Quiescing P2P means stopping the GPU's workloads; once drained, a reset is the
    # step the flag escalates to anyway, so we do both in one drain.
    RecoveryAction.DRAIN_P2P: Action.GPU_RESET,
    RecoveryAction.DRAIN_AND_RESET: Action.GPU_RESET,
    # An IMEX domain spans nodes; no single-node rung recovers it.
    RecoveryAction.RECOVER_IMEX_DOMAIN: Action.NOTIFY,
    # We have no bus-reset rung; a reboot is the smallest rung that surely resets the bus.
    RecoveryAction.BUS_RESET: Action.REBOOT,
    RecoveryAction.SYSTEM_REBOOT: Action.REBOOT,
}


SXID_RESPONSES: dict[str, Response] = {
    # NVSentinel's words for an NVSwitch SXid (REFERENCE §1.6) → ours.
    # Resetting the fabric means resetting every GPU and NVSwitch: a host reboot.
    "RESET_FABRIC": Response(Action.REBOOT, Severity.CRITICAL, REBOOT_LADDER),
    # Fatal to the partition (the FM guide's "fatal" class: ECC double-bit and parity errors in the switch); on a
    # bare-metal HGX baseboard the partition is every GPU and NVSwitch, so this is the fabric reset too.
    "WORKFLOW_NVLINK_POTENTIALY_FATAL_ERR": Response(Action.REBOOT, Severity.CRITICAL, REBOOT_LADDER),
    "RESET_GPU": RESET_GPU_RESPONSE,
    "IGNORE": Response(Action.NONE, Severity.INFO, (Action.NONE,)),
    # Thermals, cables, Fabric Manager config, signal integrity: people fix these, not rungs.
    "CHECK_THERMALS": NOTIFY_ONLY,
    "CHECK_LINK_MECHANICAL_CONNECTIONS": NOTIFY_ONLY,
    "CHECK_FM_CONFIG": NOTIFY_ONLY,
    "INVESTIGATE_LINK_SI": NOTIFY_ONLY,
}
SXID_PEOPLE_FIX = frozenset(
    {"CHECK_THERMALS", "CHECK_LINK_MECHANICAL_CONNECTIONS", "CHECK_FM_CONFIG", "INVESTIGATE_LINK_SI"}
)
"""NVSentinel's words for causes a reboot does not remove: even on a Fatal line, a person is paged, nothing reset."""
