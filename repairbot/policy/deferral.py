"""The policy's ``deferral`` section: when a repair that may wait (a pending row remap) may stop waiting.

NVIDIA's guidance for some findings is "reset the GPU at the next convenient
time" (Xid 63 and 156, the NVML row-remap-pending flag): the running job is
unaffected and the fix only takes effect at the next reset. Such a repair
cordons its node and leaves the running GPU pods alone; it resets once the
node's GPUs are idle, or inside one of the maintenance windows named here,
when the cluster's owners accept that the drain evicts what still runs.

Apart from :mod:`repairbot.policy.types` and :mod:`repairbot.policy.parse` so
the section reads on one screen, its validation included. Like them it
imports nothing of ours but sibling policy modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from repairbot.policy.parse import _Section

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
"""Weekday names as the file writes them, in :meth:`datetime.weekday` order."""
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"(?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)")


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """From ``start`` to ``end`` (local time in ``timezone``) on each of ``days``.

    A window whose ``end`` is not after its ``start`` runs past midnight into
    the next day: ``{days: [Sat], start: "22:00", end: "02:00"}`` covers
    Saturday 22:00 to Sunday 02:00. ``days`` are weekday numbers, Monday 0.
    """

    start: time
    end: time
    days: tuple[int, ...] = tuple(range(7))
    timezone: str = "UTC"

    def contains(self, moment: datetime) -> bool:
        """Is ``moment`` (an aware time, the operator's clock) inside this window?"""
        local = moment.astimezone(ZoneInfo(self.timezone))
        now, day = local.time().replace(tzinfo=None), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        return (day in self.days and now >= self.start) or ((day - 1) % 7 in self.days and now < self.end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": [DAYS[day] for day in self.days],
            "start": f"{self.start:%H:%M}",
            "end": f"{self.end:%H:%M}",
            "timezone": self.timezone,
        }


@dataclass(frozen=True, slots=True)
class DeferralPolicy:
    """When a deferred repair may drain although GPU pods still run: inside a maintenance window.

    None by default: a deferred repair then waits until the node's GPU pods have
    finished, however long that takes, and the node stays cordoned meanwhile (it
    holds one slot of the budget). A fleet whose jobs run for weeks names a window.
    """

    maintenance_windows: tuple[MaintenanceWindow, ...] = field(default_factory=tuple)

    def in_window(self, moment: datetime) -> MaintenanceWindow | None:
        """The window ``moment`` falls in, or None."""
        return next((window for window in self.maintenance_windows if window.contains(moment)), None)

    def to_dict(self) -> dict[str, Any]:
        return {"maintenanceWindows": [window.to_dict() for window in self.maintenance_windows]}


DEFERRAL_KEYS = ("maintenanceWindows",)
_WINDOW_KEYS = ("days", "start", "end", "timezone")


def read_deferral(section: _Section) -> DeferralPolicy:
    """``policy.deferral``; every problem is reported with its field path, then the default is used."""
    raw = section.data.get("maintenanceWindows", [])
    if not isinstance(raw, list):
        section.fail("maintenanceWindows", raw, 'must be a list of windows, e.g. [{days: [Sat], start: "02:00", '
                     'end: "06:00", timezone: UTC}]')  # fmt: skip
        return DeferralPolicy()
    windows = []
    for index, item in enumerate(raw):
        # A list item is a section of its own (unknown keys, did-you-mean), as drain rules are.
        window = type(section)(item, f"{section.path}.maintenanceWindows[{index}]", _WINDOW_KEYS, section.errors)
        read = _read_window(window)
        if read is not None:
            windows.append(read)
    return DeferralPolicy(tuple(windows))


def _read_window(window: _Section) -> MaintenanceWindow | None:
    errors_before = len(window.errors)
    days = _read_days(window)
    start, end = _read_clock(window, "start"), _read_clock(window, "end")
    if start is not None and end is not None and start == end:
        window.fail("end", window.data["end"], "is the window's start: a window must last (end before start runs "
                    "past midnight)")  # fmt: skip
    zone = window.data.get("timezone", "UTC")
    if not isinstance(zone, str) or not _known_zone(zone):
        window.fail("timezone", zone, "is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)")
    if len(window.errors) > errors_before or start is None or end is None:
        return None
    return MaintenanceWindow(start=start, end=end, days=days, timezone=str(zone))


def _read_days(window: _Section) -> tuple[int, ...]:
    raw = window.data.get("days", list(DAYS))
    if not isinstance(raw, list) or not raw:
        window.fail("days", raw, f"must be a non-empty list of weekdays ({', '.join(DAYS)})")
        return tuple(range(7))
    days: set[int] = set()
    for value in raw:
        day = _weekday(value)
        if day is None:
            window.fail("days", raw, f"holds {value!r}, which is not a weekday ({', '.join(DAYS)})")
            return tuple(range(7))
        days.add(day)
    return tuple(sorted(days))


def _weekday(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    name = value.strip().lower()
    for index, (short, full) in enumerate(zip(DAYS, _FULL_DAYS, strict=True)):
        if name in (short.lower(), full):
            return index
    return None


def _read_clock(window: _Section, key: str) -> time | None:
    if key not in window.data:
        window.fail(key, None, 'is required: a 24-hour time in quotes, e.g. "02:00"')
        return None
    value = window.data[key]
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 22:00 as the base-60 number 1320: say so rather than guess.
        window.fail(key, value, 'is a number: write the time in quotes ("HH:MM"); YAML reads 22:00 unquoted as 1320')
        return None
    found = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if found is None:
        window.fail(key, value, 'must be a 24-hour time "HH:MM" (00:00 to 23:59)')
        return None
    return time(int(found.group("hour")), int(found.group("minute")))


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder of zones: IsADirectoryError
        return False
    return True
