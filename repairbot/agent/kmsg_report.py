"""``repairbot kmsg``: what RepairBot makes of a kernel log, one JSON object per finding.

The first tool an SRE points at a ``dmesg`` dump from a suspicious node: it
shows which lines RepairBot recognises, what they mean and what it would do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from repairbot.catalog.deferral import deferrable_rule
from repairbot.detectors.kmsg import KernelEvent, KmsgParser

_DEFERRABLE = deferrable_rule()


def kernel_events(lines: Iterable[str]) -> Iterator[KernelEvent]:
    parser = KmsgParser()
    for line in lines:
        event = parser.feed(line.rstrip("\n"))
        if event is not None:
            yield event


def event_record(event: KernelEvent) -> dict[str, Any]:
    """The documented output shape: kind, code, pci, gpu, gpuInstance/computeInstance (MIG), action, severity,
    applicationClass, deferred, message, line.

    ``deferred`` is true for a finding whose repair waits for idle GPUs (NVIDIA: "reset at the next
    convenient time", e.g. Xid 63): the node is cordoned, and running work is never evicted for it.
    """
    record: dict[str, Any] = {"kind": event.kind}
    if event.code is not None:
        record["code"] = event.code
    record["pci"] = event.pci
    if event.uuid:
        record["gpu"] = {"uuid": event.uuid, "pci": event.pci}
    if event.gpu_instance is not None:
        record["gpuInstance"] = event.gpu_instance
    if event.compute_instance is not None:
        record["computeInstance"] = event.compute_instance
    record.update(
        {
            "action": event.action.value,
            "severity": event.severity.value,
            "applicationClass": event.application_class,
            "deferred": _DEFERRABLE(event.finding_code),
            "ladder": [a.value for a in event.ladder],
            "mnemonic": event.mnemonic,
            "message": event.message,
            "line": event.raw,
        }
    )
    return record


def write_report(source: TextIO, out: TextIO, *, as_json: bool) -> int:
    """Print every finding in ``source``; returns how many were found."""
    found = 0
    for event in kernel_events(source):
        found += 1
        record = event_record(event)
        if as_json:
            out.write(json.dumps(record) + "\n")
        else:
            code = f" {record['code']}" if "code" in record else ""
            out.write(
                f"{event.kind}{code} pci={event.pci or '-'} action={record['action']} "
                f"severity={record['severity']} {event.mnemonic}: {event.message}\n"
            )
    return found
