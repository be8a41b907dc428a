"""Talk Redfish to a node's BMC: find its ComputerSystem, read its power state, POST a reset.

The power-cycle remediation (:mod:`repairbot.remediations.power_cycle`) is
built on this; it decides *which* reset power-cycles a hung host, this module
only speaks the protocol.

Where the BMC is comes from the Node (annotations, so an SRE can fix one node
with ``kubectl annotate``); how to log in comes from the one Secret the node
names. Both are read by the operator through an injected
:class:`~repairbot.remediations.bmc_access.BmcCredentialsReader`, so nothing
here imports the Kubernetes layer.

The protocol decisions (:func:`choose_system`, :func:`reset_capability`,
:func:`redfish_message`) are pure functions over plain data; :class:`BmcSession`
is the thin HTTP edge. It is synchronous (``httpx.Client``): the operator runs
it in a worker thread, and a power cycle is a handful of requests. Its retries
are tenacity's, bounded by :class:`RedfishTiming`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

# Where the BMC is and how to log in live in bmc_access; its names stay importable from here.
from repairbot.remediations.bmc_access import ANNOTATION_BMC_ADDRESS as ANNOTATION_BMC_ADDRESS
from repairbot.remediations.bmc_access import ANNOTATION_BMC_INSECURE as ANNOTATION_BMC_INSECURE
from repairbot.remediations.bmc_access import ANNOTATION_BMC_SECRET as ANNOTATION_BMC_SECRET
from repairbot.remediations.bmc_access import ANNOTATION_BMC_SYSTEM as ANNOTATION_BMC_SYSTEM
from repairbot.remediations.bmc_access import BmcCredentials as BmcCredentials
from repairbot.remediations.bmc_access import BmcCredentialsReader
from repairbot.remediations.bmc_access import BmcTarget as BmcTarget
from repairbot.remediations.bmc_access import RedfishError as RedfishError
from repairbot.remediations.bmc_access import bmc_target as bmc_target

log = logging.getLogger(__name__)

SERVICE_ROOT = "/redfish/v1/"
RESET_ACTION = "#ComputerSystem.Reset"
ACCEPTED_RESET_STATUS = frozenset({200, 202, 204})
# Throttling and a BMC web server that restarts (they do, often) pass with time.
# 501 is absent on purpose: it means "not implemented", and asking again will not implement it.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


# --------------------------------------------------------------------------- pure protocol


def member_paths(collection: Mapping[str, Any]) -> list[str]:
    """The ``@odata.id`` of every member of a Redfish collection."""
    return [
        str(m["@odata.id"]) for m in collection.get("Members") or [] if isinstance(m, Mapping) and m.get("@odata.id")
    ]


def choose_system(members: Sequence[str], wanted_id: str | None) -> str:
    """The ComputerSystem to reset: the one named, else the only one. Raises ValueError otherwise.

    Guessing among several would power-cycle the wrong host of a multi-node chassis.
    """
    ids = [path.rstrip("/").rsplit("/", 1)[-1] for path in members]
    if wanted_id is not None:
        if wanted_id in ids:
            return members[ids.index(wanted_id)]
        raise ValueError(
            f"has no system {wanted_id!r} (it has: {', '.join(ids) or 'none'}); fix {ANNOTATION_BMC_SYSTEM}"
        )
    if len(members) == 1:
        return members[0]
    if not members:
        raise ValueError("lists no systems under /redfish/v1/Systems")
    raise ValueError(
        f"serves {len(members)} systems ({', '.join(ids)}) and the node names none; "
        f"set annotation {ANNOTATION_BMC_SYSTEM} to the right one"
    )


@dataclass(frozen=True, slots=True)
class ResetCapability:
    """Where to POST a reset, and the reset types the system advertises (None: it does not say)."""

    target: str
    allowable: tuple[str, ...] | None


def reset_capability(system: Mapping[str, Any]) -> ResetCapability:
    """Read ``Actions["#ComputerSystem.Reset"]`` of a ComputerSystem. Raises ValueError when it has none."""
    action = (system.get("Actions") or {}).get(RESET_ACTION)
    if not isinstance(action, Mapping) or not action.get("target"):
        raise ValueError(f"offers no {RESET_ACTION} action on system {system.get('Id', '?')!r}")
    allowable = action.get("ResetType@Redfish.AllowableValues")
    values = tuple(str(v) for v in allowable) if isinstance(allowable, list) else None
    return ResetCapability(str(action["target"]), values)


def redfish_message(body: Any) -> str:
    """The human part of a Redfish error body (``error.message`` or the first extended message)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return ""
    extended = error.get("@Message.ExtendedInfo") or []
    first = extended[0] if extended and isinstance(extended[0], Mapping) else {}
    return str(first.get("Message") or error.get("message") or "")


# --------------------------------------------------------------------------- HTTP edge


@dataclass(frozen=True, slots=True)
class RedfishTiming:
    """Bounds on every wait: a BMC that does not answer must fail the rung, not hang the operator."""

    attempts: int = 5
    first_backoff: float = 0.5
    max_backoff: float = 8.0
    request_timeout: float = 20.0
    power_off_timeout: float = 120.0
    poll_interval: float = 2.0


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _worth_retrying(error: BaseException, *, idempotent: bool) -> bool:
    """Connection failures and 5xx/429 are retried; 4xx never is.

    A reset POST is retried only when the request surely never reached the BMC
    (no connection): after a read timeout the BMC may already have acted, and
    a second hard reset would hit the host mid-boot.
    """
    if isinstance(error, _RetryableStatus):
        return True
    if "CERTIFICATE_VERIFY_FAILED" in str(error):
        return False
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return True
    return idempotent and isinstance(error, httpx.TransportError)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class BmcSession:
    """One conversation with one node's BMC over HTTP basic auth; :meth:`close` it when done."""

    def __init__(
        self,
        target: BmcTarget,
        credentials: BmcCredentials,
        *,
        timing: RedfishTiming | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.target = target
        self.timing = timing or RedfishTiming()
        self._client = httpx.Client(
            base_url=target.address,
            auth=(credentials.username, credentials.password),
            verify=not target.insecure,
            timeout=self.timing.request_timeout,
            headers={"Accept": "application/json", "OData-Version": "4.0"},
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def _where(self) -> str:
        return f"node {self.target.node}: BMC {self.target.address}"

    def _request(self, method: str, path: str, *, body: dict[str, Any] | None = None) -> httpx.Response:
        """One request with bounded, jittered retries; the last 5xx/429 answer is returned, not raised."""
        retrying = Retrying(
            retry=retry_if_exception(lambda error: _worth_retrying(error, idempotent=method == "GET")),
            stop=stop_after_attempt(self.timing.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.timing.first_backoff, max=self.timing.max_backoff, jitter=self.timing.first_backoff
            ),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._client.request(method, path, json=body)
                    if response.status_code in RETRYABLE_STATUS:
                        raise _RetryableStatus(response)
                    return response
        except _RetryableStatus as exhausted:
            return exhausted.response
        except httpx.TransportError as error:
            hint = ""
            if "CERTIFICATE_VERIFY_FAILED" in str(error):
                hint = f'; its TLS certificate is not trusted (annotate {ANNOTATION_BMC_INSECURE}="true" to skip)'
            raise RedfishError(f"{self._where()} did not answer {method} {path}: {error!r}{hint}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _checked(self, response: httpx.Response, method: str, path: str, accepted: frozenset[int]) -> httpx.Response:
        status = response.status_code
        if status in accepted:
            return response
        detail = (
            f"check the Secret {self.target.secret_ref}" if status in (401, 403) else redfish_message(_json(response))
        )
        message = f"{self._where()} answered {status} to {method} {path}" + (f": {detail}" if detail else "")
        raise RedfishError(message, status=status)

    def get(self, path: str) -> dict[str, Any]:
        """GET a Redfish resource as JSON; raises :class:`RedfishError` unless 200."""
        document = _json(self._checked(self._request("GET", path), "GET", path, frozenset({200})))
        if not isinstance(document, dict):
            raise RedfishError(f"{self._where()} answered GET {path} with something other than a JSON object")
        return document

    def find_system(self) -> tuple[str, dict[str, Any]]:
        """Walk service root → Systems → the node's ComputerSystem; returns its path and document."""
        root = self.get(SERVICE_ROOT)
        systems_path = str((root.get("Systems") or {}).get("@odata.id") or "")
        if not systems_path:
            raise RedfishError(f"{self._where()} has no Systems collection in its service root")
        try:
            path = choose_system(member_paths(self.get(systems_path)), self.target.system_id)
        except ValueError as error:
            raise RedfishError(f"{self._where()} {error}") from None
        return path, self.get(path)

    def power_state(self) -> str:
        """The system's ``PowerState`` (On, Off, PoweringOn, PoweringOff), or "Unknown"."""
        _, system = self.find_system()
        return str(system.get("PowerState") or "Unknown")

    def reset(self, target: str, reset_type: str) -> httpx.Response:
        """POST one ``ComputerSystem.Reset``; raises :class:`RedfishError` unless 200/202/204."""
        response = self._request("POST", target, body={"ResetType": reset_type})
        log.info(
            "bmc reset node=%s bmc=%s reset=%s status=%s",
            self.target.node, self.target.address, reset_type, response.status_code,
        )  # fmt: skip
        return self._checked(response, "POST", target, ACCEPTED_RESET_STATUS)

    def wait_for_power_state(self, system_path: str, wanted: str) -> None:
        """Poll ``system_path`` until its PowerState is ``wanted``; raises after ``power_off_timeout``."""
        deadline = time.monotonic() + self.timing.power_off_timeout
        while True:
            state = str(self.get(system_path).get("PowerState") or "Unknown")
            if state == wanted:
                return
            if time.monotonic() >= deadline:
                raise RedfishError(
                    f"{self._where()}: {system_path} still reports PowerState {state} "
                    f"{self.timing.power_off_timeout:g}s after ForceOff; the host may be off or on, check the BMC"
                )
            time.sleep(self.timing.poll_interval)


# --------------------------------------------------------------------------- the operator's way in


class BmcConnector:
    """Opens a :class:`BmcSession` to a node's BMC, by node name: what the operator hands a BMC remediation.

    ``transport`` exists for tests that want to stand between httpx and the
    network; the simulated BMC is reached over real HTTP instead.
    """

    def __init__(
        self,
        credentials: BmcCredentialsReader,
        *,
        timing: RedfishTiming | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.credentials = credentials
        self.timing = timing or RedfishTiming()
        self.transport = transport

    def open_session(self, node: str) -> BmcSession:
        """Read the Node's annotations and its BMC Secret; raises :class:`RedfishError`."""
        target = self.credentials.target(node)
        login = self.credentials.credentials(target)
        return BmcSession(target, login, timing=self.timing, transport=self.transport)

    def power_state(self, node: str) -> str:
        """The node's PowerState as its BMC reports it; raises :class:`RedfishError`."""
        with closing(self.open_session(node)) as session:
            return session.power_state()
