"""The NVSwitch SXid catalog: what an SXid means and what RepairBot does about it.

NVSwitch errors are logged by the ``nvidia-nvswitchN`` driver as SXids, each
marked Fatal or Non-fatal in the line (REFERENCE §1.6). The facts live in
``repairbot/data/sxid_catalog.yaml``; NVIDIA NVSentinel's action for each row
is translated to ours through :data:`repairbot.catalog.xid_table.SXID_RESPONSES`.

An SXid names a switch, not a GPU, and the repair for a fabric fault is a
node-level one, so SXid findings belong to the whole node.

An SXid we do not know is never acted on destructively: the driver's own
Fatal word makes it a critical notification for a human, a Non-fatal word
makes it a record.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from repairbot.catalog.codes import CodeCatalog, entries_by_code, packaged_rows
from repairbot.catalog.xid_table import SXID_RESPONSES
from repairbot.model import Action, Severity


class SxidClass(enum.StrEnum):
    """The Fabric Manager guide's categories."""

    NON_FATAL = "non-fatal"  # corrected by the hardware
    FATAL = "fatal"  # fatal to the partition; shows up on GPUs as Xid 74
    ALWAYS_FATAL = "always-fatal"  # the whole fabric must be reset


_CLASS_SEVERITY = {
    SxidClass.NON_FATAL: Severity.INFO,
    SxidClass.FATAL: Severity.CRITICAL,
    SxidClass.ALWAYS_FATAL: Severity.FATAL,
}
_SEVERITY_ORDER = list(Severity)


@dataclass(frozen=True, slots=True)
class SxidEntry:
    """One SXid with our response to it."""

    code: int
    name: str
    meaning: str
    sxid_class: SxidClass
    nvsentinel_action: str
    action: Action
    severity: Severity
    default_ladder: tuple[Action, ...]
    known: bool = True

    @property
    def finding_code(self) -> str:
        return f"sxid-{self.code}"

    @property
    def is_destructive(self) -> bool:
        return self.action.is_destructive


class SxidCatalog(CodeCatalog[SxidEntry]):
    """SXid code → :class:`SxidEntry`."""

    @classmethod
    def load(cls) -> SxidCatalog:
        """The packaged catalog (``repairbot/data/sxid_catalog.yaml``)."""
        return cls(entries_by_code(packaged_rows("sxid_catalog.yaml", "sxids"), _entry_from_row))

    def lookup(self, code: int, *, fatal: bool | None = None) -> SxidEntry:
        """The entry for ``code``. ``fatal`` is the line's Fatal/Non-fatal word, used only for unknown codes."""
        entry = self.known(code)
        if entry is not None:
            return entry
        if fatal:
            action, severity, sxid_class = Action.NOTIFY, Severity.CRITICAL, SxidClass.FATAL
        elif fatal is False:
            action, severity, sxid_class = Action.NONE, Severity.INFO, SxidClass.NON_FATAL
        else:
            action, severity, sxid_class = Action.NOTIFY, Severity.WARNING, SxidClass.FATAL
        return SxidEntry(
            code=code,
            name=f"UNKNOWN_SXID_{code}",
            meaning=f"SXid {code} is not in RepairBot's catalog; a human should look",
            sxid_class=sxid_class,
            nvsentinel_action="",
            action=action,
            severity=severity,
            default_ladder=(action,),
            known=False,
        )


def _entry_from_row(row: Mapping[str, Any]) -> SxidEntry:
    code = int(row["code"])
    nvsentinel = str(row["nvsentinel"])
    if nvsentinel not in SXID_RESPONSES:
        raise ValueError(f"sxid {code}: field 'nvsentinel': unknown action {nvsentinel!r}")
    try:
        sxid_class = SxidClass(row["class"])
    except ValueError:
        raise ValueError(f"sxid {code}: field 'class': unknown class {row['class']!r}") from None
    response = SXID_RESPONSES[nvsentinel]
    severity = max(response.severity, _CLASS_SEVERITY[sxid_class], key=_SEVERITY_ORDER.index)
    return SxidEntry(
        code=code,
        name=str(row["name"]),
        meaning=str(row["meaning"]),
        sxid_class=sxid_class,
        nvsentinel_action=nvsentinel,
        action=response.action,
        severity=severity,
        default_ladder=response.ladder,
    )


@functools.cache
def default_sxid_catalog() -> SxidCatalog:
    """The packaged SXid catalog, loaded once per process."""
    return SxidCatalog.load()
