"""Which runbook explains a finding class: the index behind every "Runbook" link.

The runbooks are Markdown files at the repository root (``runbooks/``), one per
fault class, published wherever the policy's ``runbookBaseUrl`` points. Slack
messages, Jira tickets and alert annotations link to them through
:func:`runbook_url`, so a class that has no runbook of its own still lands on a
page that explains it: any Xid without a dedicated file goes to
``xid-other.md``, anything unknown to the index (``README.md``).

Pure and free of I/O; it imports nothing of ours but the NVLink5 code range.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from repairbot.catalog.xid_table import NVLINK5_CODES

RUNBOOK_INDEX = "README.md"
XID_OTHER_RUNBOOK = "xid-other.md"
STORM_RUNBOOK = "storm-breaker.md"
"""Storm breaker open: repairs Blocked until a human resumes them."""
DRAIN_BLOCKED_RUNBOOK = "drain-blocked.md"
"""A drain that timed out (a PodDisruptionBudget would not let pods go)."""
QUARANTINE_RUNBOOK = "quarantine.md"
"""A quarantined node: evidence, what to replace, how to return it."""
HEALTH_RUNBOOK = "repairbot-health.md"
"""RepairBot's own alerts: agents down or stale, reconciles failing, notifications behind."""
SLURM_RUNBOOK = "slurm.md"
"""A Slurm node: drained with the cordon, its jobs waited for (SlurmJobsRunning), Slurm errors (SlurmError)."""

_BY_CLASS: Mapping[str, str] = {
    "gpu-lost": "xid-79.md",
    "gpu-missing": "gpu-missing.md",
    "ecc-dbe": "ecc-dbe.md",
    "row-remap-pending": "row-remap.md",
    "row-remap-failure": "row-remap.md",
    "retired-pages-pending": "row-remap.md",  # page retirement: the pre-Ampere form of row remapping
    "nvlink-down": "nvlink.md",
    "recovery-action": XID_OTHER_RUNBOOK,  # the driver's flag behind Xid 154
    "reset-required": XID_OTHER_RUNBOOK,
    "manual": "manual.md",
}

_BY_XID: Mapping[int, str] = {
    79: "xid-79.md",
    # Uncorrectable memory errors, contained or not, and the details that come with them.
    **dict.fromkeys((48, 92, 94, 95, 140, 168, 171, 172), "ecc-dbe.md"),
    **dict.fromkeys((63, 64), "row-remap.md"),
    **dict.fromkeys((119, 120), "gsp.md"),
    **dict.fromkeys((74, 136, 137, 155, *NVLINK5_CODES), "nvlink.md"),
    167: "pcie.md",  # PCIE_FATAL_TIMEOUT
    # Auxiliary power not connected, power-smoothing circuitry.
    **dict.fromkeys((54, 162, 163, 164, 165), "thermal-power.md"),
}

_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("pcie-", "pcie.md"),
    ("ib-", "infiniband.md"),
    ("dcgm-", "dcgm-health.md"),
    ("alert-", "alert.md"),
    ("thermal", "thermal-power.md"),
    ("power", "thermal-power.md"),
    ("sxid-", XID_OTHER_RUNBOOK),
)

_XID_CLASS = re.compile(r"xid-(\d+)")


def runbook_for(finding_code: str) -> str:
    """The runbook file (a name inside ``runbooks/``) for a finding class; the index for unknown classes."""
    code = finding_code.strip().lower()
    exact = _BY_CLASS.get(code)
    if exact is not None:
        return exact
    xid = _XID_CLASS.fullmatch(code)
    if xid is not None:
        return _BY_XID.get(int(xid.group(1)), XID_OTHER_RUNBOOK)
    for prefix, runbook in _BY_PREFIX:
        if code.startswith(prefix):
            return runbook
    return RUNBOOK_INDEX


def runbook_url(base: str | None, finding_code: str) -> str | None:
    """``<base>/<runbook file>``, or None when no base is configured or there is no class to explain."""
    if not base or not finding_code.strip():
        return None
    return f"{base.rstrip('/')}/{runbook_for(finding_code)}"
