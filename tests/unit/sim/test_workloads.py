"""The sandbox's workloads: every pod names its controller, and seeding gives it the created owner's uid."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from repairbot_sim import fleet, workloads


class Recorder:
    """Stands for the API server: assigns uids on create, as the store does."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._uids = (f"uid-{n}" for n in itertools.count())

    def create_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        stored = {**obj, "metadata": {**obj["metadata"], "uid": next(self._uids)}}
        meta = stored["metadata"]
        self.objects[(obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])] = stored
        return stored

    def get_object(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((api_version, kind, namespace or "", name))


def test_every_seeded_pod_points_at_its_created_controller() -> None:
    server = Recorder()
    stored = workloads.seed(server, fleet.cluster_objects(3))
    pods = [o for o in stored if o["kind"] == "Pod"]
    assert len(pods) == 9
    for pod in pods:
        [ref] = pod["metadata"]["ownerReferences"]
        owner = server.get_object(ref["apiVersion"], ref["kind"], ref["name"], pod["metadata"]["namespace"])
        assert owner is not None and owner["metadata"]["uid"] == ref["uid"]
        assert ref["controller"] is True and ref["blockOwnerDeletion"] is True
    kinds = {pod["metadata"]["ownerReferences"][0]["kind"] for pod in pods}
    assert kinds == {"PyTorchJob", "ReplicaSet", "DaemonSet"}


def test_an_owner_not_created_first_is_a_clear_error() -> None:
    pod = fleet.node_pods(0)[0]
    with pytest.raises(LookupError, match=r"names owner PyTorchJob llama-70b .* not created before it"):
        workloads.seed(Recorder(), [pod])


def test_a_bare_pod_has_no_owner() -> None:
    assert "ownerReferences" not in fleet.bare_pod("debug-shell", "train", "gpu-node-000")["metadata"]
