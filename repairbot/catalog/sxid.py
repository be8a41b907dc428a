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

For an SXid we know, the line's own word still has the last say, because the
switch knows what it just survived better than a table does (the same code is
printed Fatal on one system and Non-fatal on another): a Non-fatal line never
climbs a destructive ladder (at most a notification), and a Fatal line of a
code the table would only notify about gets the fabric reset the Fabric
Manager guide asks for after a fatal NVSwitch error — every GPU and NVSwitch
of the baseboard reset, which on HGX is a reboot (ladder reboot → power-cycle
→ quarantine).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from repairbot.catalog.codes import CodeCatalog, entries_by_code, packaged_rows
from repairbot.catalog.xid_table import REBOOT_LADDER, SXID_PEOPLE_FIX, SXID_RESPONSES
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
    line_says: str = ""  # why the line's Fatal/Non-fatal word changed the table's response; "" when it did not

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
        """The entry for ``code`` as the line reports it: ``fatal`` is its Fatal/Non-fatal word (None: absent).

        Known codes keep the table's response unless the word contradicts it (see the module doc);
        unknown codes are decided by the word alone.
        """
        entry = self.known(code)
        if entry is not None:
            return _as_the_line_says(entry, fatal)
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


def _as_the_line_says(entry: SxidEntry, fatal: bool | None) -> SxidEntry:
    """The table's entry with the line's word respected: Non-fatal caps at notify, Fatal lifts to a fabric reset."""
    if fatal is False and entry.action.is_destructive:
        return replace(
            entry,
            action=Action.NOTIFY,
            severity=Severity.WARNING,
            default_ladder=(Action.NOTIFY,),
            line_says=f"the line says Non-fatal: notify instead of {entry.action.value}",
        )
    if fatal is True and not entry.action.is_destructive and entry.nvsentinel_action in SXID_PEOPLE_FIX:
        return replace(
            entry,
            severity=max(entry.severity, Severity.CRITICAL, key=_SEVERITY_ORDER.index),
            line_says="the line says Fatal: critical, but a reboot does not fix this cause; a person must",
        )
    if fatal is True and not entry.action.is_destructive:
        return replace(
            entry,
            action=Action.REBOOT,
            severity=max(entry.severity, Severity.CRITICAL, key=_SEVERITY_ORDER.index),
            default_ladder=REBOOT_LADDER,
            line_says=f"the line says Fatal: a fatal NVSwitch error needs the fabric reset, not {entry.action.value}",
        )
    return entry


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
