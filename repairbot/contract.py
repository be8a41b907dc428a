"""The operator↔agent contract on a GPURepair, read and written in one place.

The operator asks under ``status.request`` (an id, an action and what the agent
needs to perform it); the node agent answers under ``status.agent`` (the id it
answers, ``running`` → ``succeeded``/``failed``/``refused``, a message, its
boot id and when it started and finished). Both sides used to parse these
dicts on their own (the operator in ``machine/repair_view.py``, the agent in
``agent/executor.py``), so a field renamed on one side would have gone unseen
by the other. Here the shape is parsed once, into typed values both import.

The parse never raises on the request or the answer: a missing block is None,
a field that does not parse keeps its default and is named in ``malformed``,
so each side decides what a malformed value means (the operator refuses a
request with unreadable times, as it always did; the agent ignores them).
Like :mod:`repairbot.model`, this module does no I/O and imports nothing of
ours above the model.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from repairbot.model import TERMINAL_PHASES, Action, GpuRef, Phase, format_time, parse_time

__all__ = [
    "AGENT_REQUEST_ACTIONS",
    "TERMINAL_PHASES",
    "VALIDATE",
    "AgentAnswer",
    "AgentResult",
    "Exchange",
    "Request",
    "answer_status",
    "is_active",
    "is_terminal",
]

VALIDATE = "validate"
"""The request action that re-checks the node (not a rung, so not an :class:`Action`)."""
AGENT_REQUEST_ACTIONS: frozenset[str] = frozenset({Action.GPU_RESET, Action.DRIVER_RELOAD, Action.REBOOT, VALIDATE})
"""Request actions the node agent performs; any other (power-cycle goes through the BMC) it leaves alone."""


class AgentResult(enum.StrEnum):
    """``status.agent.result``, as the CRD's enum lists it."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"


_RESULTS = {member.value: member for member in AgentResult}


def is_terminal(phase: object) -> bool:
    """A terminal phase name (a repair that is history); an unknown or missing phase is not terminal."""
    return isinstance(phase, str) and phase in TERMINAL_PHASES


def is_active(repair: Mapping[str, Any]) -> bool:
    """The repair is still running: no phase yet, or a phase that is not terminal.

    Strict on purpose, as it always was: a phase the CRD does not list raises ``ValueError``.
    """
    phase = (repair.get("status") or {}).get("phase")
    return phase is None or not Phase(phase).is_terminal


@dataclass(frozen=True, slots=True)
class Request:
    """``status.request``: what the operator asked for.

    ``boot_id`` is the node's boot id when a power cycle was asked; ``gpu`` the GPU a reset is for;
    ``dcgm_diag_level`` and ``require_load_check`` what a validation must run. ``malformed`` names the
    fields present but unreadable (left at their defaults).
    """

    id: str
    action: str
    requested_at: datetime | None = None
    deadline: datetime | None = None
    boot_id: str = ""
    gpu: GpuRef = field(default_factory=GpuRef)
    dcgm_diag_level: int = 0
    require_load_check: bool = False
    malformed: tuple[str, ...] = ()

    @property
    def for_agent(self) -> bool:
        """The node agent performs this request (and answers it)."""
        return self.action in AGENT_REQUEST_ACTIONS

    def to_status(self) -> dict[str, Any]:
        """``status.request`` as the operator writes it; :meth:`from_status` reads it back unchanged.

        Only what the action uses is written: the GPU of a reset, the boot id a power cycle is judged
        against, and a validation's diagnostic level and load check.
        """
        status: dict[str, Any] = {"id": self.id, "action": self.action}
        if self.requested_at is not None:
            status["requestedAt"] = format_time(self.requested_at)
        if self.deadline is not None:
            status["deadline"] = format_time(self.deadline)
        if gpu := self.gpu.to_dict():
            status["gpu"] = gpu
        if self.boot_id:
            status["bootId"] = self.boot_id
        if self.action == VALIDATE:
            status |= {"dcgmDiagLevel": self.dcgm_diag_level, "requireLoadCheck": self.require_load_check}
        return status

    @classmethod
    def from_status(cls, raw: object) -> Request | None:
        """The request in ``status.request``; None when there is none (no block, or no id)."""
        if not isinstance(raw, Mapping) or not raw.get("id"):
            return None
        bad: list[str] = []
        gpu_raw = raw.get("gpu")
        if gpu_raw is not None and not isinstance(gpu_raw, Mapping):
            bad.append("gpu")
            gpu_raw = None
        level = 0
        try:
            level = int(raw.get("dcgmDiagLevel") or 0)
        except (TypeError, ValueError):
            bad.append("dcgmDiagLevel")
        return cls(
            id=str(raw["id"]),
            action=str(raw.get("action") or ""),
            requested_at=_time(raw, "requestedAt", bad),
            deadline=_time(raw, "deadline", bad),
            boot_id=str(raw.get("bootId") or ""),
            gpu=GpuRef.from_dict(dict(gpu_raw) if gpu_raw else None),
            dcgm_diag_level=level,
            require_load_check=bool(raw.get("requireLoadCheck")),
            malformed=tuple(bad),
        )


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    """``status.agent``: the node agent's answer to the request with ``request_id``.

    ``result`` is None when the answer carries none the contract knows. ``boot_id`` is the boot the agent
    started the action in (a reboot succeeded when it changed).
    """

    request_id: str
    result: AgentResult | None
    message: str = ""
    boot_id: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    malformed: tuple[str, ...] = ()

    def answers(self, request: Request | None) -> bool:
        """This answer is about ``request`` (not a stale one about an earlier request)."""
        return request is not None and self.request_id == request.id

    @classmethod
    def from_status(cls, raw: object) -> AgentAnswer | None:
        """The answer in ``status.agent``; None when there is none (no block, or no request id)."""
        if not isinstance(raw, Mapping) or not raw.get("requestId"):
            return None
        bad: list[str] = []
        result = raw.get("result")
        known = _RESULTS.get(result) if isinstance(result, str) else None
        if result and known is None:
            bad.append("result")
        return cls(
            request_id=str(raw["requestId"]),
            result=known,
            message=str(raw.get("message") or ""),
            boot_id=str(raw.get("bootId") or ""),
            started_at=_time(raw, "startedAt", bad),
            finished_at=_time(raw, "finishedAt", bad),
            malformed=tuple(bad),
        )


@dataclass(frozen=True, slots=True)
class Exchange:
    """One GPURepair's request and answer, as both sides read them."""

    request: Request | None = None
    answer: AgentAnswer | None = None

    @classmethod
    def from_repair(cls, repair: Mapping[str, Any]) -> Exchange:
        """Parse a GPURepair object; a missing or malformed ``status`` gives an empty exchange."""
        status = repair.get("status") if isinstance(repair, Mapping) else None
        if not isinstance(status, Mapping):
            return cls()
        return cls(Request.from_status(status.get("request")), AgentAnswer.from_status(status.get("agent")))

    @property
    def current_answer(self) -> AgentAnswer | None:
        """The answer when it is about the current request; None when absent or stale."""
        return self.answer if self.answer is not None and self.answer.answers(self.request) else None


def answer_status(
    request_id: str,
    result: AgentResult,
    message: str,
    now: datetime,
    *,
    finished: bool,
    boot_id: str | None = None,
    details: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``status.agent`` merge patch the agent writes: ``running`` (started now) or a finished result.

    A start clears the previous answer's ``finishedAt`` and ``details`` (nulls in a merge patch), so a
    reader never pairs a new start with an old ending. The message is bounded to 1,000 characters.
    """
    stamp = format_time(now)
    answer: dict[str, Any] = {"requestId": request_id, "result": result.value, "message": message[:1000]}
    if finished:
        answer["finishedAt"] = stamp
        if details:
            answer["details"] = dict(details)
    else:
        answer.update({"startedAt": stamp, "finishedAt": None, "details": None})
    if boot_id is not None:
        answer["bootId"] = boot_id
    return answer


def _time(raw: Mapping[str, Any], key: str, bad: list[str]) -> datetime | None:
    """A timestamp field; None when missing, empty or unreadable (then named in ``bad``)."""
    text = raw.get(key)
    if not text:
        return None
    try:
        return parse_time(str(text))
    except ValueError:
        bad.append(key)
        return None
