"""Intake: the one door through which every source's findings become the node's one record.

The agent, the alert webhook, a human's ``repairbot.io/state=faulty`` label and
``repairbot repair`` all call :meth:`Intake.report`. It finds the node's
*record* — an unreleased quarantine first (a quarantine is sticky: new findings
are recorded on it and nothing else happens), else the active repair (label
``repairbot.io/node``, phase not terminal) — and merges the new findings into
it, counting repeats up and keeping ``firstSeen``; only without a record does
it create a new repair named ``<node>-<yyyymmddhhmmss>``.

The door applies every rule once, for every source:

* opt-out: a ``repairbot.io/disabled=true`` node is refused with
  :class:`NodeOptedOut` before anything is written (one node GET, paid only
  when creating; a merge needs none);
* conflicts: merges are optimistic-concurrency updates, retried on 409; a
  409 on *create* means another reporter opened the node's repair in the
  same second, so intake re-reads and merges into it — it picks another name
  only when a finished repair holds the name. Reporters racing across a second
  boundary create two Pending objects; the operator folds the later one into
  the record before it admits anything (:mod:`repairbot.operator.twins`);
* no node writes: intake only reads the node (opt-out, existence). The
  ``repairbot.io/state=faulty`` label of a repair that waits (budget queue,
  open breaker) is the operator's to write, once it decides the repair waits
  (:mod:`repairbot.operator.reconciler`); a repair admitted at once goes
  straight to ``repairing`` in the operator's cordon patch, so an alert costs
  its one write here;
* size bounds: findings capped in :func:`merge_findings`; a write the API server refuses as too
  large is retried once with the findings shrunk, then refused as :class:`IntakeTooLarge`.

Reads come from a :class:`RecordSource`: the API by default (:class:`ApiRecords`, for the CLI and
tests), or a watch cache a component already keeps (the agent's own node's repairs, the webhook's
informers), so a report costs its write and nothing else. A cache may lag; intake stays safe because
every write is optimistic (it carries the resourceVersion read: a stale cache makes it 409, and the
next attempt re-reads that node from the API), and because intake remembers its own last write per
repair (read-your-writes): a cache a moment behind intake's own create never makes it create a twin.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.rest import ApiException

from repairbot.bounds import FINDINGS_MAX, bound_finding, cap_findings, truncate
from repairbot.contract import is_active  # also importable from here, as it always was
from repairbot.kube.client import as_object, is_too_large, raw_call, retried
from repairbot.kube.repairs import repairs_of_node
from repairbot.model import (
    CONDITION_RELEASED,
    EVIDENCE_FINGERPRINT,
    EVIDENCE_RESOLVED_AT,
    EVIDENCE_WHILE_QUARANTINED,
    GROUP,
    KIND,
    LABEL_DISABLED,
    LABEL_NODE,
    PLURAL,
    VERSION,
    Finding,
    Phase,
    Source,
    format_time,
    repair_name,
)

log = logging.getLogger(__name__)

_NAME_TRIES = 5
"""Fresh names tried when finished repairs hold the node's name for this second (each a cheap 409)."""


class IntakeRefused(Exception):
    """Intake will not take findings for this node; ``reason`` is the short word the webhook answers with."""

    reason = "refused"

    def __init__(self, node: str, message: str) -> None:
        super().__init__(f"node {node}: {message}")
        self.node = node


class NodeOptedOut(IntakeRefused):
    """The node carries ``repairbot.io/disabled=true``: RepairBot never touches it, so no repair is opened."""

    reason = "node-disabled"

    def __init__(self, node: str) -> None:
        super().__init__(node, f"{LABEL_DISABLED}=true: RepairBot does not touch this node; nothing was opened")


class NodeNotFound(IntakeRefused):
    """No such node: a repair for it would be a record of nothing."""

    reason = "unknown-node"

    def __init__(self, node: str) -> None:
        super().__init__(node, "no such node (404); nothing was opened")


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """Which repair took the findings, whether it was opened just now, and whether it is a quarantine.

    ``name`` is empty when a report of corroborations only (``count`` 0) found no occurrence to name.
    """

    name: str
    node: str
    created: bool
    findings: int
    quarantined: bool = False


def merge_findings(
    existing: list[dict[str, Any]], new: Iterable[Finding], *, limit: int = FINDINGS_MAX
) -> list[dict[str, Any]]:
    """Fold ``new`` findings into a repair's ``spec.findings`` (pure), within the size bounds.

    The same finding class on the same GPU is one item: its count grows, its
    ``firstSeen`` stays, its action becomes the stronger of the two. Messages
    and evidence are cut to :mod:`repairbot.bounds`' caps, and past ``limit``
    items the weakest and oldest fold into one counted item. A corroboration
    (``count`` 0) only names the job of an occurrence already here; one that
    matches no item here is no finding and adds none.
    """
    merged = [bound_finding(Finding.from_dict(item)) for item in existing]
    by_key = {finding.key(): finding for finding in merged}
    for finding in new:
        known = by_key.get(finding.key())
        if known is None and finding.is_corroboration:
            continue
        if known is None:
            copy = bound_finding(finding)
            merged.append(copy)
            by_key[copy.key()] = copy
        else:
            known.merge(bound_finding(finding))
    return [finding.to_dict() for finding in cap_findings(merged, limit)]


def corroborate_findings(
    existing: list[dict[str, Any]], corroborations: Iterable[Finding], placed: set[tuple[str, str, str]]
) -> tuple[list[dict[str, Any]] | None, list[Finding]]:
    """Let each corroboration name the job of its occurrence in ``existing`` (pure).

    Returns the findings as they are then (None: none changed) and the corroborations that matched nothing
    here, for an older repair of the node. ``placed`` holds the ``(code, gpu, ref)`` already recorded in any
    of the node's repairs: a corroboration sent again after a lost reply is dropped, never placed twice.
    """
    items = [bound_finding(Finding.from_dict(item)) for item in existing]
    changed, left = False, []
    for corroboration in corroborations:
        refs = {o.ref for o in corroboration.sightings() if o.ref}
        code, gpu = corroboration.key()
        if refs and all((code, gpu, ref) in placed for ref in refs):
            continue
        target = next((f for f in items if f.key() == corroboration.key()), None)
        if target is not None and target.corroborate(bound_finding(corroboration)):
            changed = True
            placed.update((code, gpu, ref) for ref in refs)
        else:
            left.append(corroboration)
    return ([f.to_dict() for f in items] if changed else None), left


def _placed(repairs: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """Every ``(code, gpu, ref)`` the repairs' findings record: kernel-log records already placed."""
    out: set[tuple[str, str, str]] = set()
    for repair in repairs:
        for item in (repair.get("spec") or {}).get("findings") or ():
            finding = Finding.from_dict(item)
            code, gpu = finding.key()
            out.update((code, gpu, o.ref) for o in finding.sightings() if o.ref)
    return out


SHRUNK_FINDINGS_MAX = 4
"""Findings kept when the API server refused a repair as too large: the strongest few, and the tally."""


class IntakeTooLarge(ValueError):
    """The API server refused the repair for its size even after shrinking: retrying the same report cannot help."""


def stamp_while_quarantined(findings: list[dict[str, Any]], new: Iterable[Finding]) -> list[dict[str, Any]]:
    """Mark the items ``new`` fed with their count, so the operator writes one history line per merge (pure).

    The operator owns ``status.history``; intake only leaves this mark (as the
    webhook leaves ``resolvedAt``) and the operator turns every count it has not
    recorded yet into a ``finding-while-quarantined`` entry.
    """
    keys = {finding.key() for finding in new}
    out = []
    for item in findings:
        if Finding.from_dict(item).key() in keys:
            evidence = {**(item.get("evidence") or {}), EVIDENCE_WHILE_QUARANTINED: str(item["count"])}
            item = {**item, "evidence": evidence}
        out.append(item)
    return out


def is_released(repair: Mapping[str, Any]) -> bool:
    """A quarantine a human released (condition ``Released=True``): no longer the node's record."""
    conditions = (repair.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == CONDITION_RELEASED and c.get("status") == "True" for c in conditions)


def is_held_quarantine(repair: Mapping[str, Any]) -> bool:
    """Quarantined and not yet released: the node's record until a human releases it.

    A dry-run repair touched nothing, so its "quarantine" holds nothing either.
    """
    phase = (repair.get("status") or {}).get("phase")
    dry_run = bool((repair.get("spec") or {}).get("dryRun"))
    return phase == Phase.QUARANTINED.value and not dry_run and not is_released(repair)


def _age_key(repair: Mapping[str, Any]) -> tuple[str, str]:
    return (repair["metadata"].get("creationTimestamp", ""), repair["metadata"]["name"])


def oldest_active(repairs: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The node's active repair; if twins exist, the one that counts: admitted first, then the oldest."""
    active = [r for r in repairs if is_active(r) and not r["metadata"].get("deletionTimestamp")]
    active.sort(key=lambda r: (((r.get("status") or {}).get("phase") or "Pending") == "Pending", *_age_key(r)))
    return active[0] if active else None


def node_record(repairs: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The GPURepair that takes a node's new findings: its unreleased quarantine, else its active repair."""
    repairs = [r for r in repairs if not r["metadata"].get("deletionTimestamp")]
    held = sorted((r for r in repairs if is_held_quarantine(r)), key=_age_key)
    return held[0] if held else oldest_active(repairs)


@dataclass(frozen=True, slots=True)
class _Report:
    """One call of :meth:`Intake.report`, carried through its retries."""

    node: str
    findings: tuple[Finding, ...]
    source: Source
    reason: str | None
    requested_action: str | None
    dry_run: bool

    def spec(self, limit: int = FINDINGS_MAX) -> dict[str, Any]:
        """The spec of a new repair opened by this report (at most ``limit`` findings)."""
        spec: dict[str, Any] = {
            "nodeName": self.node,
            "source": self.source.value,
            "findings": merge_findings([], self.findings, limit=limit),
        }
        if self.dry_run:
            spec["dryRun"] = True
        if self.reason:
            spec["reason"] = truncate(self.reason)
        if self.requested_action:
            spec["requestedAction"] = self.requested_action
        return spec


class RecordSource(Protocol):
    """Where intake reads what it decides on: a node's GPURepairs, and the node's own metadata.

    A watch cache answers None for what it does not hold yet (not synced): intake then asks the API.
    """

    def repairs_of(self, node: str) -> list[dict[str, Any]] | None:
        """Every GPURepair of ``node`` this source knows (copies intake may change), or None: ask the API."""
        ...

    def node_metadata(self, node: str) -> dict[str, Any] | None:
        """The node's ``metadata`` (labels, resourceVersion), None to ask the API; :class:`NodeNotFound` if none."""
        ...


class ApiRecords:
    """:class:`RecordSource` straight from the API server: one list per read of a node's repairs, one GET per node."""

    def __init__(self, api: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)

    def repairs_of(self, node: str) -> list[dict[str, Any]]:
        return repairs_of_node(self._custom, node)

    def node_metadata(self, node: str) -> dict[str, Any]:
        try:
            return dict(raw_call(self._core.read_node, node).get("metadata") or {})
        except ApiException as error:
            if error.status == 404:
                raise NodeNotFound(node) from error
            raise


OWN_WRITES_MAX = 4096
"""Nodes whose last write intake remembers until its cache shows it (bounded; the oldest forgotten first)."""


def _older(seen: Mapping[str, Any], own: Mapping[str, Any]) -> bool:
    """``seen`` (from a cache) predates ``own`` (what intake wrote). resourceVersions compared as numbers where
    they are (etcd's are); otherwise any difference counts as older — a wrong guess only costs a 409."""
    a, b = str(seen["metadata"].get("resourceVersion") or ""), str(own["metadata"].get("resourceVersion") or "")
    if a.isdigit() and b.isdigit():
        return int(a) < int(b)
    return a != b


class OwnWrites:
    """Intake's own last write of each repair, per node, until a read shows it: read-your-writes over a cache.

    A watch cache lags the API server by a moment; without this, a second finding right after intake's
    own create would find no record in the cache and create a twin. Entries go as soon as a read shows
    the write (or newer), so it holds only writes in flight through the watch; bounded by node count.
    """

    def __init__(self, capacity: int = OWN_WRITES_MAX) -> None:
        self._capacity = capacity
        self._by_node: OrderedDict[str, dict[str, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, repair: Mapping[str, Any]) -> None:
        node = ((repair.get("metadata") or {}).get("labels") or {}).get(LABEL_NODE)
        if not node:
            return
        with self._lock:
            self._by_node.setdefault(node, {})[repair["metadata"]["name"]] = deepcopy(dict(repair))
            self._by_node.move_to_end(node)
            while len(self._by_node) > self._capacity:
                self._by_node.popitem(last=False)

    def forget(self, node: str, name: str) -> None:
        with self._lock:
            self._by_node.get(node, {}).pop(name, None)

    def overlay(self, node: str, repairs: list[dict[str, Any]], *, authoritative: bool) -> list[dict[str, Any]]:
        """``repairs`` as read, with intake's own newer writes in their place (or added, when the read lacks them).

        An ``authoritative`` read (the API's) replaces what is remembered: it is never overlaid.
        """
        with self._lock:
            own = self._by_node.get(node)
            if not own:
                return repairs
            by_name = {r["metadata"]["name"]: r for r in repairs}
            for name, written in list(own.items()):
                seen = by_name.get(name)
                if authoritative or (seen is not None and not _older(seen, written)):
                    del own[name]  # the read shows this write (or later): nothing to remember
                    continue
                by_name[name] = deepcopy(written)
            if not own:
                del self._by_node[node]
            return list(by_name.values())


class _NameTaken(Exception):
    """Create answered 409: someone holds the name. The caller re-reads before it picks another."""


class Intake:
    """Creates or merges GPURepairs through the Kubernetes API: the one door for every source."""

    def __init__(
        self, api: client.ApiClient, records: RecordSource | None = None, *, fallback: RecordSource | None = None
    ) -> None:
        """``records``: a watch cache to read from (default: the API). ``fallback``: where a retry after a 409,
        and whatever the cache does not hold, is read (default: the API, nodes by GET)."""
        self._custom = client.CustomObjectsApi(api)
        self._api: RecordSource = fallback or ApiRecords(api)
        self._records = records
        self._own = OwnWrites() if records is not None else None

    def repairs_of(self, node: str) -> list[dict[str, Any]]:
        """The node's repairs as the API server holds them now (one list request)."""
        return list(self._api.repairs_of(node) or [])

    def _read(self, node: str, fresh: bool) -> list[dict[str, Any]]:
        """The node's repairs: from the cache with intake's own writes laid over, or ``fresh`` from the API."""
        cached = None if fresh or self._records is None else self._records.repairs_of(node)
        authoritative = cached is None
        repairs = list(self._api.repairs_of(node) or []) if cached is None else cached
        return repairs if self._own is None else self._own.overlay(node, repairs, authoritative=authoritative)

    def _node_metadata(self, node: str, fresh: bool) -> dict[str, Any]:
        cached = None if fresh or self._records is None else self._records.node_metadata(node)
        return cached if cached is not None else (self._api.node_metadata(node) or {})

    def _remember(self, repair: dict[str, Any]) -> dict[str, Any]:
        if self._own is not None:
            self._own.remember(repair)
        return repair

    def active_repair(self, node: str) -> dict[str, Any] | None:
        return oldest_active(self.repairs_of(node))

    def report(
        self,
        node: str,
        findings: list[Finding],
        *,
        source: Source = Source.AGENT,
        reason: str | None = None,
        requested_action: str | None = None,
        dry_run: bool = False,
    ) -> IntakeResult:
        """Hand ``findings`` for ``node`` to its record, opening a repair only if it has none.

        Raises :class:`NodeOptedOut` for a ``repairbot.io/disabled=true`` node and
        :class:`NodeNotFound` for a node that does not exist, before writing anything.

        A corroboration (``count`` 0: the kernel-log line of an Xid NVML told first, naming its job) opens
        nothing and counts nothing: it names the job of its occurrence in the repair that holds it, the node's
        record or an older one (a lone application Xid's repair ends at once, before its line may be read).
        """
        if not findings:
            raise ValueError(f"node {node}: intake needs at least one finding")
        counted = tuple(f for f in findings if not f.is_corroboration)
        corroborations = tuple(f for f in findings if f.is_corroboration)
        result = IntakeResult("", node, False, 0)
        if counted:
            wanted = _Report(node, counted, source, reason, requested_action, dry_run)
            tries = _Tries()  # the first attempt reads the cache; every retry (after a 409) the API
            result = retried(lambda: self._report_once(wanted, fresh=tries.next_is_retry()))
        if corroborations:
            again = _Tries()
            named = retried(lambda: self._corroborate_once(node, corroborations, fresh=again.next_is_retry()))
            if not result.name and named:
                result = IntakeResult(named[0], node, False, 0)
        return result

    def merge_into(
        self,
        record: dict[str, Any],
        findings: list[Finding],
        *,
        source: Source = Source.AGENT,
        requested_action: str | None = None,
    ) -> IntakeResult:
        """Merge ``findings`` into ``record`` itself (the operator folding a twin); a 409 re-reads that record."""
        node = str(record["spec"]["nodeName"])
        wanted = _Report(node, tuple(findings), source, None, requested_action, False)
        handed = [record]  # the first attempt merges into the record as handed over; each retry re-reads it

        def merge() -> IntakeResult:
            if handed:
                return self._merge(handed.pop(), wanted)
            name = record["metadata"]["name"]
            return self._merge(as_object(self._custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)), wanted)

        return retried(merge)

    def note_resolved(self, node: str, fingerprint: str, at: datetime) -> str | None:
        """Mark the active repair's findings from alert ``fingerprint`` as resolved at ``at``.

        Returns the repair's name, or None when the node has no active repair or
        none of its findings came from that alert. The repair itself goes on: an
        alert that stops firing is evidence, not proof, that the node is well —
        the operator writes it into the repair's history for the humans.
        """
        tries = _Tries()
        return retried(lambda: self._note_resolved_once(node, fingerprint, format_time(at), tries.next_is_retry()))

    def _note_resolved_once(self, node: str, fingerprint: str, at: str, fresh: bool) -> str | None:
        current = oldest_active(self._read(node, fresh))
        if current is None:
            return None
        findings = (current.get("spec") or {}).get("findings") or []
        marked = False
        for item in findings:
            evidence = item.get("evidence") or {}
            if evidence.get(EVIDENCE_FINGERPRINT) == fingerprint and EVIDENCE_RESOLVED_AT not in evidence:
                item["evidence"] = {**evidence, EVIDENCE_RESOLVED_AT: at}
                marked = True
        if not marked:
            return None
        name = current["metadata"]["name"]
        # resourceVersion travels with ``current``: a concurrent intake merge makes this 409 and we re-read.
        self._remember(as_object(self._custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, name, current)))
        log.info("intake noted resolved node=%s repair=%s fingerprint=%s", node, name, fingerprint)
        return str(name)

    def _report_once(self, wanted: _Report, *, fresh: bool) -> IntakeResult:
        repairs = self._read(wanted.node, fresh)
        current = node_record(repairs)
        if current is not None:
            try:
                return self._merge_shrinking(current, wanted)
            except ApiException as error:
                if error.status != 404 or fresh or self._own is None:
                    raise
                # The cache (or intake's memory) still held a repair that is gone (a folded twin): ask the API.
                self._own.forget(wanted.node, current["metadata"]["name"])
                return self._report_once(wanted, fresh=True)
        self._check_node(wanted.node, fresh)
        taken = {r["metadata"]["name"] for r in repairs}
        for name in _candidate_names(wanted.node, datetime.now(UTC), taken):
            try:
                return _shrinking(wanted, partial(self._create, name, wanted))
            except _NameTaken:
                # Another reporter opened the node's repair in this same second, or a finished
                # repair holds the name: re-read from the API, and merge into a record if there is one now.
                repairs = self._read(wanted.node, fresh=True)
                current = node_record(repairs)
                if current is not None:
                    return self._merge_shrinking(current, wanted)
                taken |= {r["metadata"]["name"] for r in repairs}
        raise RuntimeError(f"node {wanted.node}: no free repair name after {_NAME_TRIES} tries")

    def _corroborate_once(self, node: str, corroborations: tuple[Finding, ...], *, fresh: bool) -> list[str]:
        """Place each corroboration in the repair holding its occurrence: the record first, then newest first.

        Returns the repairs written. A 409 re-runs it all from a fresh read, where what was written is placed.
        """
        repairs = [r for r in self._read(node, fresh) if not r["metadata"].get("deletionTimestamp")]
        record = node_record(repairs)
        ordered = sorted(repairs, key=_age_key, reverse=True)
        if record is not None:
            ordered = [record, *(r for r in ordered if r is not record)]
        placed, left, written = _placed(repairs), list(corroborations), []
        for repair in ordered:
            if not left:
                break
            spec = repair.setdefault("spec", {})
            findings, left = corroborate_findings(spec.get("findings") or [], left, placed)
            if findings is None:
                continue
            spec["findings"] = findings
            name = repair["metadata"]["name"]
            self._remember(as_object(self._custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, name, repair)))
            written.append(str(name))
        if left:
            log.info("intake dropped corroborations node=%s findings=%d: no occurrence of theirs is recorded",
                     node, len(left))  # fmt: skip
        if written:
            log.info("intake named jobs node=%s repairs=%s", node, ",".join(written))
        return written

    def _merge_shrinking(self, current: dict[str, Any], wanted: _Report) -> IntakeResult:
        return _shrinking(wanted, lambda limit: self._merge(deepcopy(current), wanted, limit=limit))

    def _merge(self, current: dict[str, Any], wanted: _Report, *, limit: int = FINDINGS_MAX) -> IntakeResult:
        spec = current.setdefault("spec", {})
        quarantined = is_held_quarantine(current)
        spec["findings"] = merge_findings(spec.get("findings") or [], wanted.findings, limit=limit)
        if quarantined:
            spec["findings"] = stamp_while_quarantined(spec["findings"], wanted.findings)
        elif wanted.requested_action and not spec.get("requestedAction"):
            spec["requestedAction"] = wanted.requested_action
        # replace_* sends metadata.resourceVersion: a concurrent writer makes this 409 and we re-read.
        name = current["metadata"]["name"]
        updated = self._remember(
            as_object(self._custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, name, current))
        )
        log.info("intake merged node=%s repair=%s findings=%d quarantined=%s", wanted.node, name,
                 len(wanted.findings), quarantined)  # fmt: skip
        return IntakeResult(updated["metadata"]["name"], wanted.node, False, len(spec["findings"]), quarantined)

    def _check_node(self, node: str, fresh: bool) -> None:
        """The one node read a new repair costs (none from a cache that serves nodes): does the node exist, may
        RepairBot touch it? Intake never writes the node: labelling a waiting repair's node is the operator's."""
        metadata = self._node_metadata(node, fresh)
        if (metadata.get("labels") or {}).get(LABEL_DISABLED) == "true":
            raise NodeOptedOut(node)

    def _create(self, name: str, wanted: _Report, limit: int = FINDINGS_MAX) -> IntakeResult:
        spec = wanted.spec(limit)
        metadata: dict[str, Any] = {"name": name, "labels": {LABEL_NODE: wanted.node}}
        body: dict[str, Any] = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}
        try:
            created = self._remember(as_object(self._custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)))
        except ApiException as error:
            if error.status == 409:
                raise _NameTaken(name) from error
            raise
        log.info("intake created node=%s repair=%s findings=%d", wanted.node, name, len(wanted.findings))
        return IntakeResult(created["metadata"]["name"], wanted.node, True, len(spec["findings"]))


class _Tries:
    """Counts the attempts of one retried call: the first reads the cache, each retry the API."""

    def __init__(self) -> None:
        self._count = 0

    def next_is_retry(self) -> bool:
        self._count += 1
        return self._count > 1


def _shrinking(wanted: _Report, write: Callable[[int], IntakeResult]) -> IntakeResult:
    """One write; if the API server refuses it for its size, once more with the findings shrunk.

    A refusal for size is never retried as it was (it can only fail again):
    the second try keeps the strongest few findings and the tally of the
    rest; a second refusal is :class:`IntakeTooLarge`, for the caller to
    record and drop rather than re-send forever.
    """
    try:
        return write(FINDINGS_MAX)
    except ApiException as error:
        if not is_too_large(error):
            raise
        log.warning("intake refused as too large node=%s; retrying with findings shrunk", wanted.node)
    try:
        return write(SHRUNK_FINDINGS_MAX)
    except ApiException as error:
        if not is_too_large(error):
            raise
        raise IntakeTooLarge(f"node {wanted.node}: the API server refused the repair as too large "
                             f"even with its findings shrunk ({error.status})") from None  # fmt: skip


def _candidate_names(node: str, now: datetime, taken: set[str]) -> Iterable[str]:
    """``<node>-<yyyymmddhhmmss>`` first; when a finished repair holds it, ``-1``, ``-2`` … (bounded)."""
    base = repair_name(node, now)
    names = [base, *(f"{base}-{n}" for n in range(1, _NAME_TRIES))]
    free = [name for name in names if name not in taken]
    return free or names[-1:]
