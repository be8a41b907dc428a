"""A decision overtaken by intake's next write is made again from the watch cache, not from a second read.

In a burst the agent's first finding opens the repair at once and the rest coalesce into a second write a
moment later; that merge often lands between the operator's read of the repair and its status write, which
the resourceVersion fence turns into a 409. The operator used to GET the repair after every 409 (half a
request per repair in ``burst_bench``); the merge has usually reached its watch cache by then, so it decides
again from there, and asks the API server only while the cache still holds the version that went stale.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from test_waiting_repair_tag import _operator, _reset, _served, _setup, _xid

from repairbot.kube.intake import Intake
from repairbot.model import Source
from repairbot.operator.fleet_cache import FleetCache


class CatchingUp(FleetCache):
    """A watch cache one event behind until the first decision is written: it hands out ``first`` to the
    reconcile's read and to the admission's read under its lock, then what it holds."""

    def __init__(self, first: dict[str, Any], lagging_reads: int = 2) -> None:
        super().__init__()
        self._first, self._lagging = first, lagging_reads

    def repair(self, name: str) -> dict[str, Any] | None:
        if self._lagging > 0:
            self._lagging -= 1
            return self._first
        return super().repair(name)


def test_an_admission_overtaken_by_the_agents_next_findings_is_decided_again_without_reading_the_repair(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    _setup(apiserver, kube_objects, "gpu-1")
    intake = Intake(api)
    opened = intake.report("gpu-1", [_xid(0, Source.AGENT)], source=Source.AGENT)
    custom = client.CustomObjectsApi(api)
    before = custom.get_cluster_custom_object("repairbot.io", "v1alpha1", "gpurepairs", opened.name)
    intake.report("gpu-1", [_xid(3, Source.AGENT)], source=Source.AGENT)  # the coalesced second write
    cache = CatchingUp(first=before)  # decides first from the version before the merge, as a lagging watch
    operator, _ = _operator(api, "100%", cache)  # primed after the merge: it holds the merged version
    _reset(apiserver)

    result = operator.reconcile(opened.name)

    assert result is not None and result.decision.step.value == "cordon"
    served = _served(apiserver)
    assert served[("patch", "gpurepairs/status")] >= 2  # the write that went stale, then the one that landed
    assert ("get", "gpurepairs") not in served, served  # decided again from the cache: no read of the repair
    repair = custom.get_cluster_custom_object("repairbot.io", "v1alpha1", "gpurepairs", opened.name)
    assert repair["status"]["phase"] == "Cordoned"
    assert sorted(f["gpu"]["index"] for f in repair["spec"]["findings"]) == [0, 3]  # the merge is not lost


def test_an_admission_that_waited_for_its_turn_decides_on_the_repair_as_it_is_then_and_writes_once(
    apiserver: Any, api: client.ApiClient, kube_objects: Any
) -> None:
    """The reconcile read the repair before intake's merge; by the time the admission lock (and the client's
    rate limit) let it decide, the watch has the merge: it decides on that, and its one status write lands."""
    _setup(apiserver, kube_objects, "gpu-1")
    intake = Intake(api)
    opened = intake.report("gpu-1", [_xid(0, Source.AGENT)], source=Source.AGENT)
    custom = client.CustomObjectsApi(api)
    before = custom.get_cluster_custom_object("repairbot.io", "v1alpha1", "gpurepairs", opened.name)
    intake.report("gpu-1", [_xid(3, Source.AGENT)], source=Source.AGENT)
    operator, _ = _operator(api, "100%", CatchingUp(first=before, lagging_reads=1))  # caught up by its turn
    _reset(apiserver)

    result = operator.reconcile(opened.name)

    assert result is not None and result.decision.step.value == "cordon"
    served = _served(apiserver)
    assert served[("patch", "gpurepairs/status")] == 1 and ("get", "gpurepairs") not in served, served
