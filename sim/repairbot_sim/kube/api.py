"""The API semantics between HTTP and the store: what the generic registry does.

Create/update/patch/delete with the rules clients rely on: ``generateName``,
namespace checks, dry-run, the status subresource split (the main resource
ignores status changes; ``/status`` changes only status), schema validation
and pruning of custom resources, CRD registration on write, and paginated
lists with consistent continue tokens. Pod deletion, eviction and PDB status
live in :mod:`repairbot_sim.kube.pods`. Nothing here knows about aiohttp, so
the in-process entry points (``KubeApiServer.create_object``) share it.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections import OrderedDict
from typing import Any

from repairbot_sim.kube import patching
from repairbot_sim.kube.admission import AdmissionRequest, PolicyAdmission, validate_binding, validate_policy
from repairbot_sim.kube.errors import ApiError
from repairbot_sim.kube.identity import SANDBOX_ADMIN, UserInfo
from repairbot_sim.kube.rbac import RBAC_GROUP, validate_rbac_name
from repairbot_sim.kube.resources import Registry, ResourceInfo
from repairbot_sim.kube.selectors import (
    SelectorError,
    match_fields,
    match_labels,
    parse_field_selector,
    parse_label_selector,
)
from repairbot_sim.kube.store import Store
from repairbot_sim.kube.validation import (
    apply_defaults,
    validate_crd_rules,
    validate_name,
    validate_object,
    validate_owner_references,
)

__all__ = ["KubeApi", "Selector", "WriteOptions"]

_NAME_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"
_PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}
_RESETS_STATUS_ON_CREATE = {"pods": {"phase": "Pending"}, "namespaces": {"phase": "Active"}}


class WriteOptions:
    """``dryRun`` and ``fieldValidation`` query parameters, plus in-process trust."""

    def __init__(
        self,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        trusted: bool = False,
        user: UserInfo = SANDBOX_ADMIN,
        internal: bool = False,
    ) -> None:
        self.dry_run = dry_run
        self.field_validation = field_validation or "Warn"
        self.trusted = trusted
        """In-process writes (the sandbox acting as kubelet) keep status on create."""
        self.warnings: list[str] = []
        self.user = user
        """Who writes: admission (ValidatingAdmissionPolicy) sees it as ``request.userInfo``."""
        self.internal = internal
        """A write the server makes inside another request (an eviction's delete): admission ran on that one."""


class Selector:
    """A parsed ``labelSelector`` + ``fieldSelector`` pair (400 on syntax errors)."""

    def __init__(self, labels: str | None = None, fields: str | None = None) -> None:
        try:
            self.labels = parse_label_selector(labels)
            self.fields = parse_field_selector(fields)
        except SelectorError as exc:
            raise ApiError.bad_request(f"unable to parse requirement: {exc}") from exc

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        return match_labels(self.labels, obj["metadata"].get("labels")) and match_fields(self.fields, obj)


class KubeApi:
    """Verbs over the registry and the store."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.admission = PolicyAdmission(store)
        self._snapshots: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    # --------------------------------------------------------------- helpers

    def _require_namespace(self, info: ResourceInfo, namespace: str | None, options: WriteOptions) -> None:
        if not info.namespaced:
            return
        if not namespace:
            raise ApiError.bad_request("the server could not find the requested resource (namespace required)")
        if self.store.get("/namespaces", None, namespace) is not None:
            return
        if options.trusted:
            self.store.create(
                "/namespaces",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": namespace},
                    "status": {"phase": "Active"},
                },
                resource="namespaces",
            )
            return
        raise ApiError.not_found("namespaces", namespace)

    def _validate_custom(
        self, info: ResourceInfo, obj: dict[str, Any], options: WriteOptions, old: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName", "")
        pruned, result = validate_object(info.schema, obj, old)
        if result.unknown:
            if options.field_validation == "Strict":
                fields = ", ".join(f'unknown field "{path}"' for path in result.unknown)
                raise ApiError.bad_request(f"strict decoding error: {fields}")
            if options.field_validation == "Warn":
                options.warnings.extend(f'unknown field "{path}"' for path in result.unknown)
        if result.causes:
            raise ApiError.invalid(info.kind, info.group, name, result.causes)
        return pruned

    def _validate_registration(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        """Objects whose expressions the server compiles on write: a policy or CRD that does not compile is refused."""
        checks = {
            ("admissionregistration.k8s.io", "validatingadmissionpolicies"): validate_policy,
            ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): validate_binding,
            ("apiextensions.k8s.io", "customresourcedefinitions"): validate_crd_rules,
        }
        check = checks.get((info.group, info.plural))
        causes = check(obj) if check else []
        if causes:
            raise ApiError.invalid(info.kind, info.group, obj["metadata"].get("name", ""), causes)

    def admit(
        self,
        operation: str,
        info: ResourceInfo,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        options: WriteOptions,
        *,
        name: str,
        subresource: str = "",
        kind: tuple[str, str, str] | None = None,
    ) -> None:
        """Validating admission, after schema validation and before storage, as in the real registry."""
        if options.internal:
            return
        namespace = ((obj or old or {}).get("metadata") or {}).get("namespace") if info.namespaced else None
        request = AdmissionRequest(
            operation=operation,
            info=info,
            name=name,
            namespace=namespace,
            obj=obj,
            old=old,
            user=options.user,
            dry_run=options.dry_run,
            subresource=subresource,
            kind=kind,
        )
        self.admission.admit(request, options.warnings)

    def _check_body(self, info: ResourceInfo, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError.bad_request("the object provided is unrecognized (must be a JSON object)")
        if body.get("kind") and body["kind"] != info.kind:
            raise ApiError.bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the expected API version "
                f"({info.api_version}) or kind {body['kind']} does not match {info.kind}"
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = info.api_version, info.kind
        obj.setdefault("metadata", {})
        return obj

    def _place(self, info: ResourceInfo, obj: dict[str, Any], namespace: str | None) -> None:
        meta = obj["metadata"]
        if info.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or meta.get("namespace")
        else:
            meta.pop("namespace", None)

    # ----------------------------------------------------------------- verbs

    def get(self, info: ResourceInfo, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(info.storage_key, namespace if info.namespaced else None, name)
        if obj is None:
            raise ApiError.not_found(info.plural, name, info.group)
        return self._as_version(info, obj)

    @staticmethod
    def _as_version(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
        """Objects are stored once per group/resource; report the requested version, defaulted by its schema.

        A real server defaults custom resources when it reads them from etcd too,
        so a default added to a CRD after an object was stored shows on the next read.
        """
        obj["apiVersion"] = info.api_version
        if info.custom and info.schema:
            apply_defaults(info.schema, obj)
        return obj

    def create(self, info: ResourceInfo, namespace: str | None, body: Any, options: WriteOptions) -> dict[str, Any]:
        obj = self._check_body(info, body)
        self._place(info, obj, namespace)
        meta = obj["metadata"]
        requested_name = str(meta.get("name") or "")
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError.invalid(
                    info.kind,
                    info.group,
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "message": "name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                )
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_SUFFIX, k=5))
        causes = validate_rbac_name(meta["name"]) if info.group == RBAC_GROUP else validate_name(meta["name"])
        causes += validate_owner_references(meta)
        if causes:
            raise ApiError.invalid(info.kind, info.group, meta["name"], causes)
        self._require_namespace(info, meta.get("namespace"), options)
        if info.status_subresource and not options.trusted and info.plural != "nodes":
            reset = _RESETS_STATUS_ON_CREATE.get(info.plural) if not info.group else None
            obj.pop("status", None)
            if reset:
                obj["status"] = dict(reset)
        if info.custom:
            obj = self._validate_custom(info, obj, options)
        self._validate_registration(info, obj)
        if info.plural == "customresourcedefinitions":
            obj = self._prepare_crd(obj)
        self.admit("CREATE", info, obj, None, options, name=requested_name)
        if options.dry_run:
            return self._dry_run_result(
                self.store.get(info.storage_key, meta.get("namespace"), meta["name"]), info, obj
            )
        stored = self.store.create(info.storage_key, obj, resource=info.plural, group=info.group)
        if info.plural == "customresourcedefinitions":
            self.registry.register_crd(stored)
        return self._as_version(info, stored)

    def _dry_run_result(
        self, existing: dict[str, Any] | None, info: ResourceInfo, obj: dict[str, Any]
    ) -> dict[str, Any]:
        if existing is not None:
            raise ApiError.already_exists(info.plural, obj["metadata"]["name"], info.group)
        obj["metadata"].setdefault("uid", "00000000-0000-0000-0000-000000000000")
        obj["metadata"]["generation"] = 1
        return obj

    @staticmethod
    def _prepare_crd(crd: dict[str, Any]) -> dict[str, Any]:
        """A real server marks a CRD Established once its names are accepted."""
        names = crd.get("spec", {}).get("names", {})
        accepted = dict(names)
        accepted.setdefault("singular", names.get("kind", "").lower())
        accepted.setdefault("listKind", names.get("kind", "") + "List")
        crd["status"] = {
            "acceptedNames": accepted,
            "storedVersions": [v["name"] for v in crd.get("spec", {}).get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
        }
        return crd

    def update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Any,
        options: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """PUT: optimistic concurrency when the body carries a resourceVersion."""
        obj = self._check_body(info, body)
        self._place(info, obj, namespace)
        if obj["metadata"].get("name") not in (None, name):
            raise ApiError.bad_request(
                f"the name of the object ({obj['metadata'].get('name')}) does not match the name on the URL ({name})"
            )
        obj["metadata"]["name"] = name
        old = self.store.get(info.storage_key, namespace if info.namespaced else None, name)
        if old is None:
            raise ApiError.not_found(info.plural, name, info.group)
        return self._write(info, old, obj, options, subresource)

    def _write(
        self, info: ResourceInfo, old: dict[str, Any], new: dict[str, Any], options: WriteOptions, subresource: str
    ) -> dict[str, Any]:
        if subresource == "status":
            status = new.get("status")
            wanted_rv = new["metadata"].get("resourceVersion")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            new["metadata"]["resourceVersion"] = wanted_rv or old["metadata"]["resourceVersion"]
        elif info.status_subresource:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        causes = validate_owner_references(new["metadata"])
        if causes:
            raise ApiError.invalid(info.kind, info.group, str(new["metadata"].get("name") or ""), causes)
        if info.custom:
            new = self._validate_custom(info, new, options, old)
        self._validate_registration(info, new)
        if info.plural == "customresourcedefinitions":
            new = self._prepare_crd(new)
        self.admit("UPDATE", info, new, old, options, name=new["metadata"]["name"], subresource=subresource)
        if options.dry_run:
            return new
        stored = self.store.update(info.storage_key, new, resource=info.plural, group=info.group)
        if info.plural == "customresourcedefinitions" and self.store.get(
            info.storage_key, None, stored["metadata"]["name"]
        ):
            self.registry.register_crd(stored)
        return self._as_version(info, stored)

    def patch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        options: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        kind = _PATCH_TYPES.get(content_type.split(";")[0].strip().lower())
        if kind is None or (kind == "strategic" and info.custom):
            raise ApiError.unsupported_media_type(content_type)
        try:
            patch_body = json.loads(raw or b"null") if kind != "apply" else _load_yaml(raw)
        except ValueError as exc:
            raise ApiError.bad_request(f"error decoding patch: {exc}") from exc
        old = self.store.get(info.storage_key, namespace if info.namespaced else None, name)
        if old is None:
            if kind == "apply":
                return self.create(info, namespace, patch_body, options)
            raise ApiError.not_found(info.plural, name, info.group)
        try:
            if kind == "json":
                new = patching.apply_json_patch(old, patch_body)
            elif kind == "strategic":
                new = patching.strategic_merge_patch(old, patch_body, info.kind)
            else:
                if not isinstance(patch_body, dict):
                    raise patching.PatchError("merge patch must be a JSON object")
                new = patching.json_merge_patch(old, patch_body)
        except patching.PatchError as exc:
            raise ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
            ) from exc
        if not isinstance(new.get("metadata"), dict):
            raise ApiError.bad_request("metadata must be an object")
        new["metadata"]["name"] = name
        self._place(info, new, namespace)
        new["apiVersion"], new["kind"] = info.api_version, info.kind
        return self._write(info, old, new, options, subresource)

    def list(
        self,
        info: ResourceInfo,
        namespace: str | None,
        selector: Selector,
        *,
        limit: int = 0,
        continue_token: str = "",
    ) -> tuple[list[dict[str, Any]], str, str]:
        """Matching objects, the list's resourceVersion, and the next continue token.

        The first paged request snapshots the full result, so later pages are
        consistent with the first, as etcd's MVCC reads are; once history
        has been compacted past that version the continue token answers 410.
        """
        if continue_token:
            snapshot_id, offset, rv = _decode_continue(continue_token)
            items = self._snapshots.get(snapshot_id)
            if items is None or rv < self.store.compacted_rv:
                raise ApiError.gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter, or use the continue token in this response to "
                    "retrieve the remainder of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted between the time the "
                    "first chunk was returned and now may show up in the list."
                )
        else:
            rv = self.store.resource_version
            ns = namespace if info.namespaced else None
            items = self.store.list(info.storage_key, ns, where=selector.matches)
            snapshot_id, offset = f"{rv}-{random.getrandbits(32):x}", 0
        items = [self._as_version(info, obj) for obj in items]
        if limit <= 0 or offset + limit >= len(items):
            return items[offset:], str(rv), ""
        self._snapshots[snapshot_id] = items
        while len(self._snapshots) > 64:
            self._snapshots.popitem(last=False)
        token = base64.urlsafe_b64encode(json.dumps({"id": snapshot_id, "o": offset + limit, "rv": rv}).encode())
        return items[offset : offset + limit], str(rv), token.decode()

    def delete_object(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        options: WriteOptions,
        *,
        preconditions: dict[str, Any] | None = None,
        grace_seconds: int = 0,
    ) -> tuple[dict[str, Any], bool]:
        """Delete; returns (object, gone). Finalizers turn it into a mark."""
        ns = namespace if info.namespaced else None
        old = self.store.get(info.storage_key, ns, name)
        if old is None:
            raise ApiError.not_found(info.plural, name, info.group)
        for field_name in ("uid", "resourceVersion"):
            wanted = (preconditions or {}).get(field_name)
            if wanted and wanted != old["metadata"].get(field_name):
                label = "UID" if field_name == "uid" else "ResourceVersion"
                actual = old["metadata"].get(field_name)
                why = f"Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}"
                raise ApiError.conflict(info.plural, name, info.group, why)
        self.admit("DELETE", info, None, old, options, name=name)
        if options.dry_run:
            return self._as_version(info, old), False
        obj, gone = self.store.delete(
            info.storage_key, ns, name, resource=info.plural, group=info.group, grace_seconds=grace_seconds
        )
        if gone and info.plural == "customresourcedefinitions":
            self._drop_custom_resources(obj)
        return self._as_version(info, obj), gone

    def _drop_custom_resources(self, crd: dict[str, Any]) -> None:
        """A deleted CRD takes its objects with it (each gets a DELETED watch event)."""
        spec = crd.get("spec", {})
        key = f"{spec.get('group')}/{spec.get('names', {}).get('plural')}"
        plural = spec.get("names", {}).get("plural", "")
        for obj in self.store.list(key):
            meta = obj["metadata"]
            if meta.get("finalizers"):
                obj["metadata"]["finalizers"] = []
                self.store.update(key, obj, resource=plural, group=spec.get("group", ""), check_version=False)
            if self.store.get(key, meta.get("namespace"), meta["name"]) is not None:
                self.store.delete(key, meta.get("namespace"), meta["name"], resource=plural)
        self.registry.unregister_crd(crd)


def _decode_continue(token: str) -> tuple[str, int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["id"]), int(data["o"]), int(data["rv"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError.bad_request(f"continue key is not valid: {exc}") from exc


def _load_yaml(raw: bytes) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc
