"""Label and field selectors, parsed and matched the way kube-apiserver does.

Clients (kubectl, the kubernetes client, kopf) send selectors as query strings;
PodDisruptionBudgets carry them as structured ``LabelSelector`` objects. Both
end up as a list of requirements so that list, watch and the disruption
arithmetic share one matcher. Everything here is pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FieldRequirement",
    "LabelRequirement",
    "SelectorError",
    "label_selector_from_object",
    "match_fields",
    "match_labels",
    "parse_field_selector",
    "parse_label_selector",
]


class SelectorError(ValueError):
    """A selector the real API server would reject with 400 BadRequest."""


@dataclass(frozen=True)
class LabelRequirement:
    """One clause of a label selector: ``key <op> values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects that lack the key, as in Kubernetes.
        return not present or value not in self.values


@dataclass(frozen=True)
class FieldRequirement:
    """One clause of a field selector: ``path =|!= value``."""

    path: str
    op: str  # "=" or "!="
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        actual = _field_value(obj, self.path)
        equal = actual == self.value
        return equal if self.op == "=" else not equal


_KEY_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( … )``: set values contain commas."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise SelectorError(f"invalid label value {value!r}")
    return value


def _check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(f"invalid label key {key!r}")
    return key


def parse_label_selector(text: str | None) -> list[LabelRequirement]:
    """Parse ``a=b,c!=d,e in (f,g),!h,i`` into requirements (empty → match all)."""
    if not text:
        return []
    requirements: list[LabelRequirement] = []
    for clause in _split_top_level(text):
        set_match = _SET_RE.match(clause)
        if set_match:
            values = tuple(_check_value(v.strip()) for v in set_match["values"].split(",") if v.strip())
            requirements.append(LabelRequirement(_check_key(set_match["key"]), set_match["op"], values))
        elif clause.startswith("!"):
            requirements.append(LabelRequirement(_check_key(clause[1:].strip()), "!exists"))
        elif "!=" in clause:
            key, value = clause.split("!=", 1)
            requirements.append(LabelRequirement(_check_key(key.strip()), "!=", (_check_value(value.strip()),)))
        elif "==" in clause:
            key, value = clause.split("==", 1)
            requirements.append(LabelRequirement(_check_key(key.strip()), "=", (_check_value(value.strip()),)))
        elif "=" in clause:
            key, value = clause.split("=", 1)
            requirements.append(LabelRequirement(_check_key(key.strip()), "=", (_check_value(value.strip()),)))
        elif re.search(r"[\s()<>]", clause):
            raise SelectorError(f"unable to parse requirement {clause!r}")
        else:
            requirements.append(LabelRequirement(_check_key(clause), "exists"))
    return requirements


_EXPRESSION_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def label_selector_from_object(selector: dict[str, Any] | None) -> list[LabelRequirement] | None:
    """Convert a structured ``metav1.LabelSelector``.

    Returns ``None`` for a missing selector (matches nothing, as a PDB without a
    selector does) and ``[]`` for an empty one (matches everything).
    """
    if selector is None:
        return None
    requirements = [
        LabelRequirement(key, "=", (str(value),)) for key, value in (selector.get("matchLabels") or {}).items()
    ]
    for expression in selector.get("matchExpressions") or []:
        op = _EXPRESSION_OPS.get(expression.get("operator", ""))
        if op is None:
            raise SelectorError(f"invalid label selector operator {expression.get('operator')!r}")
        values = tuple(str(v) for v in expression.get("values") or [])
        requirements.append(LabelRequirement(expression["key"], op, values))
    return requirements


def match_labels(requirements: list[LabelRequirement] | None, labels: dict[str, str] | None) -> bool:
    """True when every requirement holds; ``None`` requirements match nothing."""
    if requirements is None:
        return False
    labels = labels or {}
    return all(req.matches(labels) for req in requirements)


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    """Parse ``spec.nodeName=n1,status.phase!=Succeeded`` (``==`` accepted too)."""
    if not text:
        return []
    requirements: list[FieldRequirement] = []
    for clause in _split_top_level(text):
        for op_text, op in (("!=", "!="), ("==", "="), ("=", "=")):
            if op_text in clause:
                path, value = clause.split(op_text, 1)
                path = path.strip()
                if not path:
                    raise SelectorError(f"invalid field selector {clause!r}")
                requirements.append(FieldRequirement(path, op, value.strip()))
                break
        else:
            raise SelectorError(f"invalid selector: {clause!r}; can't understand {clause!r}")
    return requirements


def _field_value(obj: dict[str, Any], path: str) -> str:
    """Render a field as the API server compares it: as a string, "" when absent.

    ``spec.unschedulable`` on a node is a bool the server renders as
    "true"/"false"; a missing bool is "false", like Go's zero value.
    """
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            current = None
            break
        current = current.get(part)
    if isinstance(current, bool):
        return "true" if current else "false"
    if current is None:
        return "false" if path == "spec.unschedulable" else ""
    return str(current)


def match_fields(requirements: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    """True when every field requirement holds for ``obj``."""
    return all(req.matches(obj) for req in requirements)
