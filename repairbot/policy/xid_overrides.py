"""The policy file's per-Xid changes to the catalog (``xid.overrides``), checked when the policy is read.

A fleet may know better than NVIDIA's bucket for one code (a driver that logs
Xid 119 spuriously, a site that wants Xid 13 looked at by a human). The catalog already
knows how to apply such a change safely (:meth:`XidCatalog.with_overrides`
keeps its invariants: the action is the ladder's first rung, a destructive
ladder ends in quarantine, an application-class Xid never climbs one); this
module is the policy's side of it::

    xid:
      overrides:
        "13": {action: notify, applicationClass: false}
        "119": {action: reboot}

Keys are camelCase like the rest of the file (``applicationClass``,
``deferUntilDrain``). Each code is tried against the packaged catalog while the
policy is read, so a bad override fails ``repairbot policy check`` and the
operator's start-up with its field path (``policy.xid.overrides.13.ladder: …``),
never at 3 a.m. on a real Xid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from repairbot.catalog.xid import XidCatalog, default_catalog

_FIELDS = {
    "action": "action",
    "ladder": "ladder",
    "severity": "severity",
    "applicationClass": "application_class",
    "deferUntilDrain": "defer_until_drain",
}
_CAMEL = {snake: camel for camel, snake in _FIELDS.items()}
_CATALOG_ERROR = re.compile(r"^xid [^:]+: field '(?P<field>[a-z_]+)': (?P<problem>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class XidPolicy:
    """Per-code changes to the Xid catalog, already validated; ``overrides`` is code → catalog field → value."""

    overrides: Mapping[int, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    def catalog(self, base: XidCatalog | None = None) -> XidCatalog:
        """The catalog every part of RepairBot should use: the packaged one with these changes."""
        base = base or default_catalog()
        return base.with_overrides(self.overrides) if self.overrides else base

    def finding_codes(self) -> tuple[str, ...]:
        """The finding classes these overrides change (``xid-13`` …): the agent, which reads the packaged
        catalog, reports them even where that catalog asks for no action, and the operator decides."""
        return tuple(f"xid-{code}" for code in sorted(self.overrides))

    def to_dict(self) -> dict[str, Any]:
        return {
            "overrides": {
                str(code): {
                    _CAMEL[key]: list(value) if isinstance(value, tuple) else value for key, value in fields.items()
                }
                for code, fields in sorted(self.overrides.items())
            }
        }


def read_xid(raw: Any, errors: list[str], path: str = "policy.xid") -> XidPolicy:
    """``xid: {overrides: {...}}`` → :class:`XidPolicy`; each problem appended to ``errors`` with its path."""
    if raw is None:
        return XidPolicy()
    if not isinstance(raw, Mapping):
        errors.append(f"{path}: must be a mapping (overrides)")
        return XidPolicy()
    for key in raw:
        if key != "overrides":
            errors.append(f"{path}.{key}: unknown key (known keys: overrides)")
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        errors.append(f"{path}.overrides: must map Xid codes to fields ({', '.join(_FIELDS)})")
        return XidPolicy()
    catalog = default_catalog()
    accepted: dict[int, Mapping[str, Any]] = {}
    for raw_code, fields in overrides.items():
        where = f"{path}.overrides.{raw_code}"
        code = _code(raw_code)
        if code is None:
            errors.append(f"{where}: {raw_code!r} is not an Xid code (a positive whole number)")
            continue
        if not isinstance(fields, Mapping) or not fields:
            errors.append(f"{where}: must be a mapping of fields ({', '.join(_FIELDS)})")
            continue
        unknown = [key for key in fields if key not in _FIELDS]
        for key in unknown:
            errors.append(f"{where}.{key}: unknown key (known keys: {', '.join(_FIELDS)})")
        if unknown:
            continue
        snake = {_FIELDS[key]: value for key, value in fields.items()}
        try:
            catalog.with_overrides({code: snake})
        except ValueError as error:
            errors.append(_field_error(where, str(error)))
            continue
        accepted[code] = MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in snake.items()})
    return XidPolicy(MappingProxyType(accepted))


def _code(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    text = str(raw).strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _field_error(where: str, message: str) -> str:
    """The catalog's ``xid 13: field 'ladder': …`` as the policy's ``policy.xid.overrides.13.ladder: …``."""
    found = _CATALOG_ERROR.match(message)
    if found is None:
        return f"{where}: {message}"
    problem = found.group("problem")
    for snake, camel in _CAMEL.items():
        problem = problem.replace(f"{snake}:", f"{camel}:")
    return f"{where}.{_CAMEL.get(found.group('field'), found.group('field'))}: {problem}"
