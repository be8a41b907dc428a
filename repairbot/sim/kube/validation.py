"""Validation of custom resources against a CRD's ``openAPIV3Schema``.

Covers the keywords CRDs use day to day — ``type``, ``required``, ``enum``,
``properties``, ``items``, ``minimum``/``maximum``, ``minLength``/
``maxLength``, ``pattern``, ``nullable``, ``x-kubernetes-int-or-string``,
``x-kubernetes-preserve-unknown-fields`` and ``additionalProperties`` — with
the field paths and wording of the real apiextensions-apiserver, because
kubectl prints them to the user and tests assert on them.

Unknown fields follow structural-schema *pruning*: they are dropped silently,
except under ``fieldValidation=Strict`` (kubectl's default), where the real
server answers 400 ``strict decoding error: unknown field "spec.x"``.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["SchemaResult", "validate_name", "validate_object", "validate_owner_references"]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate_name(name: str) -> list[dict[str, str]]:
    """``metadata.name`` must be a DNS-1123 subdomain (most kinds require this)."""
    if _DNS_SUBDOMAIN.match(name) and len(name) <= 253:
        return []
    message = (
        f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
        "characters, '-' or '.', and must start and end with an alphanumeric character"
    )
    return [{"reason": "FieldValueInvalid", "message": message, "field": "metadata.name"}]


_BANNED_OWNERS = {("v1", "Event")}


def validate_owner_references(metadata: dict[str, Any]) -> list[dict[str, str]]:
    """``metadata.ownerReferences`` as apimachinery's ``ValidateOwnerReferences`` checks it on every write.

    Each reference needs an apiVersion with a version, a kind, a name and a
    uid (the garbage collector follows uids, not names); an Event cannot own
    anything; at most one reference may be the controller.
    """
    refs = metadata.get("ownerReferences")
    if not refs:
        return []
    field = "metadata.ownerReferences"
    causes: list[dict[str, str]] = []

    def invalid(path: str, value: Any, why: str) -> None:
        causes.append({"reason": "FieldValueInvalid", "message": f"Invalid value: {_render(value)}: {why}",
                       "field": path})  # fmt: skip

    if not isinstance(refs, list) or not all(isinstance(ref, dict) for ref in refs):
        invalid(field, refs, "must be a list of owner references")
        return causes
    controller = ""
    for ref in refs:
        api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
        if not api_version.rpartition("/")[2]:
            invalid(f"{field}.apiVersion", api_version, "version must not be empty")
        if not kind:
            invalid(f"{field}.kind", kind, "kind must not be empty")
        if not ref.get("name"):
            invalid(f"{field}.name", str(ref.get("name") or ""), "name must not be empty")
        if not ref.get("uid"):
            invalid(f"{field}.uid", str(ref.get("uid") or ""), "uid must not be empty")
        if (api_version, kind) in _BANNED_OWNERS:
            invalid(field, ref, f"/{api_version}, Kind={kind} is disallowed from being an owner")
        if ref.get("controller") is True:
            name = f"{kind}/{ref.get('name')}"
            if controller:
                invalid(field, refs, "Only one reference can have Controller set to true. "
                        f'Found "true" in references for {controller} and {name}')  # fmt: skip
            else:
                controller = name
    return causes


class SchemaResult:
    """Errors (→ 422 causes) and unknown fields found while pruning."""

    def __init__(self) -> None:
        self.causes: list[dict[str, str]] = []
        self.unknown: list[str] = []

    def error(self, reason: str, field: str, message: str) -> None:
        self.causes.append({"reason": reason, "message": message, "field": field})


def _render(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return '"' + type(value).__name__ + '"'
    return json.dumps(value)


_JSON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _type_ok(expected: str, value: Any) -> bool:
    if isinstance(value, bool) and expected in ("integer", "number"):
        return False
    if expected == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(expected, (object,)))


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check(schema: dict[str, Any], value: Any, path: str, result: SchemaResult) -> Any:
    """Validate ``value``; returns it pruned of unknown fields."""
    if value is None:
        if not schema.get("nullable"):
            # Real servers drop nulls for non-nullable fields during defaulting/pruning.
            return None
        return None
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            result.error(
                "FieldValueInvalid",
                path,
                f"Invalid value: {_render(value)}: {path} in body must be of type int-or-string",
            )
        return value
    expected = schema.get("type")
    if expected and not _type_ok(expected, value):
        message = (
            f'Invalid value: "{_type_name(value)}": {path} in body must be of type {expected}: "{_type_name(value)}"'
        )
        result.error("FieldValueTypeInvalid", path, message)
        return value
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_render(v) for v in schema["enum"])
        result.error(
            "FieldValueNotSupported", path, f"Unsupported value: {_render(value)}: supported values: {allowed}"
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            result.error(
                "FieldValueInvalid",
                path,
                f"Invalid value: {value}: {path} in body should be greater than or equal to {schema['minimum']}",
            )
        if "maximum" in schema and value > schema["maximum"]:
            result.error(
                "FieldValueInvalid",
                path,
                f"Invalid value: {value}: {path} in body should be less than or equal to {schema['maximum']}",
            )
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            result.error(
                "FieldValueInvalid",
                path,
                f"Invalid value: {_render(value)}: {path} in body should be at least {schema['minLength']} chars long",
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            result.error("FieldValueTooLong", path, f"Too long: may not be more than {schema['maxLength']} bytes")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            result.error(
                "FieldValueInvalid",
                path,
                f"Invalid value: {_render(value)}: {path} in body should match '{schema['pattern']}'",
            )
    if isinstance(value, list):
        items = schema.get("items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            result.error(
                "FieldValueTooMany", path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items"
            )
        if isinstance(items, dict):
            return [_check(items, item, f"{path}[{index}]", result) for index, item in enumerate(value)]
        return value
    if isinstance(value, dict):
        return _check_object(schema, value, path, result)
    return value


def _check_object(schema: dict[str, Any], value: dict[str, Any], path: str, result: SchemaResult) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    prefix = f"{path}." if path else ""
    for required in schema.get("required") or []:
        if value.get(required) is None:
            result.error("FieldValueRequired", f"{prefix}{required}", "Required value")
    pruned: dict[str, Any] = {}
    for key, child in value.items():
        child_path = f"{prefix}{key}"
        if key in properties:
            checked = _check(properties[key], child, child_path, result)
            if checked is not None or properties[key].get("nullable"):
                pruned[key] = checked
        elif isinstance(additional, dict):
            pruned[key] = _check(additional, child, child_path, result)
        elif (
            preserve
            or additional is True
            or (not properties and additional is None and not schema.get("type"))
            or (path == "" and key in ("apiVersion", "kind", "metadata"))
        ):
            pruned[key] = child
        else:
            result.unknown.append(child_path)
    return pruned


def validate_object(schema: dict[str, Any] | None, obj: dict[str, Any]) -> tuple[dict[str, Any], SchemaResult]:
    """Validate and prune a custom resource; metadata is not the schema's business."""
    result = SchemaResult()
    if not schema:
        return obj, result
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    top = dict(schema)
    top_properties = {
        k: v for k, v in (schema.get("properties") or {}).items() if k not in ("apiVersion", "kind", "metadata")
    }
    top["properties"] = top_properties
    top["required"] = [r for r in schema.get("required") or [] if r not in ("apiVersion", "kind", "metadata")]
    pruned = _check_object(top, body, "", result)
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": obj.get("metadata", {}),
        **pruned,
    }, result
