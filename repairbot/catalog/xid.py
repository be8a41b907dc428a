"""The Xid catalog: what each NVIDIA Xid means and what RepairBot does about it.

NVIDIA's catalog sorts every Xid into a *resolution bucket* (RESTART_APP,
RESET_GPU, RESTART_BM, …). The facts live in ``repairbot/data/xid_catalog.yaml``;
this module turns a bucket into our response — an :class:`~repairbot.model.Action`,
a :class:`~repairbot.model.Severity` and a ladder of rungs to climb when a
rung does not cure the GPU — through one table, :data:`BUCKET_RESPONSES`,
so "what do we do about bucket X" is answered in one place, not in if-chains.

Three Xids need more than their code, and :meth:`XidCatalog.assess` reads the
kernel-log message for them: NVLink5 Xids 144-150 carry Fatal/Nonfatal in the
line (REFERENCE §1.4), and Xid 154 says which recovery action the driver now
asks for (§1.5).

The module imports nothing of ours but :mod:`repairbot.model` and the response
tables in :mod:`repairbot.catalog.xid_table`, and does no I/O beyond reading its
packaged YAML once: detectors, policy and operator share one catalog object.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from repairbot.catalog.codes import CodeCatalog, entries_by_code, packaged_rows
from repairbot.catalog.xid_table import (
    BUCKET_RESPONSES,
    LADDER_FOR_ACTION,
    NOTIFY_ONLY,
    NVLINK5_CODES,
    REBOOT_LADDER,
    RECOVERY_ACTIONS,
    RESET_LADDER,
    WORKFLOW_NVLINK5,
    XID_RECOVERY_ACTION_CHANGED,
    RecoveryAction,
    Response,
)
from repairbot.model import Action, Severity

__all__ = [
    "BUCKET_RESPONSES",
    "LADDER_FOR_ACTION",
    "NVLINK5_CODES",
    "REBOOT_LADDER",
    "RESET_LADDER",
    "Nvlink5Decode",
    "RecoveryAction",
    "Response",
    "XidAssessment",
    "XidCatalog",
    "XidEntry",
    "decode_nvlink5",
    "default_catalog",
    "recovery_action_in_message",
    "recovery_action_to_action",
]


def recovery_action_to_action(value: int) -> Action:
    """Our action for an NVML recovery-action value; an unknown value asks a human (notify)."""
    try:
        return RECOVERY_ACTIONS[RecoveryAction(value)]
    except ValueError:
        return Action.NOTIFY


@dataclass(frozen=True, slots=True)
class XidEntry:
    """One row of the catalog with our response to it."""

    code: int
    mnemonic: str
    meaning: str
    immediate_bucket: str
    investigatory_bucket: str
    action: Action
    severity: Severity
    application_class: bool
    default_ladder: tuple[Action, ...]
    defer_until_drain: bool = False
    """True when the fix may wait for the next drain (a pending row remap): no urgency."""
    known: bool = True
    """False for a code missing from the catalog, synthesized by :meth:`XidCatalog.lookup`."""

    @property
    def finding_code(self) -> str:
        return f"xid-{self.code}"

    @property
    def is_destructive(self) -> bool:
        return self.action.is_destructive


@dataclass(frozen=True, slots=True)
class Nvlink5Decode:
    """The fields of an NVLink5 (Xid 144-150) line: ``UNIT Fatal|Nonfatal XC0 i0 Link 08 (0x… 0x…)``.

    ``fatal`` is None when the line carries neither word (NVML events carry no
    text at all). ``subcode`` is bits 20-25 of the intrinfo word, the index
    NVIDIA's decode sheet uses.
    """

    code: int
    unit: str | None
    fatal: bool | None
    cross_containment: str | None
    instance: int | None
    link: int | None
    intrinfo: int | None
    error_status: int | None
    status_words: tuple[int, ...]

    @property
    def subcode(self) -> int | None:
        return None if self.intrinfo is None else (self.intrinfo >> 20) & 0x3F

    @property
    def action(self) -> Action:
        """REFERENCE §1.4's fallback rule: Fatal ⇒ reset the GPU, Nonfatal (or unreadable) ⇒ record and tell."""
        return Action.GPU_RESET if self.fatal else Action.NOTIFY

    @property
    def ladder(self) -> tuple[Action, ...]:
        return LADDER_FOR_ACTION[self.action]


_NVLINK5_FATALITY = re.compile(r"\b(Nonfatal|Non-fatal|Fatal)\b")
_NVLINK5_UNIT = re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?:/[A-Z0-9_]+)?)\s+(?:Nonfatal|Non-fatal|Fatal)\b")
_NVLINK5_XC = re.compile(r"\bXC\s?([01])\b")
_NVLINK5_INSTANCE = re.compile(r"\bi\s?(\d+)\b")
_NVLINK5_LINK = re.compile(r"\bLink\s+(-?\d+)")
_HEX_WORD = re.compile(r"\b0x([0-9a-fA-F]{1,16})\b")


def decode_nvlink5(code: int, message: str) -> Nvlink5Decode:
    """Pick apart an NVLink5 Xid message; fields the line lacks are None, never guessed."""
    if code not in NVLINK5_CODES:
        raise ValueError(f"xid {code}: not an NVLink5 Xid (144-150)")
    fatality = _NVLINK5_FATALITY.search(message)
    unit = _NVLINK5_UNIT.search(message)
    xc = _NVLINK5_XC.search(message)
    instance = _NVLINK5_INSTANCE.search(message)
    link = _NVLINK5_LINK.search(message)
    after_link = message[link.end() :] if link else message
    words = tuple(int(w, 16) for w in _HEX_WORD.findall(after_link))
    return Nvlink5Decode(
        code=code,
        unit=unit.group(1) if unit else None,
        fatal=None if fatality is None else fatality.group(1) == "Fatal",
        cross_containment=f"XC{xc.group(1)}" if xc else None,
        instance=int(instance.group(1)) if instance else None,
        link=int(link.group(1)) if link else None,
        intrinfo=words[0] if words else None,
        error_status=words[1] if len(words) > 1 else None,
        status_words=words,
    )


_SEVERITY_FOR_RECOVERY = {Action.NONE: Severity.INFO, Action.NOTIFY: Severity.WARNING}
_RECOVERY_CHANGED_TO = re.compile(r"\bto\s+0x([0-9a-fA-F]+)")


def recovery_action_in_message(message: str) -> RecoveryAction | int | None:
    """The new value in an Xid 154 line (``… changed from 0x0 (None) to 0x1 (…)``), if it has one."""
    found = _RECOVERY_CHANGED_TO.search(message)
    if found is None:
        return None
    value = int(found.group(1), 16)
    try:
        return RecoveryAction(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class XidAssessment:
    """What one Xid occurrence asks for, after reading its message where the code alone cannot say."""

    entry: XidEntry
    action: Action
    severity: Severity
    ladder: tuple[Action, ...]
    reason: str
    nvlink5: Nvlink5Decode | None = None
    recovery_action: RecoveryAction | int | None = None

    @property
    def application_class(self) -> bool:
        return self.entry.application_class


class XidCatalog(CodeCatalog[XidEntry]):
    """Code → :class:`XidEntry`. Immutable; :meth:`with_overrides` returns a new catalog."""

    @classmethod
    def load(cls) -> XidCatalog:
        """The packaged catalog (``repairbot/data/xid_catalog.yaml``)."""
        return cls(entries_by_code(packaged_rows("xid_catalog.yaml", "xids"), _entry_from_row))

    def lookup(self, code: int) -> XidEntry:
        """The entry for ``code``; an unknown code gets a synthesized notify-only entry, never destructive."""
        entry = self.known(code)
        if entry is not None:
            return entry
        return XidEntry(
            code=code,
            mnemonic=f"UNKNOWN_XID_{code}",
            meaning=f"Xid {code} is not in RepairBot's catalog; a human should look",
            immediate_bucket="CONTACT_SUPPORT",
            investigatory_bucket="",
            action=Action.NOTIFY,
            severity=Severity.WARNING,
            application_class=False,
            default_ladder=(Action.NOTIFY,),
            known=False,
        )

    def assess(self, code: int, message: str = "") -> XidAssessment:
        """Our response to one occurrence of ``code``, reading ``message`` for Xid 144-150 and 154."""
        entry = self.lookup(code)
        if code in NVLINK5_CODES and entry.immediate_bucket == WORKFLOW_NVLINK5:
            decode = decode_nvlink5(code, message)
            word = {True: "Fatal", False: "Nonfatal", None: "no Fatal/Nonfatal word"}[decode.fatal]
            if decode.fatal:  # the entry is the Fatal response, so a policy override still wins
                return XidAssessment(
                    entry, entry.action, entry.severity, entry.default_ladder, f"NVLink5 {word}", decode
                )
            return XidAssessment(
                entry, NOTIFY_ONLY.action, NOTIFY_ONLY.severity, NOTIFY_ONLY.ladder, f"NVLink5 {word}", decode
            )
        if code == XID_RECOVERY_ACTION_CHANGED and entry.immediate_bucket == "XID_154":
            wanted = recovery_action_in_message(message)
            if wanted is not None:
                action = recovery_action_to_action(int(wanted))
                severity = _SEVERITY_FOR_RECOVERY.get(action, Severity.CRITICAL)
                name = wanted.name if isinstance(wanted, RecoveryAction) else str(wanted)
                return XidAssessment(
                    entry,
                    action,
                    severity,
                    LADDER_FOR_ACTION[action],
                    f"recovery action now {name}",
                    recovery_action=wanted,
                )
        reason = "unknown Xid" if not entry.known else f"bucket {entry.immediate_bucket or 'blank'}"
        return XidAssessment(entry, entry.action, entry.severity, entry.default_ladder, reason)

    def with_overrides(self, overrides: Mapping[Any, Mapping[str, Any]]) -> XidCatalog:
        """A copy with the policy file's per-code changes applied.

        Accepted fields: ``action``, ``ladder``, ``severity``, ``application_class``,
        ``defer_until_drain``. Raises ValueError naming the code and the field,
        so a bad policy file fails at load time, not at 3 a.m. on a real Xid.
        """
        entries = dict(self._entries)
        for raw_code, fields in overrides.items():
            code = _parse_code(raw_code)
            if not isinstance(fields, Mapping):
                raise ValueError(f"xid {code}: override must be a mapping of fields, got {fields!r}")
            entries[code] = _apply_fields(self.lookup(code), fields)
        return XidCatalog(entries)


_OVERRIDABLE_FIELDS = ("action", "ladder", "severity", "application_class", "defer_until_drain")


def _parse_code(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"xid {raw!r}: code must be a positive integer")
    text = str(raw).strip().lower().removeprefix("xid-").removeprefix("xid")
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"xid {raw!r}: code must be a positive integer")
    return int(text)


def _parse_action(code: int, field: str, raw: Any) -> Action:
    try:
        return Action(raw)
    except ValueError:
        allowed = ", ".join(a.value for a in Action)
        raise ValueError(f"xid {code}: field '{field}': {raw!r} is not one of {allowed}") from None


def _apply_fields(entry: XidEntry, fields: Mapping[str, Any]) -> XidEntry:
    """Validate and apply one code's fields; the result keeps the catalog's safety invariants."""
    code = entry.code
    unknown = sorted(set(fields) - set(_OVERRIDABLE_FIELDS))
    if unknown:
        raise ValueError(f"xid {code}: field '{unknown[0]}' is not overridable ({', '.join(_OVERRIDABLE_FIELDS)})")
    changes: dict[str, Any] = {}
    if "ladder" in fields:
        raw = fields["ladder"]
        if isinstance(raw, str) or not isinstance(raw, list | tuple) or not raw:
            raise ValueError(f"xid {code}: field 'ladder': must be a non-empty list of actions, got {raw!r}")
        changes["default_ladder"] = tuple(_parse_action(code, "ladder", rung) for rung in raw)
    if "action" in fields:
        changes["action"] = _parse_action(code, "action", fields["action"])
        changes.setdefault("default_ladder", LADDER_FOR_ACTION[changes["action"]])
    elif "default_ladder" in changes:
        changes["action"] = changes["default_ladder"][0]
    if "severity" in fields:
        try:
            changes["severity"] = Severity(fields["severity"])
        except ValueError:
            allowed = ", ".join(s.value for s in Severity)
            raise ValueError(f"xid {code}: field 'severity': {fields['severity']!r} is not one of {allowed}") from None
    for flag in ("application_class", "defer_until_drain"):
        if flag in fields:
            if not isinstance(fields[flag], bool):
                raise ValueError(f"xid {code}: field '{flag}': must be true or false, got {fields[flag]!r}")
            changes[flag] = fields[flag]
    updated = replace(entry, **changes)
    _check_invariants(updated, changed=set(fields))
    return updated


def _check_invariants(entry: XidEntry, *, changed: set[str]) -> None:
    """The two rules that keep a typo in a policy file from rebooting a fleet."""
    code = entry.code
    if entry.action != entry.default_ladder[0]:
        raise ValueError(
            f"xid {code}: field 'action': {entry.action.value} must be the ladder's first rung "
            f"({entry.default_ladder[0].value})"
        )
    destructive = any(rung.is_destructive for rung in entry.default_ladder)
    if destructive and entry.default_ladder[-1] is not Action.QUARANTINE:
        raise ValueError(f"xid {code}: field 'ladder': a ladder with destructive rungs must end in quarantine")
    if entry.application_class and destructive:
        blame = next(f for f in ("application_class", "action", "ladder", "") if f in changed or not f)
        raise ValueError(
            f"xid {code}: field '{blame or 'application_class'}': an application-class Xid must never "
            "climb a destructive ladder (set application_class: false first)"
        )


def _entry_from_row(row: Mapping[str, Any]) -> XidEntry:
    """One YAML row → entry: the bucket's response, then the row's own exceptions."""
    code = int(row["code"])
    immediate = str(row.get("immediate") or "")
    if immediate not in BUCKET_RESPONSES:
        raise ValueError(f"xid {code}: field 'immediate': unknown bucket {immediate!r}")
    base = BUCKET_RESPONSES[immediate]
    entry = XidEntry(
        code=code,
        mnemonic=str(row["mnemonic"]),
        meaning=str(row["meaning"]),
        immediate_bucket=immediate,
        investigatory_bucket=str(row.get("investigatory") or ""),
        action=base.action,
        severity=base.severity,
        application_class=base.application_class,
        default_ladder=base.ladder,
    )
    own = {k: row[k] for k in _OVERRIDABLE_FIELDS if k in row}
    return _apply_fields(entry, own) if own else entry


@functools.cache
def default_catalog() -> XidCatalog:
    """The packaged catalog, loaded once per process."""
    return XidCatalog.load()
