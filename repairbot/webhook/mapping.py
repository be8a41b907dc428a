"""Which node an alert is about, and which finding it becomes.

Alert rules name nodes in many dialects: dcgm-exporter says ``Hostname``,
kube-state-metrics ``node``, node-exporter only ``instance`` (``10.0.0.7:9100``).
:func:`map_node` tries the configured labels in order and matches the value
against the cluster's node names and InternalIP addresses, so an alert can
only ever touch a node that exists.

What an alert *means* is configuration, not code: :class:`AlertRules` maps an
alertname to a finding class. The only built-in reading is ``xid-from-label``
(the ``xid``/``err_code`` label through the Xid catalog). Anything unmapped
becomes ``alert-<alertname>`` with action ``notify``: the policy's ``default``
ladder applies, so no alert can cause a destructive action unless someone
mapped it on purpose. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from repairbot.bounds import truncate
from repairbot.catalog.xid import XidCatalog, default_catalog
from repairbot.detectors.kernel_log import normalize_pci
from repairbot.model import EVIDENCE_FINGERPRINT, Action, Finding, GpuRef, Severity, Source
from repairbot.webhook.payloads import Alert, SenderKind

DEFAULT_NODE_LABELS: tuple[str, ...] = ("node", "kubernetes_node", "nodename", "Hostname", "hostname")
INSTANCE_LABEL = "instance"
XID_FROM_LABEL = "xid-from-label"
XID_LABELS = ("xid", "err_code")
DEFAULT_RULES: Mapping[str, str] = {"GpuXid": XID_FROM_LABEL, "DCGMXidErrors": XID_FROM_LABEL}
UNMAPPED_PREFIX = "alert-"

REASON_NO_NODE_LABEL = "no-node-label"
REASON_UNKNOWN_NODE = "unknown-node"
EVIDENCE_VALUE_MAX = 1024
_CODE_CHARS = re.compile(r"[^a-z0-9]+")


class MappingError(ValueError):
    """The alert mapping file is wrong; the message names the rule."""


@dataclass(frozen=True, slots=True)
class NodeIndex:
    """The cluster's nodes as an alert can name them: by name or by address."""

    names: frozenset[str]
    by_address: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_nodes(cls, nodes: Iterable[Mapping[str, Any]]) -> NodeIndex:
        """From Node objects (the API's JSON): names, and InternalIP/Hostname addresses."""
        names: set[str] = set()
        by_address: dict[str, str] = {}
        for node in nodes:
            name = (node.get("metadata") or {}).get("name")
            if not name:
                continue
            names.add(name)
            for address in (node.get("status") or {}).get("addresses") or []:
                if address.get("type") in ("InternalIP", "Hostname") and address.get("address"):
                    by_address.setdefault(address["address"], name)
        return cls(frozenset(names), by_address)

    def resolve(self, value: str) -> str | None:
        """The node called or addressed ``value``; an FQDN also matches by its short name."""
        if value in self.names:
            return value
        if value in self.by_address:
            return self.by_address[value]
        short = value.split(".", 1)[0]
        if short and short != value and not _is_ipv4(value):
            return short if short in self.names else self.by_address.get(short)
        return None


@dataclass(frozen=True, slots=True)
class NodeMatch:
    """Where :func:`map_node` landed: a node, or the reason there is none."""

    node: str | None
    reason: str = ""
    label: str = ""


def instance_host(instance: str) -> str:
    """``host:port``, ``[v6]:port``, ``scheme://host:port/path`` → host."""
    text = instance.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text  # a bare host, or a bare IPv6 address


def map_node(alert: Alert, index: NodeIndex, labels: Sequence[str] = DEFAULT_NODE_LABELS) -> NodeMatch:
    """The node ``alert`` is about, trying ``labels`` in order, then ``instance``'s host part.

    The first label that names a known node wins. When labels are present but
    none names a node of this cluster the alert is ``unknown-node`` (maybe
    another cluster's); with none of them present it is ``no-node-label``.
    """
    seen_any = False
    for label in labels:
        value = alert.labels.get(label, "").strip()
        if not value:
            continue
        seen_any = True
        node = index.resolve(value)
        if node is not None:
            return NodeMatch(node, label=label)
    instance = alert.labels.get(INSTANCE_LABEL, "").strip()
    if instance:
        seen_any = True
        node = index.resolve(instance_host(instance))
        if node is not None:
            return NodeMatch(node, label=INSTANCE_LABEL)
    return NodeMatch(None, REASON_UNKNOWN_NODE if seen_any else REASON_NO_NODE_LABEL)


@dataclass(frozen=True, slots=True)
class FindingRule:
    """What one alertname becomes: a finding class with its action, or the Xid read from a label."""

    code: str
    action: Action = Action.NOTIFY
    severity: Severity = Severity.WARNING

    @property
    def reads_xid(self) -> bool:
        return self.code == XID_FROM_LABEL


@dataclass(frozen=True, slots=True)
class AlertRules:
    """alertname → :class:`FindingRule`; everything unmapped is notify-only."""

    rules: Mapping[str, FindingRule]
    catalog: XidCatalog = field(default_factory=default_catalog)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, catalog: XidCatalog | None = None) -> AlertRules:
        """``{alertname: code | {code, action, severity}}`` → rules; a bad rule raises :class:`MappingError`."""
        rules: dict[str, FindingRule] = {}
        for name, raw in (data or {}).items():
            rules[str(name)] = _parse_rule(str(name), raw)
        return cls(rules, catalog or default_catalog())

    @classmethod
    def default(cls) -> AlertRules:
        return cls.parse(dict(DEFAULT_RULES))

    @classmethod
    def load(cls, path: Path) -> AlertRules:
        """A YAML file with a top-level ``rules:`` mapping; the defaults apply where it is silent."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise MappingError(f"alert mapping {path}: {error}") from None
        if not isinstance(data, dict) or not isinstance(data.get("rules", {}), dict):
            raise MappingError(f"alert mapping {path}: expected a mapping with a 'rules:' mapping")
        return cls.parse({**DEFAULT_RULES, **(data.get("rules") or {})})

    def finding(self, alert: Alert, *, kind: SenderKind, receiver: str = "") -> Finding:
        """The finding a firing ``alert`` reports (pure: same alert, same finding)."""
        rule = self.rules.get(alert.alertname)
        code, action, severity, xid = _unmapped_code(alert.alertname), Action.NOTIFY, Severity.WARNING, None
        if rule is not None and rule.reads_xid:
            xid = _xid_label(alert)
            if xid is not None:
                entry = self.catalog.lookup(xid)
                code, action, severity = entry.finding_code, entry.action, entry.severity
        elif rule is not None:
            code, action, severity = rule.code, rule.action, rule.severity
        name = alert.alertname or "unnamed alert"
        return Finding(
            code=code,
            message=truncate(alert.summary or f"{kind.value} alert {name} firing"),
            action=action,
            severity=severity,
            gpu=_gpu_ref(alert.labels),
            xid=xid,
            source=Source(kind.value),
            # The sender's clock (a redelivery can be minutes late): evidence only. The operator's safety
            # windows count from its own receive time (status.receivedAt), never from this.
            first_seen=alert.starts_at or datetime.now(UTC),
            evidence=alert_evidence(alert, receiver=receiver),
        )


def alert_evidence(alert: Alert, *, receiver: str = "") -> dict[str, str]:
    """What a human needs to find the alert again: its name, labels, links and identity."""
    evidence: dict[str, str] = {"alertname": alert.alertname, EVIDENCE_FINGERPRINT: alert.fingerprint}
    optional = {
        "summary": alert.summary,
        "generatorURL": alert.generator_url,
        "dashboardURL": alert.dashboard_url,
        "panelURL": alert.panel_url,
        "runbook_url": alert.runbook_url,
        "receiver": receiver,
        "startsAt": alert.starts_at_raw,
    }
    evidence.update({key: value for key, value in optional.items() if value})
    evidence.update({f"label.{key}": value for key, value in alert.labels.items()})
    return {key: value[:EVIDENCE_VALUE_MAX] for key, value in evidence.items()}


def _parse_rule(name: str, raw: Any) -> FindingRule:
    if isinstance(raw, str) and raw:
        return FindingRule(raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("code"), str) or not raw["code"]:
        raise MappingError(f"alert rule {name!r}: expected a finding class or {{code, action, severity}}")
    try:
        action = Action(raw.get("action", Action.NOTIFY.value))
        severity = Severity(raw.get("severity", Severity.WARNING.value))
    except ValueError as error:
        raise MappingError(f"alert rule {name!r}: {error}") from None
    return FindingRule(raw["code"], action, severity)


def _unmapped_code(alertname: str) -> str:
    """``alert-<slug>``: a class no ladder but ``default`` matches, so unmapped means notify."""
    slug = _CODE_CHARS.sub("-", alertname.lower()).strip("-")[:50]
    return UNMAPPED_PREFIX + (slug or "unnamed")


def _xid_label(alert: Alert) -> int | None:
    for label in XID_LABELS:
        value = alert.labels.get(label, "").strip()
        if value.isdigit() and len(value) <= 6:
            return int(value)
    return None


def _gpu_ref(labels: Mapping[str, str]) -> GpuRef:
    """dcgm-exporter's ``gpu``/``UUID``/``pci_bus_id`` labels, each kept only when well-formed."""
    index_text = labels.get("gpu", "").strip()
    index = int(index_text) if index_text.isdigit() and len(index_text) <= 4 else None
    uuid = (labels.get("UUID") or labels.get("uuid") or "").strip() or None
    pci: str | None = None
    raw_pci = (labels.get("pci_bus_id") or labels.get("pci") or "").strip()
    if raw_pci:
        try:
            pci = normalize_pci(raw_pci)
        except ValueError:
            pci = None
    return GpuRef(index=index, uuid=uuid, pci=pci)


def _is_ipv4(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 4 and all(part.isdigit() for part in parts)
