"""Alertmanager's v2 silence API: create, renew, find again and expire the silences RepairBot holds.

Only HTTP and Alertmanager's own rules live here; *when* a silence should
exist is :mod:`repairbot.operator.silence_plan`'s, and recording it on the
GPURepair is :mod:`repairbot.operator.silences`'.

Alertmanager's rules, as its API implements them (``api/v2/openapi.yaml``,
``silence/silence.go``):

- ``POST /api/v2/silences`` creates a silence and answers ``{"silenceID": ...}``.
  Posted *with* an ``id``, it updates that silence in place only when the
  matchers and ``startsAt`` are unchanged and the silence is still active;
  otherwise it expires the old one and creates a new one under a **new id**
  (an unknown id is a 404). So a renewal always records the id it gets back.
- ``GET /api/v2/silence/{id}`` reads one (404 when unknown); expired silences
  stay readable for the retention period, with ``status.state: expired``.
- ``DELETE /api/v2/silence/{id}`` expires one; expiring one already expired is
  an error (500), so :meth:`AlertmanagerSilences.expire` reads it first.
- a matcher is ``{name, value, isRegex, isEqual}``; ``isEqual`` false negates.

Every silence RepairBot makes says ``createdBy: repairbot``; a silence whose
``createdBy`` is anything else is a human's and is never renewed or expired,
whatever id a status holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tenacity.wait import wait_base

from repairbot.model import format_time, parse_time
from repairbot.notify.errors import NotifyError
from repairbot.notify.http_access import HttpAccess
from repairbot.notify.http_api import JsonApi

CREATED_BY = "repairbot"
"""``createdBy`` of every silence RepairBot makes: with the id on a GPURepair, what marks a silence as ours."""

TARGET = "alertmanager"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One of a silence's label matchers, as Alertmanager's v2 API writes it."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def to_api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Matcher:
        return cls(str(raw.get("name", "")), str(raw.get("value", "")), bool(raw.get("isRegex")),
                   bool(raw.get("isEqual", True)))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Silence:
    """A silence as Alertmanager holds it (``GettableSilence``)."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    state: str
    """``active``, ``pending`` or ``expired``."""

    @property
    def ours(self) -> bool:
        return self.created_by == CREATED_BY

    @property
    def expired(self) -> bool:
        return self.state == "expired"

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Silence:
        return cls(
            id=str(raw.get("id", "")),
            matchers=tuple(Matcher.from_api(m) for m in raw.get("matchers") or ()),
            starts_at=parse_time(str(raw["startsAt"])),
            ends_at=parse_time(str(raw["endsAt"])),
            created_by=str(raw.get("createdBy", "")),
            comment=str(raw.get("comment", "")),
            state=str((raw.get("status") or {}).get("state", "")),
        )


class AlertmanagerSilences:
    """RepairBot's side of Alertmanager's silences; every failure is a :class:`~repairbot.notify.NotifyError`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        wait: wait_base | None = None,
        access: HttpAccess | None = None,
    ) -> None:
        """``access``: the CA bundle and credentials files (:mod:`repairbot.notify.http_access`); TLS is verified."""
        access = access or HttpAccess()
        self._api = JsonApi(TARGET, base_url, timeout=timeout, attempts=attempts, wait=wait,
                            verify=access.verify(), auth=access.auth(TARGET))  # fmt: skip

    @property
    def base_url(self) -> str:
        return self._api.base_url

    def close(self) -> None:
        self._api.close()

    def create(self, matchers: Sequence[Matcher], starts_at: datetime, ends_at: datetime, comment: str) -> str:
        """A new silence; its id."""
        return self._post(None, matchers, starts_at, ends_at, comment, "create-silence")

    def renew(self, silence: Silence, ends_at: datetime) -> str | None:
        """Push ``silence``'s end to ``ends_at``; the id it now has (often a new one), None when it is gone.

        Matchers, ``startsAt`` and comment are sent as Alertmanager holds them,
        so it updates in place when it can; when it cannot it swaps the silence
        for a new id, which the caller records.
        """
        body = self._body(silence.id, silence.matchers, silence.starts_at, ends_at, silence.comment)
        answer = self._api.request("POST", "/api/v2/silences", "renew-silence", body=body, missing_ok=True)
        return None if answer is None else _silence_id(answer)

    def get(self, silence_id: str) -> Silence | None:
        """One silence, expired ones included; None when Alertmanager does not know the id."""
        answer = self._api.request("GET", f"/api/v2/silence/{quote(silence_id, safe='')}", "get-silence",
                                   missing_ok=True)  # fmt: skip
        return None if answer is None else Silence.from_api(answer)

    def find(self, matchers: Sequence[Matcher]) -> list[Silence]:
        """Every silence (any author, any state) with at least these matchers' labels named."""
        params = "&".join(f"filter={quote(_filter(m), safe='')}" for m in matchers if not m.is_regex)
        answer = self._api.request("GET", f"/api/v2/silences?{params}" if params else "/api/v2/silences",
                                   "list-silences")  # fmt: skip
        return [Silence.from_api(item) for item in answer or ()]

    def expire(self, silence_id: str) -> None:
        """Expire a silence; one already expired or unknown is left as it is (Alertmanager would answer 500)."""
        silence = self.get(silence_id)
        if silence is None or silence.expired:
            return
        self._api.request("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}", "expire-silence",
                          missing_ok=True)  # fmt: skip

    def _post(
        self,
        silence_id: str | None,
        matchers: Sequence[Matcher],
        starts_at: datetime,
        ends_at: datetime,
        comment: str,
        operation: str,
    ) -> str:
        body = self._body(silence_id, matchers, starts_at, ends_at, comment)
        return _silence_id(self._api.request("POST", "/api/v2/silences", operation, body=body))

    @staticmethod
    def _body(
        silence_id: str | None, matchers: Sequence[Matcher], starts_at: datetime, ends_at: datetime, comment: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "matchers": [m.to_api() for m in matchers],
            "startsAt": format_time(starts_at),
            "endsAt": format_time(ends_at),
            "createdBy": CREATED_BY,
            "comment": comment,
        }
        if silence_id:
            body["id"] = silence_id
        return body


def _silence_id(answer: Any) -> str:
    if not isinstance(answer, Mapping) or not answer.get("silenceID"):
        raise NotifyError(TARGET, "post-silence", "bad-answer", f"no silenceID in {str(answer)[:200]}")
    return str(answer["silenceID"])


def _filter(matcher: Matcher) -> str:
    value = matcher.value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{matcher.name}{"=" if matcher.is_equal else "!="}"{value}"'
