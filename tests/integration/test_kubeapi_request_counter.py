"""The emulator counts what each client asks of it: how the benchmarks say what a repair costs the API server."""

from __future__ import annotations

from typing import Any

import httpx
from kubernetes import client

from repairbot.kube.client import api_client


def test_requests_are_counted_by_verb_resource_and_client(apiserver: Any, kube_objects: Any) -> None:
    apiserver.server.create_object(kube_objects.gpu_node("gpu-1"))
    core = client.CoreV1Api(api_client(str(apiserver.kubeconfig)))
    core.list_node()
    core.read_node("gpu-1")
    core.patch_node("gpu-1", {"metadata": {"labels": {"x": "y"}}})
    httpx.get(
        f"{apiserver.url}/api/v1/nodes",
        headers={"User-Agent": "repairbot-bench/1", **apiserver.admin_headers},
        timeout=5,
        verify=apiserver.ca_file,
    )

    counted = httpx.get(f"{apiserver.url}/_sim/requests", timeout=5, verify=apiserver.ca_file).json()
    # the client is the User-Agent's first word; its product part names the program
    rows = {(r["verb"], r["resource"], r["client"].split("/")[0]): r["count"] for r in counted["requests"]}
    assert rows[("list", "nodes", "OpenAPI-Generator")] == 1
    assert rows[("get", "nodes", "OpenAPI-Generator")] == 1
    assert rows[("patch", "nodes", "OpenAPI-Generator")] == 1
    assert rows[("list", "nodes", "repairbot-bench")] == 1
    assert counted["total"] == sum(rows.values())

    httpx.delete(f"{apiserver.url}/_sim/requests", timeout=5, verify=apiserver.ca_file)
    assert httpx.get(f"{apiserver.url}/_sim/requests", timeout=5, verify=apiserver.ca_file).json()["total"] == 0
