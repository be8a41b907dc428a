"""ValidatingAdmissionPolicy, enforced as kube-apiserver enforces it.

Every create, update, patch, delete, status write and eviction passes here
after schema validation and before it is stored (the real server runs
validating admission at the same point: after the strategy's validation,
inside the registry's write). Each stored policy whose ``matchConstraints``
match the request is evaluated once per binding that names it and whose
``matchResources`` match too:

* matching: ``resourceRules``/``excludeResourceRules`` (groups, versions,
  operations, ``resources`` with subresources and ``*`` forms,
  ``resourceNames``, ``scope``), ``namespaceSelector`` and ``objectSelector``
  (``matchLabels``/``matchExpressions``), then ``matchConditions`` in CEL;
* evaluation: ``variables``, then each validation's ``expression`` with
  ``object``, ``oldObject``, ``request``, ``params`` (always null: paramKind is
  not emulated), ``namespaceObject`` and ``variables``; a failing validation's
  message is its ``messageExpression``, else ``message``, else
  ``failed expression: <expression>``;
* errors: an expression that errors is a failure under ``failurePolicy: Fail``
  (the default) and ignored under ``Ignore``;
* actions: ``Deny`` refuses the request with the real server's Status (the code
  from the validation's ``reason``: Forbidden 403, Unauthorized 401,
  RequestEntityTooLarge 413, Invalid 422, the default), ``Warn`` adds a
  ``Warning`` header, ``Audit`` records the failure in :attr:`PolicyAdmission.audit`.

Policies and bindings themselves (group ``admissionregistration.k8s.io``)
are never subject to policies, as on a real server, so a bad policy cannot
lock itself in. Their expressions are compiled when they are written
(:func:`validate_policy`), and a policy that does not compile is refused.
Source: k8s.io/apiserver plugin/policy/validating (dispatcher.go, validator.go).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from repairbot_sim.kube.cel import Activation, CelCompileError, CelEvalError, Program, compile_expression
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.identity import UserInfo
from repairbot_sim.kube.resources import ResourceInfo
from repairbot_sim.kube.selectors import SelectorError, label_selector_from_object, match_labels
from repairbot_sim.kube.store import Store, WatchEvent

__all__ = [
    "POLICY_VARIABLES",
    "AdmissionRequest",
    "AuditRecord",
    "PolicyAdmission",
    "validate_binding",
    "validate_policy",
]

GROUP = "admissionregistration.k8s.io"
_POLICIES = f"{GROUP}/validatingadmissionpolicies"
_BINDINGS = f"{GROUP}/validatingadmissionpolicybindings"
POLICY_VARIABLES = ("object", "oldObject", "request", "params", "namespaceObject", "variables")
"""What a policy's expressions may name (``authorizer`` is not emulated, so it does not compile)."""
_REASON_CODES = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413, "Invalid": 422}
_ACTIONS = ("Deny", "Warn", "Audit")
_OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT", "*")


@dataclass(frozen=True)
class AdmissionRequest:
    """One write as admission sees it (``admission.Attributes``)."""

    operation: str
    info: ResourceInfo
    name: str
    namespace: str | None
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    user: UserInfo
    dry_run: bool = False
    subresource: str = ""
    kind: tuple[str, str, str] | None = None
    """(group, version, kind) of ``obj`` when it is not the resource's own kind (an Eviction)."""

    def as_cel(self) -> dict[str, Any]:
        group, version, kind = self.kind or (self.info.group, self.info.version, self.info.kind)
        resource = {"group": self.info.group, "version": self.info.version, "resource": self.info.plural}
        kind_map = {"group": group, "version": version, "kind": kind}
        return {
            "kind": kind_map,
            "resource": resource,
            "subResource": self.subresource,
            "requestKind": kind_map,
            "requestResource": resource,
            "requestSubResource": self.subresource,
            "name": self.name,
            "namespace": self.namespace or "",
            "operation": self.operation,
            "userInfo": self.user.as_cel(),
            "dryRun": self.dry_run,
        }


@dataclass(frozen=True)
class AuditRecord:
    """A failure an ``Audit`` binding published (the real server's audit annotation)."""

    policy: str
    binding: str
    message: str
    operation: str
    resource: str
    name: str


@dataclass
class _Decision:
    message: str
    reason: str = ""


@dataclass
class _Outcome:
    denied: list[tuple[str, str, _Decision]] = field(default_factory=list)


# ------------------------------------------------------------------ matching


def _rule_matches(rule: dict[str, Any], request: AdmissionRequest) -> bool:
    info = request.info
    operations = rule.get("operations") or []
    if "*" not in operations and request.operation not in operations:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and info.group not in groups:
        return False
    versions = rule.get("apiVersions") or []
    if "*" not in versions and info.version not in versions:
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and info.namespaced) or (scope == "Namespaced" and not info.namespaced):
        return False
    names = rule.get("resourceNames") or []
    if names and request.name not in names:
        return False
    sub = request.subresource
    for resource in rule.get("resources") or []:
        if resource == "*/*":
            return True
        if not sub and resource in ("*", info.plural):
            return True
        if sub and resource in (f"{info.plural}/{sub}", f"*/{sub}", f"{info.plural}/*"):
            return True
    return False


def _selector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    if not selector:
        return True
    try:
        return match_labels(label_selector_from_object(selector), labels)
    except SelectorError:
        return False


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


class PolicyAdmission:
    """The ValidatingAdmissionPolicy plugin over one store."""

    def __init__(self, store: Store, *, audit_limit: int = 1000) -> None:
        self.store = store
        self.audit: list[AuditRecord] = []
        """Failures published by ``Audit`` bindings, newest last (bounded by ``audit_limit``)."""
        self._audit_limit = audit_limit
        self._configuration: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
        store.listeners.append(self._on_write)

    def _on_write(self, event: WatchEvent) -> None:
        if event.key in (_POLICIES, _BINDINGS):
            self._configuration = None

    def _policies_and_bindings(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The stored policies and bindings, read (and copied) once per change rather than on every write."""
        if self._configuration is None:
            self._configuration = (self.store.list(_POLICIES), self.store.list(_BINDINGS))
        return self._configuration

    def _namespace(self, request: AdmissionRequest) -> dict[str, Any] | None:
        if not request.info.namespaced or not request.namespace:
            return None
        return self.store.get("/namespaces", None, request.namespace)

    def _resources_match(
        self, match: dict[str, Any] | None, request: AdmissionRequest, namespace: dict[str, Any] | None
    ) -> bool:
        match = match or {}
        rules = match.get("resourceRules")
        if rules and not any(_rule_matches(rule, request) for rule in rules):
            return False
        if any(_rule_matches(rule, request) for rule in match.get("excludeResourceRules") or []):
            return False
        ns_selector = match.get("namespaceSelector")
        if ns_selector:
            if request.info.plural == "namespaces" and not request.info.group:
                if not _selector_matches(ns_selector, _labels(request.obj or request.old)):
                    return False
            elif request.info.namespaced and not _selector_matches(ns_selector, _labels(namespace)):
                return False
        obj_selector = match.get("objectSelector")
        if obj_selector:
            candidates = [o for o in (request.obj, request.old) if o is not None]
            if not any(_selector_matches(obj_selector, _labels(o)) for o in candidates):
                return False
        return True

    def admit(self, request: AdmissionRequest, warnings: list[str]) -> None:
        """Raise the real server's denial, or return (adding ``Warn`` messages to ``warnings``)."""
        if request.info.group == GROUP:
            return
        policies, bindings = self._policies_and_bindings()
        if not policies:
            return
        namespace = self._namespace(request)
        activation: Activation | None = None
        outcome = _Outcome()
        for policy in policies:
            spec = policy.get("spec") or {}
            if not self._resources_match(spec.get("matchConstraints"), request, namespace):
                continue
            name = policy["metadata"]["name"]
            for binding in bindings:
                binding_spec = binding.get("spec") or {}
                if binding_spec.get("policyName") != name:
                    continue
                if binding_spec.get("matchResources") and not self._resources_match(
                    binding_spec["matchResources"], request, namespace
                ):
                    continue
                if activation is None:  # built once per request, converted to CEL only as expressions read it
                    activation = _activation(request, namespace)
                for decision in _evaluate(spec, activation):
                    self._act(name, binding, decision, request, warnings, outcome)
        if outcome.denied:
            policy_name, binding_name, decision = outcome.denied[0]
            raise _denial(request, policy_name, binding_name, decision)

    def _act(
        self,
        policy: str,
        binding: dict[str, Any],
        decision: _Decision,
        request: AdmissionRequest,
        warnings: list[str],
        outcome: _Outcome,
    ) -> None:
        binding_name = binding["metadata"]["name"]
        for action in (binding.get("spec") or {}).get("validationActions") or []:
            if action == "Deny":
                outcome.denied.append((policy, binding_name, decision))
            elif action == "Warn":
                warnings.append(
                    f"Validation failed for ValidatingAdmissionPolicy '{policy}' with binding '{binding_name}': "
                    f"{decision.message}"
                )
            elif action == "Audit":
                resource = request.info.plural + (f"/{request.subresource}" if request.subresource else "")
                self.audit.append(
                    AuditRecord(policy, binding_name, decision.message, request.operation, resource, request.name)
                )
                del self.audit[: max(0, len(self.audit) - self._audit_limit)]


def _denial(request: AdmissionRequest, policy: str, binding: str, decision: _Decision) -> ApiError:
    """``admission.NewForbidden`` with the code and reason the validation names (Invalid by default)."""
    message = f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {decision.message}"
    reason = decision.reason or "Invalid"
    info = request.info
    name = request.name or ((request.obj or request.old or {}).get("metadata") or {}).get("name", "")
    details: dict[str, Any] = {"name": name, "kind": info.plural, "causes": [{"message": message}]}
    if info.group:
        details["group"] = info.group
    return ApiError(
        _REASON_CODES.get(reason, 422), reason, f'{info.qualified} "{name}" is forbidden: {message}', details
    )


# ---------------------------------------------------------------- evaluation


def _program(expression: str) -> Program:
    return compile_expression(expression, POLICY_VARIABLES)


def _activation(request: AdmissionRequest, namespace: dict[str, Any] | None) -> Activation:
    return Activation(
        {
            "object": request.obj,
            "oldObject": request.old,
            "request": request.as_cel(),
            "params": None,
            "namespaceObject": namespace,
            "variables": {},
        }
    )


def _evaluate(spec: dict[str, Any], activation: Activation) -> list[_Decision]:
    """The failed validations of one policy for one request (validator.go's decisions that deny)."""
    fail = (spec.get("failurePolicy") or "Fail") != "Ignore"
    activation["variables"] = {}
    if spec.get("paramKind"):
        return [_Decision("failed to configure binding: paramKind is not supported by the emulated API server")]
    errors: list[str] = []
    for condition in spec.get("matchConditions") or []:
        try:
            if not _program(condition.get("expression", "")).evaluate_bool(activation):
                return []
        except (CelCompileError, CelEvalError) as exc:
            errors.append(f"matchCondition '{condition.get('name', '')}' resulted in error: {exc}")
    if errors:
        return [_Decision(errors[0])] if fail else []
    variables: dict[str, Any] = {}
    for variable in spec.get("variables") or []:
        activation["variables"] = dict(variables)
        try:
            variables[variable["name"]] = _program(variable.get("expression", "")).evaluate(activation)
        except (CelCompileError, CelEvalError, KeyError):
            continue  # an expression that reads it fails with "no such key", as a lazy variable's error would
    activation["variables"] = variables
    decisions: list[_Decision] = []
    for validation in spec.get("validations") or []:
        expression = validation.get("expression", "")
        try:
            passed = _program(expression).evaluate_bool(activation)
        except (CelCompileError, CelEvalError) as exc:
            if fail:
                decisions.append(_Decision(f"expression '{expression}' resulted in error: {exc}"))
            continue
        if passed:
            continue
        message = None
        if validation.get("messageExpression"):
            try:
                message = _program(validation["messageExpression"]).evaluate_message(activation)
            except CelCompileError:
                message = None
        message = message or (validation.get("message") or "").strip()
        message = message or f"failed expression: {expression.strip()}"
        decisions.append(_Decision(message, validation.get("reason") or "Invalid"))
    return decisions


# ------------------------------------------------------- validation on write


def _invalid(path: str, value: Any, detail: str) -> dict[str, str]:
    rendered = '"' + str(value).replace('"', '\\"') + '"'
    return {"reason": "FieldValueInvalid", "field": path, "message": f"Invalid value: {rendered}: {detail}"}


def _required(path: str, detail: str = "") -> dict[str, str]:
    return {
        "reason": "FieldValueRequired",
        "field": path,
        "message": "Required value" + (f": {detail}" if detail else ""),
    }


def _unsupported(path: str, value: Any, allowed: tuple[str, ...]) -> dict[str, str]:
    supported = ", ".join(f'"{a}"' for a in allowed)
    return {
        "reason": "FieldValueNotSupported",
        "field": path,
        "message": f'Unsupported value: "{value}": supported values: {supported}',
    }


def _compiles(path: str, expression: Any, causes: list[dict[str, str]]) -> None:
    if not isinstance(expression, str) or not expression.strip():
        causes.append(_required(path))
        return
    try:
        _program(expression)
    except CelCompileError as exc:
        causes.append(_invalid(path, expression, str(exc)))


_RULE_FIELDS = ("resourceRules", "excludeResourceRules")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_rules(path: str, match: dict[str, Any], causes: list[dict[str, str]]) -> None:
    for key in _RULE_FIELDS:
        for index, rule in enumerate(match.get(key) or []):
            for op_index, operation in enumerate(rule.get("operations") or []):
                if operation not in _OPERATIONS:
                    causes.append(_unsupported(f"{path}.{key}[{index}].operations[{op_index}]", operation, _OPERATIONS))


def validate_policy(policy: dict[str, Any]) -> list[dict[str, str]]:
    """The real server's checks on a ValidatingAdmissionPolicy write (422 causes; empty when valid)."""
    spec = policy.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    causes: list[dict[str, str]] = []
    if not spec.get("validations") and not spec.get("auditAnnotations"):
        causes.append(_required("spec.validations", "validations or auditAnnotations must contain at least one item"))
    match = spec.get("matchConstraints")
    if not isinstance(match, dict) or not match.get("resourceRules"):
        causes.append(_required("spec.matchConstraints.resourceRules"))
    else:
        _check_rules("spec.matchConstraints", match, causes)
    failure = spec.get("failurePolicy")
    if failure is not None and failure not in ("Fail", "Ignore"):
        causes.append(_unsupported("spec.failurePolicy", failure, ("Fail", "Ignore")))
    for index, condition in enumerate(spec.get("matchConditions") or []):
        if not condition.get("name"):
            causes.append(_required(f"spec.matchConditions[{index}].name"))
        _compiles(f"spec.matchConditions[{index}].expression", condition.get("expression"), causes)
    for index, variable in enumerate(spec.get("variables") or []):
        if not _VARIABLE_NAME.match(str(variable.get("name", ""))):
            causes.append(_invalid(f"spec.variables[{index}].name", variable.get("name", ""), "must be a C identifier"))
        _compiles(f"spec.variables[{index}].expression", variable.get("expression"), causes)
    for index, validation in enumerate(spec.get("validations") or []):
        _compiles(f"spec.validations[{index}].expression", validation.get("expression"), causes)
        if validation.get("messageExpression") is not None:
            _compiles(f"spec.validations[{index}].messageExpression", validation["messageExpression"], causes)
        reason = validation.get("reason")
        if reason is not None and reason not in _REASON_CODES:
            causes.append(_unsupported(f"spec.validations[{index}].reason", reason, tuple(_REASON_CODES)))
    for index, annotation in enumerate(spec.get("auditAnnotations") or []):
        _compiles(f"spec.auditAnnotations[{index}].valueExpression", annotation.get("valueExpression"), causes)
    return causes


def validate_binding(binding: dict[str, Any]) -> list[dict[str, str]]:
    """The real server's checks on a ValidatingAdmissionPolicyBinding write."""
    spec = binding.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    causes: list[dict[str, str]] = []
    if not spec.get("policyName"):
        causes.append(_required("spec.policyName"))
    actions = spec.get("validationActions") or []
    if not actions:
        causes.append(_required("spec.validationActions"))
    for index, action in enumerate(actions):
        if action not in _ACTIONS:
            causes.append(_unsupported(f"spec.validationActions[{index}]", action, _ACTIONS))
    if len(set(actions)) != len(actions):
        causes.append(_invalid("spec.validationActions", actions, "must not contain duplicates"))
    if "Deny" in actions and "Warn" in actions:
        causes.append(
            _invalid(
                "spec.validationActions",
                actions,
                "must not contain both Deny and Warn (repeating the same validation failure information in the API "
                "response and headers serves no purpose)",
            )
        )
    if isinstance(spec.get("matchResources"), dict):
        _check_rules("spec.matchResources", spec["matchResources"], causes)
    return causes
