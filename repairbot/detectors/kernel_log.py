"""Kernel-log parsing: NVRM Xids, NVSwitch SXids and GPUs that fell off the bus.

The kernel log is the one signal that still speaks when NVML cannot (a GPU
that fell off the bus takes NVML with it). Three framings reach us:
``/dev/kmsg`` records (``prio,seq,usec,flags;message``), plain ``dmesg`` text
(``[12345.678] NVRM: ...``) and journal/syslog text (``Nov 22 19:00:00 host
kernel: NVRM: ...``). The NVRM patterns are searched anywhere in the message,
so an unfamiliar prefix never hides an Xid. Line shapes: REFERENCE §1.1.

* :func:`parse_line` - one line → :class:`KernelEvent` or None; no state.
* :class:`KmsgParser` - adds what needs memory: the ``GPU at PCI:... GPU-<uuid>``
  preface that names a GPU for later lines, and the three-line
  "The NVIDIA GPU ... fallen off the bus" message.

Everything here is pure; :mod:`repairbot.detectors.kmsg` does the reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from repairbot.catalog.sxid import SxidCatalog, default_sxid_catalog
from repairbot.catalog.xid import XidCatalog, default_catalog
from repairbot.model import Action, Severity

GPU_LOST_CODE = "gpu-lost"
GPU_LOST_IMPLIED_XID = 79  # a GPU gone from the bus gets Xid 79's response and ladder

_PCI = re.compile(
    r"^(?:PCI:)?(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):(?P<dev>[0-9a-fA-F]{1,2})"
    r"(?:\.(?P<fn>[0-7]))?$"
)


def normalize_pci(address: str) -> str:
    """Any spelling of a PCI address → ``dddd:bb:dd.f`` lower case, so kernel log and NVML join.

    Accepts the Xid form ``0000:CB:00``, NVML's ``00000000:CB:00.0`` and the
    short ``cb:00.0``; the function defaults to 0. Raises ValueError for
    anything else, naming the input.
    """
    found = _PCI.match(address.strip())
    if found is None:
        raise ValueError(f"not a PCI address: {address!r}")
    domain = int(found.group("domain") or "0", 16)
    bus, dev, fn = int(found.group("bus"), 16), int(found.group("dev"), 16), int(found.group("fn") or 0)
    return f"{domain:04x}:{bus:02x}:{dev:02x}.{fn}"


@dataclass(frozen=True, slots=True)
class KernelEvent:
    """One recognised kernel-log line with the catalog's verdict attached."""

    kind: str  # "xid" | "sxid" | "gpu-lost"
    code: int | None
    pci: str | None
    message: str
    raw: str
    action: Action
    severity: Severity
    application_class: bool = False
    ladder: tuple[Action, ...] = ()
    mnemonic: str = ""
    reason: str = ""
    pid: int | None = None
    process_name: str | None = None
    fatal: bool | None = None
    device: str | None = None  # nvidia-nvswitchN for SXids
    uuid: str | None = None
    serial: str | None = None
    gpu_instance: int | None = None  # MIG: the GPU instance the driver attributed an Xid to (``GPU-I:05``)
    compute_instance: int | None = None  # MIG: the compute instance within it (``GPU-CI:01``)
    kernel_time_s: float | None = None
    details: dict[str, str] = field(default_factory=dict)

    @property
    def finding_code(self) -> str:
        if self.kind == GPU_LOST_CODE:
            return GPU_LOST_CODE
        return f"{self.kind}-{self.code}"


_KMSG_RECORD = re.compile(r"^(?P<prio>\d+),(?P<seq>\d+),(?P<usec>\d+),[^;]*;(?P<msg>.*)$", re.DOTALL)
_DMESG_PREFIX = re.compile(r"^\[\s*(?P<stamp>[^\]]{1,40})\]\s?(?P<msg>.*)$", re.DOTALL)
_JOURNAL_PREFIX = re.compile(
    r"^(?:[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+)\s+\S+\s+kernel:\s?(?P<msg>.*)$",
    re.DOTALL,
)
_KMSG_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_DICTIONARY_LINE = re.compile(r"^\s+[A-Z][A-Z0-9_]*=")


def record_sequence(text: str) -> int | None:
    """The sequence number of a ``/dev/kmsg`` record (``prio,seq,usec,flags;text``); None for other framings.

    The kernel numbers every record of a boot, gap-free and from 0, and keeps the number when the ring
    buffer wraps: the one cursor into the log that survives a restart of its reader.
    """
    kmsg = _KMSG_RECORD.match(text)
    return int(kmsg.group("seq")) if kmsg else None


def split_record(text: str) -> tuple[str, float | None]:
    """Strip kmsg/dmesg/journal framing: (message, kernel seconds since boot if the frame had them)."""
    text = text.rstrip("\r\n")
    kmsg = _KMSG_RECORD.match(text)
    if kmsg:
        # /dev/kmsg escapes newlines (multi-line printk) and other bytes as \xNN.
        message = _KMSG_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), kmsg.group("msg"))
        return message, int(kmsg.group("usec")) / 1e6
    journal = _JOURNAL_PREFIX.match(text)
    if journal:
        text = journal.group("msg")
    dmesg = _DMESG_PREFIX.match(text)
    if dmesg:
        try:
            return dmesg.group("msg"), float(dmesg.group("stamp"))
        except ValueError:  # dmesg -T prints a wall-clock date here
            return dmesg.group("msg"), None
    return text, None


_BDF = r"[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(?:\.[0-7])?"
# On a MIG GPU the driver names the instance inside the parenthesis: ``(PCI:0000:01:00 GPU-I:05 GPU-CI:01)``
# (open-gpu-kernel-modules kernel_rc.c: "PCI:%04x:%02x:%02x GPU-I:%02u GPU-CI:%02u"); either part may be absent.
_XID = re.compile(
    r"NVRM: Xid \((?:PCI:)?(?P<bdf>" + _BDF + r")(?: GPU-I:(?P<gi>\d{1,4}))?(?: GPU-CI:(?P<ci>\d{1,4}))?\): "
    r"(?P<code>\d{1,9})(?!\d)(?P<rest>.*)$",
    re.DOTALL,
)
_XID_PID = re.compile(r"^,\s*pid=(?P<pid>'[^']*'|[^,\s]*)")
_XID_NAME = re.compile(r"^,\s*name=(?P<name>[^,]*)")
_SXID = re.compile(
    r"(?P<device>nvidia-nvswitch\d+): SXid \((?:PCI:)?(?P<bdf>" + _BDF + r")\): (?P<code>\d{1,9})(?!\d)"
    r"(?P<rest>.*)$",
    re.DOTALL,
)
_SXID_FATALITY = re.compile(r"\b(Non-fatal|Nonfatal|Fatal)\b")
# One line, three spellings across driver generations (REFERENCE §1.1; sources in tests/unit/detectors/
# test_kmsg_line_shapes.py): ``GPU 0000:91:00.0: GPU has fallen off the bus.`` (current), ``GPU at
# 0000:01:00.0 has fallen off the bus.`` (R375-era) and ``GPU at PCI:0000:01:00: GPU has fallen off the bus.``.
# "has fallen off the bus" must follow the address itself, so the preface ``GPU at PCI:…: GPU-<uuid>`` and
# probe-time notices that name a GPU the same way never match.
_GPU_OFF_BUS = re.compile(r"NVRM: GPU (?:at )?(?:PCI:)?(?P<bdf>" + _BDF + r"):? (?:GPU )?has fallen off the bus")
_GPU_OFF_BUS_LONG = re.compile(r"The NVIDIA GPU (?P<bdf>" + _BDF + r")\b.*?fallen off the bus", re.DOTALL)
_OFF_BUS_TAIL = re.compile(r"fallen off the bus and is not responding to commands")
_LONG_FORM_HEAD = re.compile(r"NVRM: The NVIDIA GPU (?P<bdf>" + _BDF + r")\b")
_PREFACE_UUID = re.compile(r"NVRM: GPU at PCI:(?P<bdf>" + _BDF + r"): (?P<uuid>GPU-[0-9a-fA-F-]{8,})")
_PREFACE_SERIAL = re.compile(r"NVRM: GPU Board Serial Number: (?P<serial>\S+)")


def _split_xid_rest(rest: str) -> tuple[int | None, str | None, str]:
    """``, pid=…, name=…, message`` → (pid, name, message); pid and name may each be absent."""
    pid: int | None = None
    name: str | None = None
    found = _XID_PID.match(rest)
    if found:
        raw_pid = found.group("pid").strip("'")
        pid = int(raw_pid) if raw_pid.isdigit() and len(raw_pid) < 10 else None
        rest = rest[found.end() :]
        found_name = _XID_NAME.match(rest)
        if found_name:
            raw_name = found_name.group("name").strip()
            name = None if raw_name in ("", "<unknown>") else raw_name
            rest = rest[found_name.end() :]
    return pid, name, rest.lstrip(", ").strip()


def parse_line(
    text: str, *, catalog: XidCatalog | None = None, sxid_catalog: SxidCatalog | None = None
) -> KernelEvent | None:
    """One kernel-log line (any framing) → the event it reports, or None. Never raises."""
    if _DICTIONARY_LINE.match(text):
        return None  # a /dev/kmsg continuation line (SUBSYSTEM=pci …), not a message
    message, kernel_time = split_record(text)
    xid = _XID.search(message)
    if xid:
        return _xid_event(xid, text, kernel_time, catalog or default_catalog())
    sxid = _SXID.search(message)
    if sxid:
        return _sxid_event(sxid, text, kernel_time, sxid_catalog or default_sxid_catalog())
    lost = _GPU_OFF_BUS.search(message) or _GPU_OFF_BUS_LONG.search(message)
    if lost:
        return _gpu_lost_event(normalize_pci(lost.group("bdf")), text, kernel_time, catalog)
    if _OFF_BUS_TAIL.search(message):
        return _gpu_lost_event(None, text, kernel_time, catalog)
    return None


def _xid_event(found: re.Match[str], raw: str, kernel_time: float | None, catalog: XidCatalog) -> KernelEvent:
    code = int(found.group("code"))
    pid, name, detail = _split_xid_rest(found.group("rest"))
    assessment = catalog.assess(code, detail)
    details: dict[str, str] = {}
    decode = assessment.nvlink5
    if decode is not None:
        details = {k: str(v) for k, v in (("unit", decode.unit), ("link", decode.link)) if v is not None}
        if decode.intrinfo is not None:
            details["intrinfo"] = f"0x{decode.intrinfo:08x}"
        if decode.error_status is not None:
            details["error_status"] = f"0x{decode.error_status:08x}"
    if assessment.recovery_action is not None:
        details["recovery_action"] = str(getattr(assessment.recovery_action, "name", assessment.recovery_action))
    gpu_instance, compute_instance = found.group("gi"), found.group("ci")
    return KernelEvent(
        kind="xid",
        code=code,
        pci=normalize_pci(found.group("bdf")),
        gpu_instance=None if gpu_instance is None else int(gpu_instance),
        compute_instance=None if compute_instance is None else int(compute_instance),
        message=detail,
        raw=raw.rstrip("\r\n"),
        action=assessment.action,
        severity=assessment.severity,
        application_class=assessment.application_class,
        ladder=assessment.ladder,
        mnemonic=assessment.entry.mnemonic,
        reason=assessment.reason,
        pid=pid,
        process_name=name,
        fatal=decode.fatal if decode is not None else None,
        kernel_time_s=kernel_time,
        details=details,
    )


def _sxid_event(found: re.Match[str], raw: str, kernel_time: float | None, catalog: SxidCatalog) -> KernelEvent:
    code = int(found.group("code"))
    rest = found.group("rest").lstrip(", ").strip()
    word = _SXID_FATALITY.search(rest)
    fatal = None if word is None else word.group(1) == "Fatal"
    entry = catalog.lookup(code, fatal=fatal)
    return KernelEvent(
        kind="sxid",
        code=code,
        pci=normalize_pci(found.group("bdf")),
        message=rest,
        raw=raw.rstrip("\r\n"),
        action=entry.action,
        severity=entry.severity,
        ladder=entry.default_ladder,
        mnemonic=entry.name,
        reason=f"{entry.sxid_class.value} SXid"
        + ("" if entry.known else " (unknown code)")
        + (f"; {entry.line_says}" if entry.line_says else ""),
        fatal=fatal,
        device=found.group("device"),
        kernel_time_s=kernel_time,
    )


def _gpu_lost_event(pci: str | None, raw: str, kernel_time: float | None, catalog: XidCatalog | None) -> KernelEvent:
    entry = (catalog or default_catalog()).lookup(GPU_LOST_IMPLIED_XID)
    return KernelEvent(
        kind=GPU_LOST_CODE,
        code=None,
        pci=pci,
        message="GPU has fallen off the bus",
        raw=raw.rstrip("\r\n"),
        action=entry.action,
        severity=entry.severity,
        ladder=entry.default_ladder,
        mnemonic=entry.mnemonic,
        reason=f"treated as Xid {GPU_LOST_IMPLIED_XID}",
        kernel_time_s=kernel_time,
    )


@dataclass(slots=True)
class GpuIdentity:
    """What the driver's preface lines told us about the GPU at one PCI address."""

    uuid: str | None = None
    serial: str | None = None


class KmsgParser:
    """Line-by-line parser with the memory single lines lack.

    The driver names a GPU once (``NVRM: GPU at PCI:0000:91:00: GPU-<uuid>``,
    then its board serial) before that GPU's first Xid; later lines carry only
    the PCI address, so the parser remembers the pair. The three-line
    fallen-off-the-bus message names the address on its first line and the
    fault on its last, so the first line is held until the last arrives.
    """

    LONG_FORM_MAX_LINES = 4

    def __init__(self, *, catalog: XidCatalog | None = None, sxid_catalog: SxidCatalog | None = None) -> None:
        self._catalog = catalog or default_catalog()
        self._sxid_catalog = sxid_catalog or default_sxid_catalog()
        self.identities: dict[str, GpuIdentity] = {}
        self._last_named_pci: str | None = None
        self._long_form: tuple[str, list[str]] | None = None  # (pci, lines so far)

    def feed(self, text: str) -> KernelEvent | None:
        """Take one line; return the event it completes, if any. Never raises."""
        try:
            return self._feed(text)
        except ValueError:  # an address the regexes let through but normalize_pci refused
            return None

    def _feed(self, text: str) -> KernelEvent | None:
        if _DICTIONARY_LINE.match(text):
            return None
        message, _ = split_record(text)
        if self._remember_identity(message):
            return None
        held = self._long_form
        if held is not None:
            held[1].append(text.rstrip("\r\n"))
            if _OFF_BUS_TAIL.search(message):
                self._long_form = None
                lost = _gpu_lost_event(held[0], "\n".join(held[1]), None, self._catalog)
                return self._with_identity(lost)
            if len(held[1]) >= self.LONG_FORM_MAX_LINES:
                self._long_form = None
        head = _LONG_FORM_HEAD.search(message)
        if head and not _OFF_BUS_TAIL.search(message):
            self._long_form = (normalize_pci(head.group("bdf")), [text.rstrip("\r\n")])
            return None
        event = parse_line(text, catalog=self._catalog, sxid_catalog=self._sxid_catalog)
        return self._with_identity(event) if event is not None else None

    def _remember_identity(self, message: str) -> bool:
        preface = _PREFACE_UUID.search(message)
        if preface:
            pci = normalize_pci(preface.group("bdf"))
            self.identities.setdefault(pci, GpuIdentity()).uuid = preface.group("uuid")
            self._last_named_pci = pci
            return True
        serial = _PREFACE_SERIAL.search(message)
        if serial and self._last_named_pci is not None:
            self.identities.setdefault(self._last_named_pci, GpuIdentity()).serial = serial.group("serial")
            return True
        return serial is not None

    def _with_identity(self, event: KernelEvent) -> KernelEvent:
        if event.kind == "sxid" or event.pci is None:
            return event
        known = self.identities.get(event.pci)
        if known is None:
            return event
        return replace(event, uuid=known.uuid, serial=known.serial)
