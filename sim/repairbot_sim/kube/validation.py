"""Validation of custom resources against a CRD's ``openAPIV3Schema``, as apiextensions-apiserver does it.

Per write, in the real server's order:

1. *pruning*: unknown fields are dropped silently, except under
   ``fieldValidation=Strict`` (kubectl's default), where the real server
   answers 400 ``strict decoding error: unknown field "spec.x"``; a null in a
   non-nullable field without a default is dropped too
   (``PruneNonNullableNullsWithoutDefaults``), but a null list item is kept and
   fails its type;
2. *defaulting*: ``default`` fills a missing (or non-nullable null) field of an
   object that is present; :func:`apply_defaults` does the same on every read,
   as the real server defaults what it reads from etcd;
3. *schema validation*: ``type``, ``format`` (``date-time``, ``date``),
   ``enum``, ``required``, ``minimum``/``maximum`` (and ``exclusive…``),
   ``multipleOf``, ``minLength``/``maxLength``, ``pattern``,
   ``minItems``/``maxItems``, ``uniqueItems``, ``minProperties``/
   ``maxProperties``, ``x-kubernetes-list-type`` ``set``/``map`` uniqueness,
   ``x-kubernetes-int-or-string``, ``x-kubernetes-preserve-unknown-fields``
   and ``additionalProperties``;
4. *CEL rules* (``x-kubernetes-validations``): ``rule`` with ``self`` (and
   ``oldSelf`` for a transition rule, evaluated only where an old value
   exists), ``message``/``messageExpression``, ``reason`` and ``fieldPath``.
   They are not evaluated at all when the object has type errors, as on the
   real server (``hasBlockingErr``).

Field paths and wording are the real server's, because kubectl prints them
and tests assert on them. Not emulated: ratcheting (a real server since 1.30
forgives unchanged invalid values; this one is stricter), CEL cost budgets,
``allOf``/``anyOf``/``oneOf``/``not``, and formats other than the two above.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from repairbot_sim.kube.cel import Activation, CelCompileError, CelEvalError, Program, compile_expression

__all__ = [
    "SchemaResult",
    "apply_defaults",
    "validate_crd_rules",
    "validate_name",
    "validate_object",
    "validate_owner_references",
]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_RULE_VARIABLES = ("self", "oldSelf")
_ABSENT: Any = object()
"""No old value at this path (a create, or a field the old object did not have): transition rules are skipped."""
_BLOCKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


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
        self.rule_causes: list[dict[str, str]] = []
        """CEL rule failures: reported after the schema's, and only when no type error blocks them."""
        self.unknown: list[str] = []
        self.rules: list[tuple[dict[str, Any], Any, Any, str]] = []
        """(schema, value, old value, path) of every node with rules, evaluated once the object is pruned."""

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
    if value is None:
        return "null"
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


def _check_number(schema: dict[str, Any], value: float, path: str, result: SchemaResult) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and (value < low or (schema.get("exclusiveMinimum") and value == low)):
        relation = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
        result.error("FieldValueInvalid", path, f"Invalid value: {value}: {path} in body should be {relation} {low}")
    if high is not None and (value > high or (schema.get("exclusiveMaximum") and value == high)):
        relation = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
        result.error("FieldValueInvalid", path, f"Invalid value: {value}: {path} in body should be {relation} {high}")
    step = schema.get("multipleOf")
    if step and (value / step) != int(value / step):
        result.error(
            "FieldValueInvalid", path, f"Invalid value: {value}: {path} in body should be a multiple of {step}"
        )


def _check_string(schema: dict[str, Any], value: str, path: str, result: SchemaResult) -> None:
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
    fmt = schema.get("format")
    if fmt in ("date-time", "date") and not (_DATE_TIME if fmt == "date-time" else _DATE).match(value):
        result.error(
            "FieldValueTypeInvalid",
            path,
            f"Invalid value: {_render(value)}: {path} in body must be of type {fmt}: {_render(value)}",
        )


def _check_list(schema: dict[str, Any], value: list[Any], path: str, result: SchemaResult) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        result.error("FieldValueTooMany", path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items")
    if "minItems" in schema and len(value) < schema["minItems"]:
        result.error(
            "FieldValueInvalid",
            path,
            f"Invalid value: {len(value)}: {path} in body should have at least {schema['minItems']} items",
        )
    list_type = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or list_type == "set":
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                result.error("FieldValueDuplicate", f"{path}[{index}]", f"Duplicate value: {_render(item)}")
            seen.append(item)
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: list[tuple[Any, ...]] = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = tuple(item.get(k) for k in keys)
            if key in seen_keys:
                rendered = "{" + ", ".join(f'"{k}":{_render(item.get(k))}' for k in keys) + "}"
                result.error(
                    "FieldValueDuplicate", f"{path}[{index}]", f"Duplicate value: map[string]interface {{}}{rendered}"
                )
            seen_keys.append(key)


def _old_item(schema: dict[str, Any], item: Any, old: Any) -> Any:
    """The old list item a new one correlates with: only ``x-kubernetes-list-type: map`` lists correlate (by key)."""
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(old, list) or not isinstance(item, dict):
        return _ABSENT
    keys = schema.get("x-kubernetes-list-map-keys") or []
    for candidate in old:
        if isinstance(candidate, dict) and all(candidate.get(k) == item.get(k) for k in keys):
            return candidate
    return _ABSENT


def _check(schema: dict[str, Any], value: Any, path: str, result: SchemaResult, old: Any = _ABSENT) -> Any:
    """Validate ``value`` (defaulted in place); returns it pruned of unknown fields."""
    if value is None:
        if not schema.get("nullable"):
            message = f'Invalid value: "null": {path} in body must be of type {schema.get("type") or "object"}: "null"'
            result.error("FieldValueTypeInvalid", path, message)
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
        _check_number(schema, value, path, result)
    if isinstance(value, str):
        _check_string(schema, value, path, result)
    checked: Any = value
    if isinstance(value, list):
        _check_list(schema, value, path, result)
        items = schema.get("items")
        if isinstance(items, dict):
            checked = [
                _check(items, item, f"{path}[{index}]", result, _old_item(schema, item, old))
                for index, item in enumerate(value)
            ]
    elif isinstance(value, dict):
        checked = _check_object(schema, value, path, result, old)
    if schema.get("x-kubernetes-validations"):
        result.rules.append((schema, checked, old, path))
    return checked


def _fill_defaults(schema: dict[str, Any], value: dict[str, Any]) -> None:
    for key, prop in (schema.get("properties") or {}).items():
        if "default" not in prop:
            continue
        if key not in value or (value[key] is None and not prop.get("nullable")):
            value[key] = copy.deepcopy(prop["default"])


def _check_object(
    schema: dict[str, Any], value: dict[str, Any], path: str, result: SchemaResult, old: Any = _ABSENT
) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    prefix = f"{path}." if path else ""
    old_map = old if isinstance(old, dict) else {}
    _fill_defaults(schema, value)
    for required in schema.get("required") or []:
        if value.get(required) is None:
            result.error("FieldValueRequired", f"{prefix}{required}", "Required value")
    for bound, message in (("maxProperties", "at most"), ("minProperties", "at least")):
        limit = schema.get(bound)
        if limit is not None and (len(value) > limit if bound == "maxProperties" else len(value) < limit):
            result.error(
                "FieldValueTooMany" if bound == "maxProperties" else "FieldValueInvalid",
                path,
                f"Too many: {len(value)}: must have {message} {limit} items"
                if bound == "maxProperties"
                else f"Invalid value: {len(value)}: {path} in body should have {message} {limit} properties",
            )
    pruned: dict[str, Any] = {}
    for key, child in value.items():
        child_path = f"{prefix}{key}"
        child_old = old_map.get(key, _ABSENT)
        if key in properties:
            if child is None and not properties[key].get("nullable"):
                continue  # PruneNonNullableNullsWithoutDefaults: dropped, not an error
            pruned[key] = _check(properties[key], child, child_path, result, child_old)
        elif isinstance(additional, dict):
            if child is None and not additional.get("nullable"):
                continue
            pruned[key] = _check(additional, child, child_path, result, child_old)
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


# ------------------------------------------------------------------ CEL rules


def _rule_program(expression: str) -> Program:
    return compile_expression(expression, _RULE_VARIABLES)


def _uses_old_self(expression: str) -> bool:
    return re.search(r"\boldSelf\b", expression) is not None


def _rule_path(path: str, field_path: str) -> str:
    """``fieldPath`` (``.spec.x``, ``['key']``) appended to the rule's own path, as field.Path renders it."""
    if not field_path:
        return path
    rendered = re.sub(r"\['([^']*)'\]", r"[\1]", field_path)
    if rendered.startswith("."):
        rendered = rendered[1:] if not path else rendered
    return f"{path}{rendered}" if path else rendered


def _rule_failure(rule: dict[str, Any], schema: dict[str, Any], value: Any, path: str, detail: str) -> dict[str, str]:
    target = _rule_path(path, str(rule.get("fieldPath") or ""))
    reason = rule.get("reason") or "FieldValueInvalid"
    if reason == "FieldValueForbidden":
        return {"reason": reason, "field": target, "message": f"Forbidden: {detail}"}
    if reason == "FieldValueRequired":
        return {"reason": reason, "field": target, "message": f"Required value: {detail}"}
    if reason == "FieldValueDuplicate":
        return {"reason": reason, "field": target, "message": f"Duplicate value: {_render(value)}"}
    if schema.get("type") in ("object", "array") or isinstance(value, (dict, list)):
        return {"reason": "FieldValueInvalid", "field": target, "message": f"Invalid value: {detail}"}
    return {"reason": "FieldValueInvalid", "field": target, "message": f"Invalid value: {_render(value)}: {detail}"}


def _evaluate_rules(schema: dict[str, Any], value: Any, old: Any, path: str, result: SchemaResult) -> None:
    activation = Activation({"self": value, "oldSelf": None if old is _ABSENT else old})  # shared by the node's rules
    for rule in schema.get("x-kubernetes-validations") or []:
        expression = str(rule.get("rule") or "")
        transition = _uses_old_self(expression)
        if transition and old is _ABSENT and not rule.get("optionalOldSelf"):
            continue  # transition rules run only where there is an old value to compare with
        label = str(rule.get("message") or "").strip() or expression.strip()
        try:
            passed = _rule_program(expression).evaluate(activation)
        except CelCompileError as exc:
            result.rule_causes.append(_rule_failure({}, schema, value, path, f"rule compile error: {exc}"))
            continue
        except CelEvalError as exc:
            result.rule_causes.append(_rule_failure({}, schema, value, path, f"{exc} evaluating rule: {label}"))
            continue
        if passed is True:
            continue
        detail = None
        if rule.get("messageExpression"):
            try:
                detail = _rule_program(str(rule["messageExpression"])).evaluate_message(activation)
            except CelCompileError:
                detail = None
        detail = detail or (str(rule.get("message") or "").strip() or f"failed rule: {expression.strip()}")
        result.rule_causes.append(_rule_failure(rule, schema, value, path, detail))


# -------------------------------------------------------------------- entry points


def _top_schema(schema: dict[str, Any]) -> dict[str, Any]:
    top = dict(schema)
    top["properties"] = {
        k: v for k, v in (schema.get("properties") or {}).items() if k not in ("apiVersion", "kind", "metadata")
    }
    top["required"] = [r for r in schema.get("required") or [] if r not in ("apiVersion", "kind", "metadata")]
    top.pop("x-kubernetes-validations", None)
    return top


def _rule_view(obj: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """``self`` at the root: the object with apiVersion, kind and only metadata.name/generateName."""
    meta = obj.get("metadata") or {}
    view_meta = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": view_meta, **body}


def validate_object(
    schema: dict[str, Any] | None, obj: dict[str, Any], old: dict[str, Any] | None = None
) -> tuple[dict[str, Any], SchemaResult]:
    """Prune, default and validate a custom resource (``old`` for transition rules on an update)."""
    result = SchemaResult()
    if not schema:
        return obj, result
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    old_body: Any = _ABSENT
    if old is not None:
        old_body = {k: v for k, v in old.items() if k not in ("apiVersion", "kind", "metadata")}
    pruned = _check_object(_top_schema(schema), body, "", result, old_body)
    if schema.get("x-kubernetes-validations"):
        old_view = _ABSENT if old is None else _rule_view(old, old_body)
        result.rules.append((schema, _rule_view(obj, pruned), old_view, ""))
    if any(c["reason"] == "FieldValueTypeInvalid" for c in result.causes):
        if result.rules:
            result.causes.append(
                {"reason": "FieldValueInvalid", "field": "", "message": f"Invalid value: null: {_BLOCKED}"}
            )
    else:
        for rule_schema, value, old_value, path in result.rules:
            _evaluate_rules(rule_schema, value, old_value, path, result)
        result.causes.extend(result.rule_causes)
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": obj.get("metadata", {}),
        **pruned,
    }, result


def _defaults(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        _fill_defaults(schema, value)
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, child in value.items():
            child_schema = properties.get(key, additional if isinstance(additional, dict) else None)
            if child_schema:
                _defaults(child_schema, child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _defaults(schema["items"], item)


def apply_defaults(schema: dict[str, Any], obj: dict[str, Any]) -> None:
    """Fill ``default`` values into ``obj`` in place (the read path: what a real server does to etcd's objects)."""
    _defaults(_top_schema(schema), obj)


# ---------------------------------------------------------- CRD write checks


def _schema_rules(schema: Any, path: str, causes: list[dict[str, str]]) -> None:
    if not isinstance(schema, dict):
        return
    for index, rule in enumerate(schema.get("x-kubernetes-validations") or []):
        for key in ("rule", "messageExpression"):
            expression = rule.get(key)
            if expression is None and key == "messageExpression":
                continue
            try:
                _rule_program(str(expression or ""))
            except CelCompileError as exc:
                shown = (
                    f"apiextensions.ValidationRule{{Rule:{json.dumps(rule.get('rule', ''))}, "
                    f"Message:{json.dumps(rule.get('message', ''))}}}"
                )
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": f"{path}.x-kubernetes-validations[{index}].{key}",
                        "message": f"Invalid value: {shown}: {exc}",
                    }
                )
    for name, child in (schema.get("properties") or {}).items():
        _schema_rules(child, f"{path}.properties[{name}]", causes)
    if isinstance(schema.get("items"), dict):
        _schema_rules(schema["items"], f"{path}.items", causes)
    if isinstance(schema.get("additionalProperties"), dict):
        _schema_rules(schema["additionalProperties"], f"{path}.additionalProperties", causes)


def validate_crd_rules(crd: dict[str, Any]) -> list[dict[str, str]]:
    """Compile every ``x-kubernetes-validations`` rule of a CRD; the real server refuses a CRD whose rules don't."""
    causes: list[dict[str, str]] = []
    for index, version in enumerate((crd.get("spec") or {}).get("versions") or []):
        schema = ((version or {}).get("schema") or {}).get("openAPIV3Schema")
        _schema_rules(schema, f"spec.versions[{index}].schema.openAPIV3Schema", causes)
    return causes
