"""The three PATCH flavours kube-apiserver accepts, as pure functions.

* JSON merge patch (RFC 7386): maps merge, ``null`` deletes, lists replace.
* Strategic merge patch: like merge patch, but some lists merge element by
  element on a *merge key* taken from the Go struct tags of the built-in types
  (``patchStrategy:"merge" patchMergeKey:"type"``), and the ``$patch``,
  ``$deleteFromPrimitiveList/…``, ``$setElementOrder/…`` and ``$retainKeys``
  directives apply. Lists without a strategy (node ``spec.taints``, pod
  ``spec.tolerations``) are replaced wholesale, exactly as on a real cluster —
  so ``kubectl taint`` sends the whole list, and so must RepairBot.
* JSON patch (RFC 6902), delegated to the ``jsonpatch`` library.

Custom resources do not support strategic merge patch on a real server (415);
the HTTP layer enforces that, not this module.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

__all__ = [
    "PRIMITIVE_SET",
    "PatchError",
    "apply_json_patch",
    "json_merge_patch",
    "merge_keys_for",
    "strategic_merge_patch",
]


class PatchError(ValueError):
    """A patch that cannot be applied (the server answers 422 or 400)."""


PRIMITIVE_SET = "<primitive-set>"
"""Marker for lists of scalars with ``patchStrategy:"merge"`` (finalizers): set union."""

_Path = tuple[str, ...]

# Paths list only map keys (list positions are skipped), e.g. a container's env
# list is ("spec", "containers", "env").
_COMMON: dict[_Path, str] = {
    ("metadata", "ownerReferences"): "uid",
    ("metadata", "finalizers"): PRIMITIVE_SET,
}
_POD_SPEC: dict[_Path, str] = {
    ("containers",): "name",
    ("initContainers",): "name",
    ("ephemeralContainers",): "name",
    ("volumes",): "name",
    ("imagePullSecrets",): "name",
    ("containers", "env"): "name",
    ("containers", "ports"): "containerPort",
    ("containers", "volumeMounts"): "mountPath",
    ("initContainers", "env"): "name",
    ("initContainers", "volumeMounts"): "mountPath",
}
_CONDITIONS: dict[_Path, str] = {("status", "conditions"): "type"}


def _prefixed(prefix: _Path, table: dict[_Path, str]) -> dict[_Path, str]:
    return {prefix + path: key for path, key in table.items()}


_BY_KIND: dict[str, dict[_Path, str]] = {
    "Node": {("status", "conditions"): "type", ("status", "addresses"): "type"},
    "Pod": {
        **_prefixed(("spec",), _POD_SPEC),
        ("status", "conditions"): "type",
        ("status", "podIPs"): "ip",
    },
    "Deployment": {**_prefixed(("spec", "template", "spec"), _POD_SPEC), **_CONDITIONS},
    "DaemonSet": {**_prefixed(("spec", "template", "spec"), _POD_SPEC), **_CONDITIONS},
    "ReplicaSet": {**_prefixed(("spec", "template", "spec"), _POD_SPEC), **_CONDITIONS},
    "PodDisruptionBudget": dict(_CONDITIONS),
    "Namespace": dict(_CONDITIONS),
    "Service": {("spec", "ports"): "port"},
}


def merge_keys_for(kind: str) -> dict[_Path, str]:
    """The strategic-merge list strategies of a built-in kind."""
    return {**_COMMON, **_BY_KIND.get(kind, {})}


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: returns a new document; the inputs are left untouched."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def _strip_directives(value: Any) -> Any:
    """Remove ``$…`` directive keys from a value that is inserted as-is."""
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value if not (isinstance(v, dict) and "$patch" in v)]
    return value


def _merge_list(
    original: list[Any], patch: list[Any], merge_key: str, path: _Path, keys: dict[_Path, str]
) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    if merge_key == PRIMITIVE_SET:
        result = list(original)
        result.extend(item for item in patch if item not in result)
        return result
    result = [copy.deepcopy(item) for item in original]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError(f"map in list {'.'.join(path)} lacks the merge key {merge_key!r}")
        position = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(merge_key) == item[merge_key]),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
            continue
        if position is None:
            result.append(_strip_directives(item))
        else:
            result[position] = _merge_map(result[position], item, path, keys)
    return result


def _merge_map(original: dict[str, Any], patch: dict[str, Any], path: _Path, keys: dict[_Path, str]) -> dict[str, Any]:
    if patch.get("$patch") == "replace":
        stripped: dict[str, Any] = _strip_directives(patch)
        return stripped
    result = copy.deepcopy(original)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue  # ordering hints are tolerated and ignored
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            remaining = [item for item in result.get(field) or [] if item not in (value or [])]
            result[field] = remaining
            continue
        if value is None:
            result.pop(key, None)
            continue
        child_path = (*path, key)
        old = result.get(key)
        if isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = _merge_map(old if isinstance(old, dict) else {}, value, child_path, keys)
        elif isinstance(value, list):
            merge_key = keys.get(child_path)
            if merge_key is None or not isinstance(old, list):
                result[key] = _strip_directives(value)
            else:
                result[key] = _merge_list(old, value, merge_key, child_path, keys)
        else:
            result[key] = value
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def strategic_merge_patch(original: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply a strategic merge patch to a built-in object of ``kind``."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _merge_map(original, patch, (), merge_keys_for(kind))


def apply_json_patch(original: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902; failed ``test`` operations and bad pointers become :class:`PatchError`."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a JSON array of operations")
    try:
        result = jsonpatch.apply_patch(copy.deepcopy(original), operations)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, TypeError) as exc:
        raise PatchError(str(exc)) from exc
    if not isinstance(result, dict):
        raise PatchError("json patch must leave an object")
    return result
