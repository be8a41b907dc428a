"""The quiet-period check against the real Prometheus, and against odd answers no healthy one gives.

The real-Prometheus tests scrape a tiny exposition endpoint that plays
dcgm-exporter (``DCGM_FI_DEV_XID_ERRORS{Hostname=...}``) and skip where the
``prometheus`` binary is absent. The check itself is synchronous (requests),
as the operator calls it from a worker thread; here it runs in one so the
endpoint on the test's event loop keeps being scraped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiohttp import web

from repairbot.policy import ValidationPolicy
from repairbot.remediations.validation import (
    QuietPeriodCheck,
    errors_in,
    prometheus_duration,
    render_query,
)

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest
    from conftest import PrometheusFactory

XID_QUERY = 'sum(increase(DCGM_FI_DEV_XID_ERRORS{Hostname="$node"}[$window])) or vector(0)'
WINDOW = timedelta(minutes=1)


# --------------------------------------------------------------------------- pure pieces


@pytest.mark.parametrize(
    ("window", "text"),
    [
        (timedelta(minutes=10), "10m"),
        (timedelta(seconds=90), "90s"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=7), "7d"),
        (timedelta(0), "1s"),
    ],
)
def test_prometheus_duration(window: timedelta, text: str) -> None:
    assert prometheus_duration(window) == text


def test_render_query_fills_node_and_window() -> None:
    rendered = render_query(XID_QUERY, node="gpu-node-001", window=timedelta(minutes=10))
    assert rendered == 'sum(increase(DCGM_FI_DEV_XID_ERRORS{Hostname="gpu-node-001"}[10m])) or vector(0)'


@pytest.mark.parametrize(
    ("result", "errors"),
    [
        ([], 0.0),
        ([{"metric": {}, "value": [1700000000.0, "0"]}], 0.0),
        ([{"metric": {"gpu": "0"}, "value": [1, "1.5"]}, {"metric": {"gpu": "1"}, "value": [1, "2"]}], 3.5),
        ([1700000000.0, "4"], 4.0),  # a scalar
        ([{"metric": {}, "value": [1, "NaN"]}], None),
        ([{"metric": {}, "values": [[1, "0"]]}], None),  # a range vector: not what the check asks for
        ([1, "not a number"], None),
        ({"unexpected": "shape"}, None),
    ],
    ids=["empty", "zero", "vector-sum", "scalar", "nan", "matrix", "string", "garbage"],
)
def test_errors_in_query_results(result: Any, errors: float | None) -> None:
    assert errors_in(result) == errors


def test_a_broken_template_is_a_verdict_not_an_exception() -> None:
    verdict = QuietPeriodCheck("http://127.0.0.1:9", 'up{node="$host"}').evaluate("gpu-node-001", WINDOW)
    assert verdict.quiet is None and "template is broken" in verdict.reason


# --------------------------------------------------------------------------- the real Prometheus


class FakeDcgmExporter:
    """Serves ``DCGM_FI_DEV_XID_ERRORS`` per node, as dcgm-exporter does (a counter per GPU)."""

    def __init__(self) -> None:
        self.xid_errors: dict[str, float] = {}
        self.address = ""
        self._runner: web.AppRunner | None = None

    async def metrics(self, _: web.Request) -> web.Response:
        lines = ["# TYPE DCGM_FI_DEV_XID_ERRORS counter"]
        lines += [f'DCGM_FI_DEV_XID_ERRORS{{Hostname="{n}",gpu="0"}} {v}' for n, v in self.xid_errors.items()]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def start(self) -> str:
        app = web.Application()
        app.add_routes([web.get("/metrics", self.metrics)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        host, port = server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"
        return self.address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def dcgm_exporter() -> AsyncIterator[FakeDcgmExporter]:
    exporter = FakeDcgmExporter()
    await exporter.start()
    try:
        yield exporter
    finally:
        await exporter.stop()


async def wait_for(prometheus_url: str, query: str, ready: Callable[[float], bool], timeout: float = 30) -> None:
    """Poll Prometheus until ``query``'s first value satisfies ``ready``: scrapes land when they land."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as session:
        while True:
            answer = (await session.get(f"{prometheus_url}/api/v1/query", params={"query": query})).json()
            result = answer["data"]["result"]
            if result and ready(float(result[0]["value"][1])):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus never satisfied {query!r}; last answer {answer}")
            await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_quiet_until_a_new_xid_is_scraped(
    dcgm_exporter: FakeDcgmExporter, real_prometheus: PrometheusFactory
) -> None:
    dcgm_exporter.xid_errors = {"gpu-node-001": 0, "gpu-node-002": 7}
    prometheus = await asyncio.to_thread(real_prometheus, [dcgm_exporter.address])
    check = QuietPeriodCheck(prometheus, XID_QUERY)
    await wait_for(prometheus, 'count_over_time(DCGM_FI_DEV_XID_ERRORS{Hostname="gpu-node-001"}[1m])', lambda n: n >= 2)

    quiet = await asyncio.to_thread(check.evaluate, "gpu-node-001", WINDOW)
    never_scraped = await asyncio.to_thread(check.check, "gpu-node-999", WINDOW)

    assert quiet.quiet is True, quiet.reason
    assert quiet.reason == "node gpu-node-001: no new errors in the last 1m"
    assert never_scraped is True, "a node without series had no errors (or vector(0))"

    dcgm_exporter.xid_errors["gpu-node-001"] = 3
    await wait_for(prometheus, 'max_over_time(DCGM_FI_DEV_XID_ERRORS{Hostname="gpu-node-001"}[1m])', lambda v: v >= 3)

    noisy = await asyncio.to_thread(check.evaluate, "gpu-node-001", WINDOW)
    steady = await asyncio.to_thread(check.check, "gpu-node-002", WINDOW)

    assert noisy.quiet is False
    assert noisy.errors is not None and noisy.errors > 0
    assert noisy.reason.startswith("node gpu-node-001: ") and "new error(s) in the last 1m" in noisy.reason
    assert steady is True, "a high but constant counter is not a new error"


@pytest.mark.slow
async def test_policy_default_query_and_a_bad_query_against_real_prometheus(
    dcgm_exporter: FakeDcgmExporter, real_prometheus: PrometheusFactory
) -> None:
    prometheus = await asyncio.to_thread(real_prometheus, [dcgm_exporter.address])

    default = QuietPeriodCheck(prometheus, ValidationPolicy().promql)
    broken = QuietPeriodCheck(prometheus, "sum(increase(DCGM_FI_DEV_XID_ERRORS{Hostname=$node}[$window]")

    assert await asyncio.to_thread(default.check, "gpu-node-001", WINDOW) is True, "no series: empty vector"
    verdict = await asyncio.to_thread(broken.evaluate, "gpu-node-001", WINDOW)
    assert verdict.quiet is None
    assert verdict.reason.startswith(f"Prometheus at {prometheus} could not answer the quiet-period query: ")
    assert "400" in verdict.reason


# --------------------------------------------------------------------------- unreachable and odd answers


def test_unreachable_prometheus_is_unknown_not_an_exception(unused_local_url: str) -> None:
    started = time.monotonic()
    verdict = QuietPeriodCheck(unused_local_url, XID_QUERY).evaluate("gpu-node-001", WINDOW)
    assert verdict.quiet is None
    assert verdict.reason.startswith(f"Prometheus at {unused_local_url} could not answer the quiet-period query: ")
    assert time.monotonic() - started < 5, "a down Prometheus must not stall the operator"


@pytest.fixture
async def odd_prometheus() -> AsyncIterator[tuple[str, list[web.Response]]]:
    """An HTTP server that answers ``/api/v1/query`` with whatever the test queues."""
    answers: list[web.Response] = []

    async def query(_: web.Request) -> web.Response:
        return answers.pop(0)

    app = web.Application()
    app.add_routes([web.get("/api/v1/query", query)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}", answers
    finally:
        await runner.cleanup()


def _vector(value: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, value]}]}}


@pytest.mark.parametrize(
    ("answers", "quiet", "reason"),
    [
        ([web.json_response(_vector("2"))], False, "2 new error(s)"),
        ([web.json_response({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "0"]}})], True, ""),
        ([web.json_response(_vector("NaN"))], None, "with no number"),
        ([web.Response(status=503), web.Response(status=503)], None, "could not answer"),
        ([web.Response(text="<html>proxy login</html>")], None, "could not answer"),
        ([web.json_response({"status": "success"})], None, "could not answer"),
    ],
    ids=["errors", "scalar-zero", "nan", "unavailable", "not-json", "no-data"],
)
async def test_odd_answers(
    odd_prometheus: tuple[str, list[web.Response]], answers: list[web.Response], quiet: bool | None, reason: str
) -> None:
    url, queue = odd_prometheus
    queue.extend(answers)
    verdict = await asyncio.to_thread(QuietPeriodCheck(url, XID_QUERY).evaluate, "gpu-node-001", WINDOW)
    assert verdict.quiet is quiet
    assert reason in verdict.reason
