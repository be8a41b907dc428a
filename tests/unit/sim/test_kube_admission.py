"""ValidatingAdmissionPolicy on the emulated API server: matching, evaluation, actions and the refusal's shape."""

from __future__ import annotations

from typing import Any

import pytest

from repairbot_sim.kube.api import KubeApi, WriteOptions
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.identity import UserInfo, service_account
from repairbot_sim.kube.pods import PodLifecycle
from repairbot_sim.kube.resources import Registry, ResourceInfo
from repairbot_sim.kube.store import Store

ALICE = UserInfo("alice", ("devs", "system:authenticated"))


def _info(api: KubeApi, api_version: str, kind: str) -> ResourceInfo:
    info = api.registry.by_kind(api_version, kind)
    assert info is not None
    return info


def _create(api: KubeApi, obj: dict[str, Any], user: UserInfo | None = None) -> dict[str, Any]:
    info = _info(api, obj["apiVersion"], obj["kind"])
    options = WriteOptions(trusted=True) if user is None else WriteOptions(user=user)
    return api.create(info, obj["metadata"].get("namespace"), obj, options)


def _policy(name: str, validations: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    rules = spec.pop(
        "rules",
        [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}],
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "matchConstraints": {"resourceRules": rules, **spec.pop("match", {})},
            "validations": validations,
            **spec,
        },
    }


def _binding(policy: str, actions: list[str], name: str = "", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name or f"{policy}-binding"},
        "spec": {"policyName": policy, "validationActions": actions, **spec},
    }


def _configmap(name: str, data: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "team-a", "labels": labels or {}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


@pytest.fixture
def api() -> KubeApi:
    api = KubeApi(Store(), Registry())
    _create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "labels": {"env": "prod"}}})
    return api


SMALL = {"expression": "size(object.data) <= 1", "message": "at most one key", "reason": "Forbidden"}


def test_a_denied_create_answers_with_the_policys_reason_and_is_not_stored(api: KubeApi) -> None:
    _create(api, _policy("small", [SMALL]))
    _create(api, _binding("small", ["Deny"]))
    with pytest.raises(ApiError) as caught:
        _create(api, _configmap("big", {"a": "1", "b": "2"}), ALICE)
    message = "ValidatingAdmissionPolicy 'small' with binding 'small-binding' denied request: at most one key"
    assert (caught.value.code, caught.value.reason) == (403, "Forbidden")
    assert caught.value.message == f'configmaps "big" is forbidden: {message}'
    assert api.store.get("/configmaps", "team-a", "big") is None
    _create(api, _configmap("fine", {"a": "1"}), ALICE)


@pytest.mark.parametrize(
    ("reason", "code"), [(None, 422), ("Invalid", 422), ("Unauthorized", 401), ("RequestEntityTooLarge", 413)]
)
def test_the_reason_picks_the_status_code(api: KubeApi, reason: str | None, code: int) -> None:
    validation: dict[str, Any] = {"expression": "false"}
    if reason:
        validation["reason"] = reason
    _create(api, _policy("never", [validation]))
    _create(api, _binding("never", ["Deny"]))
    with pytest.raises(ApiError) as caught:
        _create(api, _configmap("x"), ALICE)
    assert (caught.value.code, caught.value.reason) == (code, reason or "Invalid")
    assert caught.value.message.endswith("denied request: failed expression: false")


def test_message_expression_wins_and_variables_feed_it(api: KubeApi) -> None:
    validation = {
        "expression": "variables.keys <= 1",
        "message": "too many keys",
        "messageExpression": "'has ' + string(variables.keys) + ' keys, ' + request.userInfo.username",
    }
    _create(api, _policy("small", [validation], variables=[{"name": "keys", "expression": "size(object.data)"}]))
    _create(api, _binding("small", ["Deny"]))
    with pytest.raises(ApiError) as caught:
        _create(api, _configmap("big", {"a": "1", "b": "2"}), ALICE)
    assert caught.value.message.endswith("denied request: has 2 keys, alice")


def test_warn_and_audit_let_the_request_through_and_say_why(api: KubeApi) -> None:
    _create(api, _policy("small", [SMALL]))
    _create(api, _binding("small", ["Warn", "Audit"]))
    options = WriteOptions(user=ALICE)
    api.create(_info(api, "v1", "ConfigMap"), "team-a", _configmap("big", {"a": "1", "b": "2"}), options)
    assert options.warnings == [
        "Validation failed for ValidatingAdmissionPolicy 'small' with binding 'small-binding': at most one key"
    ]
    assert [(a.policy, a.operation, a.name) for a in api.admission.audit] == [("small", "CREATE", "big")]


def test_an_expression_error_denies_under_fail_and_passes_under_ignore(api: KubeApi) -> None:
    broken = {"expression": "object.data.missing == 'x'"}
    _create(api, _policy("strict", [broken]))
    _create(api, _binding("strict", ["Deny"]))
    with pytest.raises(ApiError) as caught:
        _create(api, _configmap("x", {"a": "1"}), ALICE)
    assert caught.value.code == 422
    assert "expression 'object.data.missing == 'x'' resulted in error: no such key: missing" in caught.value.message
    api.store.delete("admissionregistration.k8s.io/validatingadmissionpolicies", None, "strict", resource="x")
    _create(api, _policy("lenient", [broken], failurePolicy="Ignore"))
    _create(api, _binding("lenient", ["Deny"]))
    _create(api, _configmap("y", {"a": "1"}), ALICE)


def test_match_conditions_selectors_and_excludes_narrow_what_is_checked(api: KubeApi) -> None:
    never = {"expression": "false", "message": "no"}
    _create(
        api,
        _policy(
            "narrow",
            [never],
            matchConditions=[{"name": "not-admin", "expression": "!('system:masters' in request.userInfo.groups)"}],
            match={
                "namespaceSelector": {"matchLabels": {"env": "prod"}},
                "objectSelector": {"matchExpressions": [{"key": "guarded", "operator": "Exists"}]},
                "excludeResourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["*"],
                        "resources": ["configmaps"],
                        "resourceNames": ["exempt"],
                    }
                ],
            },
        ),
    )
    _create(api, _binding("narrow", ["Deny"]))
    _create(api, _configmap("unguarded"), ALICE)  # objectSelector does not match
    _create(api, _configmap("exempt", labels={"guarded": "1"}), ALICE)  # excluded by name
    _create(api, _configmap("by-admin", labels={"guarded": "1"}))  # matchCondition false for system:masters
    with pytest.raises(ApiError):
        _create(api, _configmap("guarded", labels={"guarded": "1"}), ALICE)


def test_subresource_rules_and_delete_see_the_old_object(api: KubeApi) -> None:
    rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"], "resources": ["nodes/status", "pods"]}]
    guard = {
        "expression": "request.operation != 'DELETE' || (object == null && oldObject.metadata.name != 'keep')",
        "messageExpression": "'cannot ' + request.operation + ' ' + request.resource.resource"
        " + '/' + request.subResource",
    }
    status_guard = {"expression": "request.subResource != 'status' || request.userInfo.username != 'alice'"}
    _create(api, _policy("subs", [guard, status_guard], rules=rules))
    _create(api, _binding("subs", ["Deny"]))
    _create(api, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {}})
    nodes = _info(api, "v1", "Node")
    api.patch(
        nodes,
        None,
        "n1",
        "application/merge-patch+json",
        b'{"metadata":{"labels":{"a":"b"}}}',
        WriteOptions(user=ALICE),
    )
    with pytest.raises(ApiError) as caught:
        api.patch(
            nodes,
            None,
            "n1",
            "application/merge-patch+json",
            b'{"status":{"phase":"x"}}',
            WriteOptions(user=ALICE),
            subresource="status",
        )
    assert "failed expression: request.subResource != 'status'" in caught.value.message
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "keep", "namespace": "team-a"}, "spec": {}}
    _create(api, pod)
    with pytest.raises(ApiError) as caught:
        api.delete_object(_info(api, "v1", "Pod"), "team-a", "keep", WriteOptions(user=ALICE))
    assert caught.value.message.endswith("denied request: cannot DELETE pods/")


def test_an_eviction_is_admitted_as_a_create_of_pods_eviction(api: KubeApi) -> None:
    rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods/eviction"]}]
    only_ops = {"expression": "request.userInfo.username == 'ops' && object.kind == 'Eviction'", "message": "ops only"}
    _create(api, _policy("evictions", [only_ops], rules=rules))
    _create(api, _binding("evictions", ["Deny"]))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team-a"}, "spec": {}}
    _create(api, pod)
    pods = PodLifecycle(api)
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}
    with pytest.raises(ApiError) as caught:
        pods.evict("team-a", "p", eviction, WriteOptions(user=ALICE))
    assert caught.value.message == (
        "pods \"p\" is forbidden: ValidatingAdmissionPolicy 'evictions' with binding 'evictions-binding' "
        "denied request: ops only"
    )
    pods.evict("team-a", "p", eviction, WriteOptions(user=UserInfo("ops")))
    assert api.store.get("/pods", "team-a", "p") is None


def test_a_policy_that_does_not_compile_is_refused_when_written(api: KubeApi) -> None:
    bad = _policy("bad", [{"expression": "object.data.size() >"}, {"expression": "nosuch(object)"}])
    with pytest.raises(ApiError) as caught:
        _create(api, bad)
    assert caught.value.code == 422
    fields = [c["field"] for c in (caught.value.details or {})["causes"]]
    assert fields == ["spec.validations[0].expression", "spec.validations[1].expression"]
    assert "undeclared reference to 'nosuch'" in caught.value.message
    with pytest.raises(ApiError) as caught:
        _create(api, _binding("x", ["Deny", "Warn"]))
    assert "must not contain both Deny and Warn" in caught.value.message


def test_policies_never_guard_policies(api: KubeApi) -> None:
    rules = [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}]
    _create(api, _policy("lockout", [{"expression": "false"}], rules=rules))
    _create(api, _binding("lockout", ["Deny"]))
    _create(api, _binding("lockout", ["Deny"], name="another"), service_account("x", "y"))


def test_the_kubernetes_string_library_is_there(api: KubeApi) -> None:
    expression = (
        "object.metadata.name.lowerAscii().startsWith('team-') && object.metadata.name.split('-').size() == 2"
        " && ['a', 'b'].join(',') == 'a,b' && object.metadata.name.replace('team', 'x') == 'x-one'"
        " && object.data.all(k, k.matches('^[a-z]+$')) && object.data.exists_one(k, k == 'a')"
    )
    _create(api, _policy("lib", [{"expression": expression}]))
    _create(api, _binding("lib", ["Deny"]))
    _create(api, _configmap("team-one", {"a": "1", "b": "2"}), ALICE)
    with pytest.raises(ApiError):
        _create(api, _configmap("team-one-two", {"a": "1"}), ALICE)
