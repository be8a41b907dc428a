"""RepairBot's vocabulary: findings, phases, actions and the GPURepair shape.

Every part of RepairBot speaks these words — the agent when it reports a
finding, the operator when it records a step, Slack and Jira when they tell a
human. Keeping them in one I/O-free module means a phase name or an action name
can never drift between the CRD, the state machine and the notifications.

The CRD in ``charts/repairbot/crds/gpurepairs.yaml`` is the wire contract; the
enums here mirror its ``enum`` lists and a unit test keeps the two in step.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

GROUP = "repairbot.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "GPURepair"
PLURAL = "gpurepairs"
SHORT_NAME = "gpr"

# Node marks (DESIGN.md "Node marks").
LABEL_STATE = "repairbot.io/state"
LABEL_DISABLED = "repairbot.io/disabled"
LABEL_NODE = "repairbot.io/node"
LABEL_FAILURE_DOMAIN = "repairbot.io/failure-domain"
TAINT_UNHEALTHY = "repairbot.io/unhealthy"
CONDITION_GPU_HEALTHY = "GPUHealthy"
# A human's word to the operator on a GPURepair: "go on" (storm breaker, drain timeout).
ANNOTATION_RESUME = "repairbot.io/resume"
# A finding's evidence key: when the alert behind it resolved (set by the webhook, read by the operator).
EVIDENCE_RESOLVED_AT = "resolvedAt"
EVIDENCE_FINGERPRINT = "fingerprint"
# A finding's evidence key: its count after intake merged a repeat into a quarantine (the operator records it).
EVIDENCE_WHILE_QUARANTINED = "whileQuarantined"
# The condition that ends a quarantine's hold on its node (`repairbot release`, or the state label removed).
CONDITION_RELEASED = "Released"
# Who asked for a release (written by `repairbot release` on the GPURepair, recorded by the operator).
ANNOTATION_RELEASED_BY = "repairbot.io/released-by"
# Who resumed a repair (beside ``repairbot.io/resume``), recorded by the operator in the history it writes.
ANNOTATION_RESUMED_BY = "repairbot.io/resumed-by"
# A human's "stop": who cancelled the repair; the operator ends it Cancelled and leaves the node cordoned.
ANNOTATION_CANCEL_REQUESTED_BY = "repairbot.io/cancel-requested-by"
# A kernel-log finding's evidence: the /dev/kmsg sequence number of the record that raised it, and the boot it
# belongs to (sequence numbers start again at every boot). A restarted agent reads the log on after the highest.
EVIDENCE_KMSG_SEQ = "kmsgSeq"
EVIDENCE_KMSG_BOOT = "kmsgBoot"


class NodeState(enum.StrEnum):
    """Values of the ``repairbot.io/state`` node label; absent means healthy."""

    FAULTY = "faulty"
    REPAIRING = "repairing"
    QUARANTINED = "quarantined"


class Phase(enum.StrEnum):
    """Where a GPURepair stands. The order of the first six is the happy path."""

    PENDING = "Pending"
    CORDONED = "Cordoned"
    DRAINING = "Draining"
    REMEDIATING = "Remediating"
    VALIDATING = "Validating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    QUARANTINED = "Quarantined"
    BLOCKED = "Blocked"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        """A terminal repair is history: a new finding for its node opens a new repair.

        Blocked is deliberately not terminal: it waits for a human to resume it,
        and findings that arrive meanwhile belong to the same incident.
        """
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.QUARANTINED, Phase.CANCELLED})


class Action(enum.StrEnum):
    """Remediation rungs, from harmless to terminal.

    The order of declaration is the order of severity, used when several
    findings on one node ask for different actions: the strongest wins.
    """

    NONE = "none"
    NOTIFY = "notify"
    GPU_RESET = "gpu-reset"
    DRIVER_RELOAD = "driver-reload"
    REBOOT = "reboot"
    POWER_CYCLE = "power-cycle"
    QUARANTINE = "quarantine"

    @property
    def severity(self) -> int:
        return _ACTION_ORDER.index(self)

    @property
    def is_destructive(self) -> bool:
        """Destructive actions interrupt workloads; only these need a drain and a safety check."""
        return self.severity >= Action.GPU_RESET.severity and self is not Action.QUARANTINE


_ACTION_ORDER = list(Action)


def strongest(actions: list[Action]) -> Action:
    """The most severe of several actions (NONE for an empty list)."""
    return max(actions, key=lambda a: a.severity, default=Action.NONE)


class Source(enum.StrEnum):
    """Who reported a finding (and who opened a repair)."""

    AGENT = "agent"
    GRAFANA = "grafana"
    ALERTMANAGER = "alertmanager"
    MANUAL = "manual"


class SignalKind(enum.StrEnum):
    """How the signal behind an agent's finding is read — which decides how the finding may clear.

    A polled signal (an ECC counter, a link state) is read whole every interval, so a later complete poll
    that no longer shows the fault is positive evidence it went away. An event (an Xid from NVML or the
    kernel log) happens once and has no such reading: its finding clears only by a passed validation after
    a repair, or by a human.
    """

    POLLED = "polled"
    EVENT = "event"


class Severity(enum.StrEnum):
    """How bad a finding is, independent of what we do about it."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class GpuRef:
    """One GPU as every source can name it. Any field may be unknown.

    ``pci`` is normalised to ``dddd:bb:dd.f`` lower case so a kernel-log line
    and an NVML handle join on it. ``gpu_instance`` and ``compute_instance``
    name the MIG instance the driver attributed the fault to (``GPU-I:05
    GPU-CI:01`` in an Xid line): the workloads on that slice are the ones to
    move. They do not enter :meth:`identity`, because the repair is of the
    physical GPU whichever of its instances reported first. ``serial`` is the
    board serial (NVML, or the driver's preface in the kernel log): what
    hardware replaces, and what the per-GPU lemon rule follows across repairs.
    """

    index: int | None = None
    uuid: str | None = None
    pci: str | None = None
    gpu_instance: int | None = None
    compute_instance: int | None = None
    serial: str | None = None

    def identity(self) -> str:
        """The name every agent-side source knows: PCI address, else UUID, else index ('' = whole node).

        PCI comes first because the kernel log names GPUs only by address
        (the UUID needs a preface line the log may have lost), while NVML
        knows both: keyed on PCI, one Xid seen by both sources is one finding.
        """
        if self.pci:
            return self.pci
        if self.uuid:
            return self.uuid
        return "" if self.index is None else str(self.index)

    def describe(self) -> str:
        """``GPU 3 (serial 1650123012345, GPU-8f2c…, 0000:3b:00.0)``: every name a human may look the GPU up by.

        Empty when no GPU is named (a node-level finding); the serial first, because it is what
        hardware finds the board in the rack by.
        """
        ids = [f"serial {self.serial}" if self.serial else None, self.uuid, self.pci]
        if self.gpu_instance is not None:
            ids.append(f"GPU instance {self.gpu_instance}")
        if self.compute_instance is not None:
            ids.append(f"compute instance {self.compute_instance}")
        named = [x for x in ids if x]
        if self.index is None and not named:
            return ""
        head = f"GPU {self.index}" if self.index is not None else "GPU"
        return f"{head} ({', '.join(named)})" if named else head

    def is_same_board(self, other: GpuRef) -> bool:
        """Whether two references name the same physical GPU: by serial, else UUID, else PCI address.

        The strongest name both know decides, so a board swapped in at the same address (a new serial
        and UUID) is another GPU, while a finding that knew only the address still joins one that knew
        more. The index alone never does: enumeration order is not stable across reboots.
        """
        for mine, theirs in ((self.serial, other.serial), (self.uuid, other.uuid), (self.pci, other.pci)):
            if mine and theirs:
                return mine == theirs
        return False

    def completed_by(self, other: GpuRef) -> GpuRef:
        """This reference with what ``other`` knows and it lacks (a kernel-log finding learning the serial)."""
        return GpuRef(
            index=self.index if self.index is not None else other.index,
            uuid=self.uuid or other.uuid,
            pci=self.pci or other.pci,
            gpu_instance=self.gpu_instance if self.gpu_instance is not None else other.gpu_instance,
            compute_instance=self.compute_instance if self.compute_instance is not None else other.compute_instance,
            serial=self.serial or other.serial,
        )

    def to_dict(self) -> dict[str, Any]:
        """The CRD's ``findings[].gpu``: only the known fields, in the CRD's camelCase."""
        return {_GPU_WIRE_NAMES.get(k, k): v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GpuRef:
        data = data or {}
        return cls(
            index=data.get("index"),
            uuid=data.get("uuid"),
            pci=data.get("pci"),
            gpu_instance=data.get("gpuInstance"),
            compute_instance=data.get("computeInstance"),
            serial=data.get("serial"),
        )


_GPU_WIRE_NAMES = {"gpu_instance": "gpuInstance", "compute_instance": "computeInstance"}


OCCURRENCES_MAX = 32
"""Occurrences a finding remembers (newest kept): enough for any escalation rule's count, small in etcd."""

CORROBORATION_WINDOW = timedelta(seconds=5)
"""How close in time a second source's report of a finding is the same occurrence (NVML's Xid event and its
kernel-log line): the agent's tracker treats it as a corroboration, and :meth:`Finding.corroborate` matches
the corroborating occurrence to the one it names within this window."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One sighting of a finding: when, by which job (``name[pid]`` from the Xid line) and its record id.

    Escalation rules count these within a window. ``ref`` names the source record (the kernel log's
    ``boot:seq``): a report sent again after a lost reply carries the same ``ref`` and is not counted twice.
    """

    at: datetime
    job: str | None = None
    ref: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at": format_time(self.at)}
        if self.job:
            out["job"] = self.job
        if self.ref:
            out["ref"] = self.ref
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Occurrence:
        return cls(parse_time(str(data["at"])), data.get("job") or None, data.get("ref") or None)


@dataclass(slots=True)
class Finding:
    """One thing a detector or an alert saw that may need a repair.

    ``code`` is the finding class (``xid-79``, ``ecc-dbe``, ``row-remap-failure``,
    ``ib-port-down`` …): the key of the policy's ladders and of the runbooks.
    ``count`` grows when the same finding repeats; ``first_seen`` never moves. A ``count`` of 0 is a
    *corroboration* (see :meth:`corroborate`): a second source's word on occurrences already counted, which
    only names what they lacked (the job of an Xid NVML told first) and is never a finding of its own.
    ``signal`` and ``signal_kind`` say which agent signal raised it (``nvml-health``, ``kmsg`` …) and
    whether that signal is polled or an event; empty for alerts and manual findings, which no agent
    poll can clear.
    """

    code: str
    message: str
    action: Action
    severity: Severity = Severity.WARNING
    gpu: GpuRef = field(default_factory=GpuRef)
    xid: int | None = None
    source: Source = Source.AGENT
    first_seen: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_seen: datetime | None = None
    count: int = 1
    evidence: dict[str, str] = field(default_factory=dict)
    signal: str = ""
    signal_kind: SignalKind | None = None
    occurrences: tuple[Occurrence, ...] = ()
    """Every sighting merged into this finding (at most :data:`OCCURRENCES_MAX`); empty: just the one it describes."""

    def key(self) -> tuple[str, str]:
        """Identity for merging: the same class on the same GPU is one finding."""
        return (self.code, self.gpu.identity())

    def sightings(self) -> tuple[Occurrence, ...]:
        """The occurrences this finding stands for: the recorded ones, else the one its own fields describe."""
        if self.occurrences:
            return self.occurrences
        boot, seq = self.evidence.get(EVIDENCE_KMSG_BOOT), self.evidence.get(EVIDENCE_KMSG_SEQ)
        ref = f"{boot}:{seq}" if boot is not None and seq else None
        pid, process = self.evidence.get("pid"), self.evidence.get("process")
        job = f"{process or '?'}[{pid}]"[-200:] if pid else None
        return (Occurrence(self.last_seen or self.first_seen, job, ref),)

    @property
    def is_corroboration(self) -> bool:
        """Whether this is a second source's word on occurrences already counted (``count`` 0), not a sighting."""
        return self.count == 0

    def corroborate(self, other: Finding) -> bool:
        """Name, from ``other``'s occurrences, the job and record of the matching ones here; returns whether any.

        One Xid reaches the agent twice: NVML's event first, which knows no job, then the kernel-log line,
        the only source of ``name[pid]`` and of its record's ``boot:seq``. The line is the same occurrence,
        so it fills in the occurrence here it matches — the nearest within :data:`CORROBORATION_WINDOW`
        whose job and ref it does not contradict, and that lacks one of them — and adds none: the count,
        the times and every rule's tally of plain sightings stay as they were. An occurrence whose ref is
        already recorded (a corroboration sent again) and one that matches nothing change nothing.
        """
        mine = list(self.sightings())
        known = {o.ref for o in mine if o.ref}
        filled = False
        for theirs in other.sightings():
            if theirs.ref and theirs.ref in known:
                continue
            near = [i for i, o in enumerate(mine) if _fills(o, theirs)]
            if not near:
                continue
            i = min(near, key=lambda i: abs(mine[i].at - theirs.at))
            mine[i] = Occurrence(mine[i].at, mine[i].job or theirs.job, mine[i].ref or theirs.ref)
            if theirs.ref:
                known.add(theirs.ref)
            filled = True
        if not filled:
            return False
        self.occurrences = tuple(mine)
        # The line itself, its pid, and its kmsg record (a restarted agent's cursor); no alert's word moves.
        self.evidence.update({k: v for k, v in other.evidence.items() if k != EVIDENCE_RESOLVED_AT})
        if self.gpu.is_same_board(other.gpu):
            self.gpu = self.gpu.completed_by(other.gpu)
        return True

    def merge(self, other: Finding) -> None:
        """Fold a repeat of this finding into it (count up, keep the first time).

        A repeat whose every sighting is already recorded (the same kernel-log record, sent again after
        a lost reply) is the same occurrence: it changes nothing, so no rule counts it twice. A
        corroboration (``count`` 0) only names what its occurrences here lacked (:meth:`corroborate`).
        """
        if other.is_corroboration:
            self.corroborate(other)
            return
        mine, theirs = self.sightings(), other.sightings()
        known = {o.ref for o in mine if o.ref}
        new = tuple(o for o in theirs if not (o.ref and o.ref in known))
        if not new:
            return
        self.occurrences = tuple(sorted((*mine, *new), key=lambda o: o.at))[-OCCURRENCES_MAX:]
        self.count += other.count
        self.first_seen = min(self.first_seen, other.first_seen)
        latest = max(t for t in (self.last_seen, other.last_seen, other.first_seen) if t is not None)
        self.last_seen = latest
        if other.action.severity > self.action.severity:
            self.action = other.action
        self.evidence.update(other.evidence)
        if self.gpu.is_same_board(other.gpu):
            self.gpu = self.gpu.completed_by(other.gpu)  # NVML's report of it may know the serial the log lacked
        stickier = other.signal_kind is SignalKind.EVENT and self.signal_kind is not SignalKind.EVENT
        if other.signal and (stickier or not self.signal):
            # Once an event has raised it, no poll may clear it: the stickier signal names the finding.
            self.signal, self.signal_kind = other.signal, other.signal_kind
        if EVIDENCE_RESOLVED_AT not in other.evidence:
            # It fires again: an earlier "resolved" no longer describes it.
            self.evidence.pop(EVIDENCE_RESOLVED_AT, None)

    def to_dict(self) -> dict[str, Any]:
        """The CRD's ``spec.findings[]`` item."""
        out: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "action": self.action.value,
            "severity": self.severity.value,
            "source": self.source.value,
            "firstSeen": format_time(self.first_seen),
            "count": self.count,
        }
        gpu = self.gpu.to_dict()
        if gpu:
            out["gpu"] = gpu
        if self.xid is not None:
            out["xid"] = self.xid
        if self.last_seen is not None:
            out["lastSeen"] = format_time(self.last_seen)
        if self.evidence:
            out["evidence"] = dict(self.evidence)
        if self.signal:
            out["signal"] = self.signal
        if self.signal_kind is not None:
            out["signalKind"] = self.signal_kind.value
        if self.occurrences:
            out["occurrences"] = [o.to_dict() for o in self.occurrences]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            code=data["code"],
            message=data.get("message", ""),
            action=Action(data.get("action", Action.NOTIFY.value)),
            severity=Severity(data.get("severity", Severity.WARNING.value)),
            gpu=GpuRef.from_dict(data.get("gpu")),
            xid=data.get("xid"),
            source=Source(data.get("source", Source.AGENT.value)),
            first_seen=parse_time(data["firstSeen"]) if data.get("firstSeen") else datetime.now(UTC),
            last_seen=parse_time(data["lastSeen"]) if data.get("lastSeen") else None,
            count=int(data.get("count", 1)),
            evidence=dict(data.get("evidence") or {}),
            signal=str(data.get("signal") or ""),
            signal_kind=SignalKind(data["signalKind"]) if data.get("signalKind") else None,
            occurrences=tuple(Occurrence.from_dict(o) for o in data.get("occurrences") or ()),
        )


def _fills(mine: Occurrence, theirs: Occurrence) -> bool:
    """Whether ``theirs`` is a second source's word on ``mine``: close in time, no contradiction, news."""
    if abs(mine.at - theirs.at) > CORROBORATION_WINDOW:
        return False
    if (mine.job and theirs.job and mine.job != theirs.job) or (mine.ref and theirs.ref and mine.ref != theirs.ref):
        return False
    return bool((theirs.job and not mine.job) or (theirs.ref and not mine.ref))


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of a repair's story, in the words Slack, Jira and the log also use."""

    step: str
    outcome: str
    message: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    action: Action | None = None
    attempt: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step,
            "outcome": self.outcome,
            "message": self.message,
            "at": format_time(self.at),
        }
        if self.action is not None:
            out["action"] = self.action.value
        if self.attempt is not None:
            out["attempt"] = self.attempt
        return out


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    """``status.silence``: the one Alertmanager silence this repair holds for its node, as last written.

    Recorded before the repair moves on, so a restarted operator renews or
    expires this very silence (never a human's, never a second one): ``id`` is
    Alertmanager's, ``ends_at`` when it lapses unless renewed, ``expired_at``
    when RepairBot expired it (the repair ended); an expired record is kept so
    the repair says which silence covered it and a restart never expires twice.
    """

    id: str
    ends_at: datetime
    expired_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "endsAt": format_time(self.ends_at)}
        if self.expired_at is not None:
            out["expiredAt"] = format_time(self.expired_at)
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> SilenceRecord | None:
        """The record as the status holds it; None for none (or one without an id: nothing to renew)."""
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("endsAt"):
            return None
        expired = raw.get("expiredAt")
        return cls(str(raw["id"]), parse_time(str(raw["endsAt"])), parse_time(str(expired)) if expired else None)


def repair_name(node: str, when: datetime) -> str:
    """``<node>-<yyyymmddhhmmss>``: sortable, unique per node per second, readable in kubectl."""
    return f"{node}-{when.astimezone(UTC):%Y%m%d%H%M%S}"


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a ``Z``.

    Milliseconds, not Kubernetes' usual whole seconds: MTTA is measured from
    these stamps and RepairBot acknowledges faults in well under a second.
    """
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@functools.lru_cache(maxsize=65536)
def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`; also accepts fractional seconds and offsets.

    Cached: every reconcile reads the detection times of every recent repair in
    the fleet (storm breaker, lemon rule), the same few thousand strings again
    and again; datetimes are immutable, so sharing them is safe.
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
