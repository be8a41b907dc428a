"""Server-side printing: ``meta.k8s.io/v1`` Table responses.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and
prints the server's columns verbatim, so what ``kubectl get nodes`` or
``kubectl get gpurepairs`` shows is decided here: the node and pod columns
follow kube-apiserver's built-in printers, custom resources follow their
CRD's ``additionalPrinterColumns`` through a JSONPath subset, and anything
else gets NAME and AGE. Like the real CRD table convertor, a ``date`` column
is rendered as an age ("5m") and only the first JSONPath result is shown.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from typing import Any

from repairbot_sim.kube.resources import ResourceInfo

__all__ = ["build_table", "human_duration", "jsonpath_values"]

Row = Callable[[dict[str, Any], datetime.datetime], list[Any]]

_TOKEN = re.compile(r"\.([A-Za-z0-9_\-$/]+)|\[(\*|-?\d*:-?\d*|-?\d+|'[^']*'|\"[^\"]*\")\]")


def jsonpath_values(obj: Any, path: str) -> list[Any]:
    """Evaluate ``.a.b``, ``.a[0].b``, ``.a[*].b``, ``.a[-1:].b``, ``.a['x.y']``.

    Returns every match in order; a path that leads nowhere returns ``[]``.
    Surrounding ``{…}`` (kubectl's template syntax) is accepted.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.removeprefix("$")
    current: list[Any] = [obj]
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise ValueError(f"unsupported JSONPath {path!r} at {text[position:]!r}")
        position = match.end()
        name, index = match.group(1), match.group(2)
        following: list[Any] = []
        for value in current:
            if name is not None or (index and index[0] in "'\""):
                key = name if name is not None else index[1:-1]
                if isinstance(value, dict) and key in value:
                    following.append(value[key])
            elif isinstance(value, list):
                if index == "*":
                    following.extend(value)
                elif ":" in index:
                    start_text, end_text = index.split(":", 1)
                    start = int(start_text) if start_text else None
                    end = int(end_text) if end_text else None
                    following.extend(value[start:end])
                else:
                    number = int(index)
                    if -len(value) <= number < len(value):
                        following.append(value[number])
            elif isinstance(value, dict) and index == "*":
                following.extend(value.values())
        current = following
    return current


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration`` from apimachinery, the AGE column's format."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(timestamp: Any, now: datetime.datetime) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((now - moment).total_seconds())


def _column(
    name: str, kind: str = "string", *, fmt: str = "", priority: int = 0, description: str = ""
) -> dict[str, Any]:
    return {"name": name, "type": kind, "format": fmt, "description": description or name, "priority": priority}


_NAME = _column("Name", fmt="name", description="Name must be unique within a namespace.")
_AGE = _column(
    "Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."
)


def _node_row(node: dict[str, Any], now: datetime.datetime) -> list[Any]:
    status = node.get("status", {})
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = {"True": "Ready", "False": "NotReady"}.get(ready.get("status", "") if ready else "", "Unknown")
    if node.get("spec", {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(
        {key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/") and "/" in key}
        | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set())
    )
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        state,
        ",".join(r for r in roles if r) or "<none>",
        _age(node["metadata"].get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


_NODE_COLUMNS = [
    _NAME,
    _column("Status", description="The status of the node"),
    _column("Roles", description="The roles of the node"),
    _AGE,
    _column("Version", description="Kubelet Version reported by the node."),
    _column("Internal-IP", priority=1),
    _column("External-IP", priority=1),
    _column("OS-Image", priority=1),
    _column("Kernel-Version", priority=1),
    _column("Container-Runtime", priority=1),
]


def _pod_row(pod: dict[str, Any], now: datetime.datetime) -> list[Any]:
    status = pod.get("status", {})
    statuses = status.get("containerStatuses") or []
    containers = pod.get("spec", {}).get("containers") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in statuses:
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(containers)}",
        reason,
        str(restarts),
        _age(pod["metadata"].get("creationTimestamp"), now),
        status.get("podIP") or "<none>",
        pod.get("spec", {}).get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


_POD_COLUMNS = [
    _NAME,
    _column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    _column("Status", description="The aggregate status of the containers in this pod."),
    _column("Restarts", description="The number of times the containers in this pod have been restarted."),
    _AGE,
    _column("IP", priority=1),
    _column("Node", priority=1),
    _column("Nominated Node", priority=1),
    _column("Readiness Gates", priority=1),
]


def _custom_cell(column: dict[str, Any], obj: dict[str, Any], now: datetime.datetime) -> Any:
    values = jsonpath_values(obj, column.get("jsonPath", ""))
    if not values or values[0] is None:
        return None
    value = values[0]
    kind = column.get("type", "string")
    if kind == "date":
        return _age(value, now)
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _custom_columns(info: ResourceInfo) -> tuple[list[dict[str, Any]], Row]:
    printer = info.printer_columns
    if not printer:
        return [_NAME, _AGE], lambda obj, now: [
            obj["metadata"]["name"],
            _age(obj["metadata"].get("creationTimestamp"), now),
        ]
    columns = [_NAME] + [
        _column(
            c["name"],
            c.get("type", "string"),
            fmt=c.get("format", ""),
            priority=int(c.get("priority", 0)),
            description=c.get("description", ""),
        )
        for c in printer
    ]

    def row(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
        return [obj["metadata"]["name"]] + [_custom_cell(c, obj, now) for c in printer]

    return columns, row


def _event_row(event: dict[str, Any], now: datetime.datetime) -> list[Any]:
    """Like kubectl's event printer: when it was last seen, its type and reason, about what, saying what."""
    involved = event.get("involvedObject") or {}
    last = event.get("lastTimestamp") or event.get("eventTime") or event.get("metadata", {}).get("creationTimestamp")
    about = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    return [_age(last, now), event.get("type", ""), event.get("reason", ""), about, event.get("message", "")]


_EVENT_COLUMNS = [
    _column("Last Seen", description="Time of the latest occurrence"),
    _column("Type", description="Normal or Warning"),
    _column("Reason", description="Why the event happened, CamelCase"),
    _column("Object", description="The object the event is about"),
    _column("Message", description="A human-readable description"),
]


def _columns_for(info: ResourceInfo) -> tuple[list[dict[str, Any]], Row]:
    if not info.group and info.plural == "nodes":
        return _NODE_COLUMNS, _node_row
    if not info.group and info.plural == "pods":
        return _POD_COLUMNS, _pod_row
    if not info.group and info.plural == "events":
        return _EVENT_COLUMNS, _event_row
    return _custom_columns(info)


def _row_object(obj: dict[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def build_table(
    info: ResourceInfo,
    objects: list[dict[str, Any]],
    *,
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    now: datetime.datetime | None = None,
    with_columns: bool = True,
) -> dict[str, Any]:
    """A Table of ``objects``; ``includeObject`` is ``Object``, ``Metadata`` (default) or ``None``."""
    moment = now or datetime.datetime.now(datetime.UTC)
    columns, row = _columns_for(info)
    rows = []
    for obj in objects:
        entry: dict[str, Any] = {"cells": row(obj, moment)}
        embedded = _row_object(obj, include_object or "Metadata")
        if embedded is not None:
            entry["object"] = embedded
        rows.append(entry)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    table["columnDefinitions"] = columns if with_columns else None
    table["rows"] = rows
    return table
