"""A small Redfish BMC for the simulated fleet: one ComputerSystem per simulated node.

The operator's power-cycle rung talks to BMCs over Redfish; no BMC is
reachable where RepairBot is built, so the sandbox and the tests run this one
over real HTTP. It speaks only what a power cycle needs — service root,
Systems collection, ComputerSystem with ``PowerState`` and the
``#ComputerSystem.Reset`` action, task monitors — with HTTP basic auth, and it
can misbehave on demand (503 for the next N requests, 401 for everything) so
the retry and error paths run against a server, not a mock.

Real BMCs differ in the resets they accept, so each system carries its own
``ResetType@Redfish.AllowableValues``: :data:`POWER_CYCLE_CAPABLE` for a BMC
like most vendors', :data:`SUSHY_LIKE` for one like OpenStack's sushy-tools
(no PowerCycle), and ``advertise_allowable=False`` for one that does not say
and answers 400 to what it does not know.

``on_reset(system_id, reset_type)`` (plain or async) lets the sandbox reboot the
simulated node behind the system: PowerCycle, ForceRestart and GracefulRestart
reboot a running host; On after Off boots it.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import itertools
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from repairbot_sim.serving import Listening, authorization, gate

POWER_CYCLE_CAPABLE = ("On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PowerCycle", "Nmi")
SUSHY_LIKE = ("On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn")
RESTARTS = frozenset({"PowerCycle", "ForceRestart", "GracefulRestart"})
POWER_OFFS = frozenset({"ForceOff", "GracefulShutdown"})
POWER_ONS = frozenset({"On", "ForceOn"})

ResetCallback = Callable[[str, str], Awaitable[None] | None]


@dataclass
class SimulatedSystem:
    """One host behind the BMC. ``power_off_delay`` keeps PowerState On for a while after ForceOff, as real hosts do."""

    system_id: str
    allowable_values: tuple[str, ...] = POWER_CYCLE_CAPABLE
    advertise_allowable: bool = True
    power_state: str = "On"
    power_off_delay: float = 0.0
    off_at: float | None = None

    def current_power_state(self) -> str:
        if self.off_at is not None and time.monotonic() >= self.off_at:
            self.power_state, self.off_at = "Off", None
        return self.power_state

    def document(self) -> dict[str, Any]:
        path = f"/redfish/v1/Systems/{self.system_id}"
        reset: dict[str, Any] = {"target": f"{path}/Actions/ComputerSystem.Reset"}
        if self.advertise_allowable:
            reset["ResetType@Redfish.AllowableValues"] = list(self.allowable_values)
        return {
            "@odata.id": path,
            "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
            "Id": self.system_id,
            "Name": self.system_id,
            "PowerState": self.current_power_state(),
            "Actions": {"#ComputerSystem.Reset": reset},
        }


@dataclass(frozen=True, slots=True)
class ReceivedReset:
    """A reset the BMC accepted, in arrival order (``at`` is wall-clock seconds)."""

    system_id: str
    reset_type: str
    at: float


@dataclass
class _FailureSwitches:
    fail_next: int = 0
    fail_status: int = 503
    always_unauthorized: bool = False


class RedfishSim(Listening):
    """The emulated BMC. Add systems, ``await start()``, point node annotations at the URL it returns."""

    def __init__(
        self,
        systems: Iterable[str] = (),
        *,
        username: str = "admin",
        password: str = "redfish",
        allowable_values: tuple[str, ...] = POWER_CYCLE_CAPABLE,
        on_reset: ResetCallback | None = None,
        answer_with_task: bool = False,
    ) -> None:
        self.username = username
        self.password = password
        self.allowable_values = allowable_values
        self.on_reset = on_reset
        self.answer_with_task = answer_with_task
        self.systems: dict[str, SimulatedSystem] = {}
        self.resets: list[ReceivedReset] = []
        self.requests: list[str] = []
        """Every request received, as ``"METHOD /path"``: tests count retries with it."""
        self.url = ""
        self._switches = _FailureSwitches()
        self._task_ids = itertools.count(1)
        for system_id in systems:
            self.add_system(system_id)

    # ---------------------------------------------------------- set-up and switches

    def add_system(
        self,
        system_id: str,
        *,
        allowable_values: tuple[str, ...] | None = None,
        advertise_allowable: bool = True,
        power_state: str = "On",
        power_off_delay: float = 0.0,
    ) -> SimulatedSystem:
        system = SimulatedSystem(
            system_id,
            allowable_values=allowable_values or self.allowable_values,
            advertise_allowable=advertise_allowable,
            power_state=power_state,
            power_off_delay=power_off_delay,
        )
        self.systems[system_id] = system
        return system

    def fail_next(self, count: int, *, status: int = 503) -> None:
        """Answer ``status`` to the next ``count`` requests, whatever they are (a BMC web server restarting)."""
        self._switches.fail_next, self._switches.fail_status = count, status

    def reject_credentials(self, reject: bool = True) -> None:
        """Answer 401 to every authenticated request (a rotated BMC password nobody put in the Secret)."""
        self._switches.always_unauthorized = reject

    def resets_for(self, system_id: str) -> list[str]:
        return [r.reset_type for r in self.resets if r.system_id == system_id]

    # ---------------------------------------------------------- server

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None) -> str:
        """Listen on ``host:port`` (0 = a free port); returns the base URL (``http://127.0.0.1:PORT``, or https)."""
        app = web.Application(middlewares=[gate(self._refusal)])
        app.add_routes(
            [
                web.get("/redfish", self._versions),
                web.get("/redfish/v1", self._service_root),
                web.get("/redfish/v1/", self._service_root),
                web.get("/redfish/v1/Systems", self._systems),
                web.get("/redfish/v1/Systems/{system}", self._system),
                web.post("/redfish/v1/Systems/{system}/Actions/ComputerSystem.Reset", self._reset),
                web.get("/redfish/v1/TaskService/Tasks/{task}", self._task),
            ]
        )
        self.url = await self._listen(app, host, port, ssl_context=ssl_context)
        return self.url

    def _refusal(self, request: web.Request) -> web.Response | None:
        """Failure switches first, then basic auth; the service root is public, as the Redfish spec has it."""
        self.requests.append(f"{request.method} {request.path}")
        if self._switches.fail_next > 0:
            self._switches.fail_next -= 1
            status = self._switches.fail_status
            return _redfish_error(status, "Base.1.0.ServiceTemporarilyUnavailable", "the BMC is busy; retry later")
        if request.path.rstrip("/") not in ("/redfish", "/redfish/v1") and not self._authorized(request):
            response = _redfish_error(401, "Base.1.0.InsufficientPrivilege", "invalid username or password")
            response.headers["WWW-Authenticate"] = 'Basic realm="RedfishSim"'
            return response
        return None

    def _authorized(self, request: web.Request) -> bool:
        if self._switches.always_unauthorized:
            return False
        scheme, encoded = authorization(request)
        if scheme != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (username, password) == (self.username, self.password)

    # ---------------------------------------------------------- resources

    async def _versions(self, _: web.Request) -> web.Response:
        return web.json_response({"v1": "/redfish/v1/"})

    async def _service_root(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "@odata.id": "/redfish/v1/",
                "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
                "Id": "RootService",
                "Name": "RepairBot simulated BMC",
                "RedfishVersion": "1.15.0",
                "Systems": {"@odata.id": "/redfish/v1/Systems"},
                "TaskService": {"@odata.id": "/redfish/v1/TaskService"},
            }
        )

    async def _systems(self, _: web.Request) -> web.Response:
        members = [{"@odata.id": f"/redfish/v1/Systems/{system_id}"} for system_id in self.systems]
        return web.json_response(
            {
                "@odata.id": "/redfish/v1/Systems",
                "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
                "Name": "Computer System Collection",
                "Members@odata.count": len(members),
                "Members": members,
            }
        )

    async def _system(self, request: web.Request) -> web.Response:
        system = self.systems.get(request.match_info["system"])
        if system is None:
            return _redfish_error(404, "Base.1.0.ResourceMissingAtURI", f"no system at {request.path}")
        return web.json_response(system.document())

    async def _reset(self, request: web.Request) -> web.Response:
        system = self.systems.get(request.match_info["system"])
        if system is None:
            return _redfish_error(404, "Base.1.0.ResourceMissingAtURI", f"no system at {request.path}")
        try:
            body = await request.json()
        except ValueError:
            return _redfish_error(400, "Base.1.0.MalformedJSON", "the request body is not JSON")
        reset_type = body.get("ResetType") if isinstance(body, dict) else None
        if reset_type not in system.allowable_values:
            message = f"ResetType {reset_type!r} is not supported by this system"
            return _redfish_error(400, "Base.1.0.ActionParameterNotSupported", message)
        self._apply(system, reset_type)
        self.resets.append(ReceivedReset(system.system_id, reset_type, time.time()))
        if self.on_reset is not None:
            result = self.on_reset(system.system_id, reset_type)
            if inspect.isawaitable(result):
                await result
        if not self.answer_with_task:
            return web.Response(status=204)
        task = f"/redfish/v1/TaskService/Tasks/{next(self._task_ids)}"
        return web.json_response({"@odata.id": task, "TaskState": "Running"}, status=202, headers={"Location": task})

    @staticmethod
    def _apply(system: SimulatedSystem, reset_type: str) -> None:
        if reset_type in POWER_OFFS:
            if system.power_off_delay > 0:
                system.off_at = time.monotonic() + system.power_off_delay
            else:
                system.power_state, system.off_at = "Off", None
        elif reset_type in POWER_ONS or reset_type in RESTARTS:
            system.power_state, system.off_at = "On", None

    async def _task(self, request: web.Request) -> web.Response:
        task = request.match_info["task"]
        return web.json_response(
            {"@odata.id": request.path, "Id": task, "TaskState": "Completed", "TaskStatus": "OK"},
        )


def _redfish_error(status: int, message_id: str, message: str) -> web.Response:
    """An error body in Redfish's own shape, so clients read it the way they read a real BMC's."""
    body = {
        "error": {
            "code": message_id,
            "message": message,
            "@Message.ExtendedInfo": [{"MessageId": message_id, "Message": message, "Severity": "Warning"}],
        }
    }
    return web.json_response(body, status=status)
