"""Which findings may wait for the next convenient reset, and so never evict running work.

NVIDIA says of some faults that the GPU is to be reset "at the next convenient
time": a memory row marked for remapping (Xid 63, the NVML ``remap pending``
flag) or a resource marked for retirement (Xid 156) takes effect only at the
next reset, and the job running now is unaffected (REFERENCE.md §0, §1.3,
§2.6-2.7; DCGM calls a pending remap WARN). A repair for such a finding
cordons its node and waits until the node's GPUs are idle, or a maintenance
window opens (:mod:`repairbot.machine.deferral`).

Two sources say which codes may wait:

* Xids: the catalog's own ``defer_until_drain`` flag (``xid_catalog.yaml``,
  overridable per cluster like every catalog field);
* the other finding classes: :data:`DEFERRABLE_FINDING_CLASSES`, the classes
  the GPU health detector raises for a pending remap or retirement.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from repairbot.catalog.xid import XidCatalog, default_catalog

DEFERRABLE_FINDING_CLASSES = frozenset(
    {
        "row-remap-pending",  # nvmlDeviceGetRemappedRows()[2]: "reset GPU at next convenient drain"
        "retired-pages-pending",  # the pre-Ampere form: pending retirements activate at the next reset
    }
)
"""Finding classes (not Xids) whose fix may wait for the next convenient reset."""

_XID = re.compile(r"xid-(\d+)")


def deferrable_rule(catalog: XidCatalog | None = None) -> Callable[[str], bool]:
    """Finding code → may its repair wait for the node's GPUs to be idle? ``catalog``: the default one if None."""
    xids = catalog if catalog is not None else default_catalog()

    def deferrable(code: str) -> bool:
        if code in DEFERRABLE_FINDING_CLASSES:
            return True
        found = _XID.fullmatch(code)
        return found is not None and xids.lookup(int(found.group(1))).defer_until_drain

    return deferrable
