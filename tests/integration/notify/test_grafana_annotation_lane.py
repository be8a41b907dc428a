"""The Grafana lane against the fake Grafana and the emulated API server: every step once, across restarts and
outages, and a token Grafana refuses is said on the repair rather than skipping the fleet's annotations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from tenacity import wait_none

from repairbot.model import GROUP, PLURAL, VERSION, format_time
from repairbot.notify import NotifyError
from repairbot.notify.grafana import Annotation, GrafanaAnnotations, annotation_for
from repairbot.operator.annotations import AnnotationDispatcher
from repairbot.operator.metrics import OperatorMetrics
from repairbot.policy import GrafanaPolicy
from repairbot_sim.grafana import GrafanaSim

NAME, NODE = "gpu-3-20261202080000", "gpu-3"
T0 = datetime.now(UTC) - timedelta(minutes=5)


@pytest.fixture
def grafana(sim_loop: Any) -> Iterator[GrafanaSim]:
    sim = GrafanaSim()
    sim_loop.run(sim.start())
    yield sim
    sim_loop.run(sim.stop())


def entry(n: int) -> dict[str, Any]:
    return {"step": "cordon" if n == 0 else f"step-{n}", "outcome": "done", "message": f"step {n} happened",
            "at": format_time(T0 + timedelta(seconds=n))}  # fmt: skip


def seed(custom: client.CustomObjectsApi, steps: int) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPURepair",
            "metadata": {"name": NAME, "labels": {"repairbot.io/node": NODE}},
            "spec": {"nodeName": NODE, "source": "agent"}}  # fmt: skip
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    grow(custom, steps)


def grow(custom: client.CustomObjectsApi, steps: int) -> None:
    status = {"phase": "Draining", "history": [entry(n) for n in range(steps)]}
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, NAME, {"status": status})


def lane(kube_api: client.ApiClient, grafana: GrafanaSim, *, token: str | None = None, **options: Any) -> Any:
    custom = client.CustomObjectsApi(kube_api)
    assert grafana.url is not None
    poster = GrafanaAnnotations(grafana.url, token or grafana.token, wait=wait_none(), timeout=2)
    return AnnotationDispatcher(kube_api, lambda: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"],
                                poster, GrafanaPolicy(url=grafana.url, tags=("gpu",)), **options)  # fmt: skip


def cursor(custom: client.CustomObjectsApi) -> dict[str, Any]:
    found = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, NAME)
    return dict((found["status"].get("deliveries") or {}).get("grafana") or {})



def notification_errors(metrics: OperatorMetrics, target: str) -> float:
    """``repairbot_notification_errors_total`` of ``target``, summed over its error codes."""
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "repairbot_notification_errors_total" and sample.labels.get("target") == target
    )

def test_every_history_step_is_one_annotation_and_a_restart_posts_none_twice(
    kube_api: client.ApiClient, grafana: GrafanaSim
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    seed(custom, 3)
    assert lane(kube_api, grafana).deliver_due() == 3
    assert [a.text for a in grafana.annotations] == ["step 0 happened", "step 1 happened", "step 2 happened"]
    assert all({"repairbot", NODE, "gpu", f"repair:{NAME}"} <= set(a.tags) for a in grafana.annotations)
    assert cursor(custom)["sent"] == 3
    # The operator posted step 3 and died before moving its cursor: the next operator must not post it again.
    grow(custom, 4)
    history = [entry(n) for n in range(4)]
    assert grafana.url is not None
    before_crash = annotation_for(history, 3, node=NODE, repair=NAME, phase="Draining", extra_tags=("gpu",))
    GrafanaAnnotations(grafana.url, grafana.token).post(before_crash)
    grow(custom, 5)
    assert lane(kube_api, grafana).deliver_due() == 1
    assert [a.text for a in grafana.annotations].count("step 3 happened") == 1
    assert len(grafana.annotations) == 5 and cursor(custom)["sent"] == 5
    assert lane(kube_api, grafana).deliver_due() == 0


def test_a_grafana_outage_delays_annotations_says_so_on_the_repair_and_loses_none(
    kube_api: client.ApiClient, grafana: GrafanaSim
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    seed(custom, 2)
    now = [0.0]
    metrics = OperatorMetrics()
    running = lane(kube_api, grafana, metrics=metrics, clock=lambda: now[0])
    grafana.fail_next(3)  # the client's three tries of the first step
    assert running.deliver_due() == 0
    held = cursor(custom)
    assert held["sent"] == 0 and "503" in held["error"]
    assert notification_errors(metrics, "grafana") == 1
    assert running.deliver_due() == 0  # backing off: Grafana is not hammered
    now[0] += 120
    assert running.deliver_due() == 2
    assert cursor(custom) == {"sent": 2} and len(grafana.annotations) == 2


def test_a_token_grafana_refuses_stops_the_lane_on_the_repair_instead_of_skipping_steps(
    kube_api: client.ApiClient, grafana: GrafanaSim
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    seed(custom, 2)
    assert lane(kube_api, grafana, token="glsa_wrong").deliver_due() == 0
    assert cursor(custom)["sent"] == 0 and "401" in cursor(custom)["error"]
    assert grafana.annotations == []
    assert lane(kube_api, grafana).deliver_due() == 2  # the Secret fixed: every step arrives


def test_the_fake_grafana_refuses_what_grafana_refuses(grafana: GrafanaSim) -> None:
    assert grafana.url is not None
    poster = GrafanaAnnotations(grafana.url, grafana.token, wait=wait_none())
    with pytest.raises(NotifyError) as missing_text:
        poster.post(Annotation(1, ("repairbot",), ""))
    assert missing_text.value.code == "400" and not missing_text.value.retryable
    assert "Failed to save annotation" in missing_text.value.detail
    with pytest.raises(NotifyError) as bad_token:
        GrafanaAnnotations(grafana.url, "nope", wait=wait_none()).post(Annotation(1, ("repairbot",), "x"))
    assert bad_token.value.code == "401"
    read_only = GrafanaSim(read_only_token="viewer")
    assert read_only.read_only_token == "viewer"
    assert poster.post(Annotation(5, ("repairbot", "gpu-1"), "drained", time_end_ms=9)) >= 1
    assert poster.exists(Annotation(5, ("repairbot", "gpu-1"), "drained", time_end_ms=9))
    assert not poster.exists(Annotation(5, ("repairbot", "gpu-2"), "drained", time_end_ms=9))


def test_turning_grafana_on_does_not_backfill_repairs_that_ended_long_ago(
    kube_api: client.ApiClient, grafana: GrafanaSim
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    seed(custom, 3)
    ended = format_time(datetime.now(UTC) - timedelta(hours=3))
    over = {"status": {"phase": "Succeeded", "resolvedAt": ended}}
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, NAME, over)
    assert lane(kube_api, grafana).deliver_due() == 0
    assert grafana.annotations == [] and cursor(custom)["sent"] == 3
