"""Validation the operator runs itself, beyond the agent's: a quiet period in Prometheus.

The agent's checks (NVML, GPU count, ``dcgmi diag``) look at the node for a
moment; a GPU that throws an Xid every few minutes passes them between two
errors. The quiet-period check asks Prometheus — which saw the node through
dcgm-exporter and the agent's own metrics the whole time — whether any new
error arrived during the policy's ``quietPeriod``.

Prometheus being down must not fail a repair nor pass it silently: the check
answers None ("could not tell") with the reason, and the operator records that
reason in the GPURepair history and decides by policy.
"""

from __future__ import annotations

import logging
import math
import string
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from requests.exceptions import RequestException
from urllib3.util.retry import Retry

from repairbot.remediations.prometheus_access import PrometheusAccess

log = logging.getLogger(__name__)


def prometheus_duration(window: timedelta) -> str:
    """A PromQL range: ``10m``, ``90s``, ``1d``, in the largest unit that divides exactly (at least 1s)."""
    seconds = max(1, int(window.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def render_query(template: str, *, node: str, window: timedelta) -> str:
    """The policy's PromQL with ``$node`` and ``$window`` filled in (``${node}`` works too)."""
    return string.Template(template).substitute(node=node, window=prometheus_duration(window))


def errors_in(result: Any) -> float | None:
    """How many errors a query result counts: the sum over an instant vector, a scalar's value,
    0 for an empty vector (no series: nothing happened). None when the result holds no number (NaN)."""
    samples: list[Any]
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        samples = [result]  # a scalar: [timestamp, "value"]
    elif isinstance(result, list):
        samples = [item.get("value") for item in result if isinstance(item, dict)]
    else:
        return None
    total = 0.0
    for sample in samples:
        try:
            value = float(sample[1])
        except (TypeError, ValueError, IndexError):
            return None
        if math.isnan(value):
            return None
        total += value
    return total


@dataclass(frozen=True, slots=True)
class QuietPeriodVerdict:
    """``quiet`` True (no new errors), False (some), None (Prometheus could not tell); ``reason`` says which."""

    quiet: bool | None
    reason: str
    query: str
    errors: float | None = None


class QuietPeriodCheck:
    """Did ``node`` stay free of new errors for ``window``? Asked of Prometheus with the policy's PromQL.

    ``promql_template`` is ``validation.promql`` from the policy, e.g.
    ``sum(increase(DCGM_FI_DEV_XID_ERRORS{Hostname="$node"}[$window])) or vector(0)``;
    any result above zero means the node is not quiet. ``access`` says whom to trust and what credentials
    to send: TLS is verified (no option turns that off), against ``access.ca_file`` when given.
    """

    def __init__(
        self,
        prometheus_url: str,
        promql_template: str,
        *,
        timeout: float = 10.0,
        access: PrometheusAccess | None = None,
    ) -> None:
        self.prometheus_url = prometheus_url.rstrip("/")
        self.promql_template = promql_template
        # Two quick tries, not the client's default of four with a 1 s backoff: the operator asks again
        # on its next reconcile anyway, and a handler must not sit for seconds on an unreachable Prometheus.
        retry = Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504))
        session = (access or PrometheusAccess()).session()
        self._prometheus = PrometheusConnect(url=self.prometheus_url, session=session, retry=retry, timeout=timeout)

    def evaluate(self, node: str, window: timedelta) -> QuietPeriodVerdict:
        """Run the query once; never raises (an unanswerable query is a verdict of None with the reason)."""
        try:
            query = render_query(self.promql_template, node=node, window=window)
        except (KeyError, ValueError) as error:
            return QuietPeriodVerdict(
                None, f"the quiet-period PromQL template is broken: {error!r}", self.promql_template
            )
        try:
            result = self._prometheus.custom_query(query)
        except (RequestException, PrometheusApiClientException, OSError, ValueError, KeyError) as error:
            # OSError: requests' own complaint about a CA bundle path it cannot open.
            reason = f"Prometheus at {self.prometheus_url} could not answer the quiet-period query: {_short(error)}"
            log.warning("quiet-period unknown node=%s reason=%s", node, reason)
            return QuietPeriodVerdict(None, reason, query)
        errors = errors_in(result)
        span = prometheus_duration(window)
        if errors is None:
            return QuietPeriodVerdict(None, f"Prometheus answered {query} with no number: {result!r}", query)
        if errors > 0:
            reason = f"node {node}: {errors:g} new error(s) in the last {span} ({query})"
            return QuietPeriodVerdict(False, reason, query, errors)
        return QuietPeriodVerdict(True, f"node {node}: no new errors in the last {span}", query, errors)

    def check(self, node: str, window: timedelta) -> bool | None:
        """True when quiet, False when errors arrived, None when Prometheus could not tell (see :meth:`evaluate`)."""
        return self.evaluate(node, window).quiet


def _short(error: BaseException) -> str:
    """The first line of an error, bounded: requests' connection errors nest three exceptions deep."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
