"""The policy's ``deferral.maintenanceWindows``: what a window covers, and errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest
import yaml

from repairbot.policy import DeferralPolicy, MaintenanceWindow, Policy, PolicyError, parse_policy


def windows(*raw: Any) -> dict[str, Any]:
    return {"deferral": {"maintenanceWindows": list(raw)}}


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)
    return list(caught.value.errors)


WEEKEND = {"days": ["Sat", "Sun"], "start": "02:00", "end": "06:00", "timezone": "UTC"}


def test_no_window_by_default() -> None:
    assert Policy().deferral == DeferralPolicy()
    assert Policy().deferral.in_window(datetime(2026, 12, 5, 3, tzinfo=UTC)) is None


def test_a_window_reads_as_written_and_round_trips() -> None:
    policy = parse_policy(windows(WEEKEND))
    (window,) = policy.deferral.maintenance_windows
    assert window == MaintenanceWindow(start=time(2), end=time(6), days=(5, 6), timezone="UTC")
    assert parse_policy(policy.to_dict()) == policy
    assert policy.to_dict()["deferral"]["maintenanceWindows"] == [WEEKEND]


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (datetime(2026, 12, 5, 2, 0, tzinfo=UTC), True),  # Saturday, the start itself
        (datetime(2026, 12, 6, 5, 59, tzinfo=UTC), True),  # Sunday
        (datetime(2026, 12, 5, 6, 0, tzinfo=UTC), False),  # the end is outside
        (datetime(2026, 12, 4, 3, 0, tzinfo=UTC), False),  # a Friday
    ],
)
def test_a_window_covers_its_days_between_start_and_end(moment: datetime, inside: bool) -> None:
    assert (parse_policy(windows(WEEKEND)).deferral.in_window(moment) is not None) is inside


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    late = parse_policy(windows({"days": ["saturday"], "start": "22:00", "end": "02:00"})).deferral
    assert late.in_window(datetime(2026, 12, 5, 23, 0, tzinfo=UTC))  # Saturday night
    assert late.in_window(datetime(2026, 12, 6, 1, 30, tzinfo=UTC))  # early Sunday
    assert not late.in_window(datetime(2026, 12, 5, 1, 30, tzinfo=UTC))  # early Saturday: Friday's night


def test_the_window_is_local_time_in_its_zone() -> None:
    berlin = parse_policy(windows({"start": "02:00", "end": "03:00", "timezone": "Europe/Berlin"})).deferral
    assert berlin.in_window(datetime(2026, 12, 2, 1, 30, tzinfo=UTC))  # 02:30 in Berlin (CET, UTC+1)
    assert not berlin.in_window(datetime(2026, 12, 2, 2, 30, tzinfo=UTC))  # 03:30 in Berlin


def test_days_default_to_every_day() -> None:
    (window,) = parse_policy(windows({"start": "01:00", "end": "02:00"})).deferral.maintenance_windows
    assert window.days == tuple(range(7)) and window.timezone == "UTC"


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({**WEEKEND, "days": ["Sat", "Funday"]}, 'maintenanceWindows[0].days: ["Sat", "Funday"] holds \'Funday\''),
        ({**WEEKEND, "days": []}, "maintenanceWindows[0].days: [] must be a non-empty list of weekdays"),
        ({**WEEKEND, "start": "2am"}, 'maintenanceWindows[0].start: "2am" must be a 24-hour time "HH:MM"'),
        ({**WEEKEND, "end": "24:00"}, 'maintenanceWindows[0].end: "24:00" must be a 24-hour time'),
        ({**WEEKEND, "end": "02:00"}, "maintenanceWindows[0].end: \"02:00\" is the window's start"),
        ({**WEEKEND, "timezone": "Mars/Olympus"}, 'maintenanceWindows[0].timezone: "Mars/Olympus" is not an IANA'),
        ({**WEEKEND, "timezone": "America"}, 'maintenanceWindows[0].timezone: "America" is not an IANA'),
        ({"days": ["Sat"], "end": "06:00"}, "maintenanceWindows[0].start: null is required"),
        ({**WEEKEND, "timzone": "UTC"}, 'maintenanceWindows[0].timzone: unknown key (did you mean "timezone"?)'),
    ],
)
def test_a_bad_window_is_refused_naming_its_field(window: dict[str, Any], expected: str) -> None:
    errors = errors_of(windows(window))
    assert any(error.startswith(f"policy.deferral.{expected}") for error in errors), errors


def test_an_unquoted_time_is_refused_with_the_reason() -> None:
    data = yaml.safe_load("deferral:\n  maintenanceWindows:\n    - {start: 22:00, end: '02:00'}\n")
    (error,) = errors_of(data)
    assert error.startswith("policy.deferral.maintenanceWindows[0].start: 1320 is a number") and "quotes" in error


def test_every_bad_window_is_reported_at_once() -> None:
    errors = errors_of(windows({**WEEKEND, "start": "x"}, {**WEEKEND, "timezone": "Nowhere"}))
    assert [e.split(":")[0] for e in errors] == [
        "policy.deferral.maintenanceWindows[0].start",
        "policy.deferral.maintenanceWindows[1].timezone",
    ]


def test_windows_must_be_a_list() -> None:
    (error,) = errors_of({"deferral": {"maintenanceWindows": WEEKEND}})
    assert error.startswith("policy.deferral.maintenanceWindows: ") and "must be a list of windows" in error
    (error,) = errors_of({"deferral": {"windows": []}})
    assert error.startswith("policy.deferral.windows: unknown key")
