"""Size bounds for everything a user or a fault can grow inside a GPURepair.

etcd refuses any object over about 1.5 MiB, and the API server answers such a
write with a 500 that no retry can cure; a repair that grows past it can no
longer record a single step. So every part of a GPURepair that an outsider
controls has a cap here, applied where the part is written:

* messages (a finding's, a history entry's, the status line) are cut to a
  fixed length with a visible marker that says how much was cut;
* a finding's evidence keeps a bounded number of short values;
* a repair keeps at most :data:`FINDINGS_MAX` findings: the strongest and
  newest stay, the rest fold into one ``folded-findings`` item whose count
  says how many repeats it stands for;
* a repair's history keeps at most :data:`HISTORY_MAX` entries: the oldest
  fold into one ``history-folded`` entry saying how many steps it holds and
  their time span.

With these caps a repair stays far below :data:`OBJECT_SIZE_TARGET` (512 KiB,
a third of etcd's limit) whatever arrives. Pure: plain data in, plain data
out; imports nothing of ours but :mod:`repairbot.model`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from repairbot.model import Action, Finding, Severity, format_time, parse_time

__all__ = [
    "EVIDENCE_KEYS_MAX",
    "EVIDENCE_KEY_MAX",
    "EVIDENCE_VALUE_MAX",
    "FINDINGS_MAX",
    "FOLDED_FINDINGS_CODE",
    "HISTORY_FOLDED_STEP",
    "HISTORY_KEEP_AFTER_FOLD",
    "HISTORY_MAX",
    "MESSAGE_MAX",
    "OBJECT_SIZE_TARGET",
    "HistoryFold",
    "bound_finding",
    "cap_findings",
    "encoded_size",
    "fold_history",
    "truncate",
]

OBJECT_SIZE_TARGET = 512 * 1024
"""What every GPURepair stays under (etcd's own limit is 1.5 MiB; a third of it leaves room for growth)."""
MESSAGE_MAX = 1024
"""Bytes (UTF-8) of any one message kept in the object; the rest is cut with a marker."""
EVIDENCE_KEYS_MAX = 24
EVIDENCE_KEY_MAX = 64
EVIDENCE_VALUE_MAX = 256
FINDINGS_MAX = 24
"""Distinct findings (class and GPU) one repair keeps; a node has 8 GPUs and a handful of classes."""
HISTORY_MAX = 120
"""History entries one repair keeps; the oldest fold into one summary entry past it."""
HISTORY_KEEP_AFTER_FOLD = 90
"""Entries left after a fold (summary included): folding happens in batches, not on every write."""
FOLDED_FINDINGS_CODE = "folded-findings"
HISTORY_FOLDED_STEP = "history-folded"

_MARKER = " … [truncated {cut} of {total} bytes]"


def truncate(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, ending in a marker that says how much was cut.

    Bytes, not characters, because bytes are what etcd counts: a message of
    emoji is four times its length.
    """
    if len(text) * 4 <= limit:  # fast path: even four bytes a character fits
        return text
    data = text.encode("utf-8", "surrogatepass")
    total = len(data)
    if total <= limit:
        return text
    # The marker's own length depends on the numbers in it; size it for the worst case.
    room = max(limit - len(_MARKER.format(cut=total, total=total).encode("utf-8")), 0)
    head = data[:room].decode("utf-8", "ignore")  # a character cut in half is dropped whole
    cut = total - len(head.encode("utf-8", "surrogatepass"))
    return head + _MARKER.format(cut=cut, total=total)


def bound_finding(finding: Finding) -> Finding:
    """A copy of ``finding`` with its message and evidence cut to the bounds (the finding's identity kept)."""
    evidence = {
        truncate(str(key), EVIDENCE_KEY_MAX): truncate(str(value), EVIDENCE_VALUE_MAX)
        for key, value in list(finding.evidence.items())[:EVIDENCE_KEYS_MAX]
    }
    bounded = Finding.from_dict(finding.to_dict())
    bounded.message = truncate(finding.message)
    bounded.evidence = evidence
    return bounded


def _strength(finding: Finding) -> tuple[int, int, float]:
    """Sort key, strongest first after ``reverse``: action, severity, then how recently it was seen."""
    seen = finding.last_seen or finding.first_seen
    return (finding.action.severity, list(Severity).index(finding.severity), seen.timestamp())


def cap_findings(findings: Sequence[Finding], limit: int = FINDINGS_MAX) -> list[Finding]:
    """At most ``limit`` findings: the strongest and newest kept in their order, the rest folded into one.

    The folded item (code ``folded-findings``, action ``notify``, severity
    ``info``) can never drive a ladder — every kept finding is at least as
    strong — and its ``count`` is the number of observations it stands for,
    so nothing seen is lost from the tally. Folding it again adds up.
    """
    if len(findings) <= limit:
        return list(findings)
    previous = next((f for f in findings if f.code == FOLDED_FINDINGS_CODE), None)
    real = [f for f in findings if f.code != FOLDED_FINDINGS_CODE]
    ranked = sorted(range(len(real)), key=lambda i: _strength(real[i]), reverse=True)
    keep = set(ranked[: limit - 1])
    kept = [f for i, f in enumerate(real) if i in keep]
    dropped = [f for i, f in enumerate(real) if i not in keep]
    earlier = [previous] if previous is not None else []
    count = sum(f.count for f in dropped + earlier)
    codes = {f.code for f in dropped}
    for item in earlier:
        codes.update(code for code in item.evidence.get("codes", "").split(",") if code)
    since = min([f.first_seen for f in dropped] + [_since(f) for f in earlier])
    latest = max(f.last_seen or f.first_seen for f in findings)
    folded = Finding(
        code=FOLDED_FINDINGS_CODE,
        message=f"{count} observations of weaker or older findings folded to keep this repair small",
        action=Action.NOTIFY,
        severity=Severity.INFO,
        source=(dropped + earlier)[0].source,
        # Newest of all, not oldest: the operator's driving finding is the oldest of the strongest, and
        # a tally must never drive a repair. When the folded ones were first seen is kept as evidence.
        first_seen=latest,
        last_seen=latest,
        count=count,
        evidence={"codes": truncate(",".join(sorted(codes)), EVIDENCE_VALUE_MAX), "since": format_time(since)},
    )
    return [*kept, folded]


def _since(folded: Finding) -> datetime:
    try:
        return parse_time(folded.evidence["since"])
    except (KeyError, ValueError):
        return folded.first_seen


@dataclass(frozen=True, slots=True)
class HistoryFold:
    """A history after folding, and the delivery cursors that must move with it (None: nothing folded)."""

    history: list[dict[str, Any]]
    cursors: dict[str, int] | None = None


def fold_history(
    history: Sequence[Mapping[str, Any]],
    new: Sequence[Mapping[str, Any]],
    cursors: Mapping[str, int],
    *,
    limit: int = HISTORY_MAX,
    keep: int = HISTORY_KEEP_AFTER_FOLD,
) -> HistoryFold:
    """``history + new`` with every message cut, and past ``limit`` its oldest entries folded into one.

    The notifier walks the history by index (``status.deliveries.<target>.sent``),
    so folding shifts what every cursor points at. A fold therefore happens only
    when every cursor has caught up with the stored history — nothing is in
    flight, nothing undelivered is folded — and the cursors move back by the
    same number of entries in the same write (returned in ``cursors``). A target
    with no cursor yet gets the summary entry as its first message. Until the
    notifier has caught up the history may grow past ``limit``; at twice the
    limit it folds anyway (a notifier that stopped for good must not let the
    object grow without end), setting lagging cursors to the summary.
    """
    entries = [_bounded_entry(e) for e in history] + [_bounded_entry(e) for e in new]
    if len(entries) <= limit:
        return HistoryFold(entries)
    caught_up = all(sent >= len(history) for sent in cursors.values())
    if not caught_up and len(entries) <= 2 * limit:
        return HistoryFold(entries)
    # Only stored entries fold; the new ones are this write's news and stay whole.
    fold_count = min(len(entries) - keep + 1, len(history))
    if fold_count < 2:
        return HistoryFold(entries)
    folded, rest = entries[:fold_count], entries[fold_count:]
    moved = {target: (sent - fold_count + 1 if sent >= fold_count else 0) for target, sent in cursors.items()}
    return HistoryFold([_summary(folded), *rest], moved)


def _bounded_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(entry)
    if isinstance(out.get("message"), str) and len(out["message"]) > MESSAGE_MAX:
        out["message"] = truncate(out["message"])
    return out


def _summary(folded: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One entry for many: how many steps, their span, and what kinds of step they were."""
    steps = 0
    kinds: dict[str, int] = {}
    for entry in folded:
        if entry.get("step") == HISTORY_FOLDED_STEP:
            steps += int(entry.get("folded") or 1)
            continue
        steps += 1
        kind = str(entry.get("step", ""))
        kinds[kind] = kinds.get(kind, 0) + 1
    first = str(folded[0].get("since") or folded[0].get("at"))
    last = str(folded[-1].get("at"))
    top = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:8])
    message = truncate(f"{steps} earlier steps folded to keep this repair small ({first} to {last}): {top}")
    at = max((str(e.get("at")) for e in folded), key=lambda text: parse_time(text))
    return {"step": HISTORY_FOLDED_STEP, "outcome": "folded", "message": message, "at": at,
            "folded": steps, "since": first}  # fmt: skip


def encoded_size(obj: Any) -> int:
    """Bytes of ``obj`` as compact JSON: what the API server and etcd measure."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode("utf-8", "surrogatepass"))
