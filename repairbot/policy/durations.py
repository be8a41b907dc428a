"""Durations as policy files write them: one whole number and one unit (``30s``, ``5m``, ``2h``, ``7d``).

Its own module because both halves of the policy need it: :mod:`repairbot.policy.types`
writes durations back out (``Policy.to_dict``) and :mod:`repairbot.policy.parse` reads
them in; neither should import the other for it.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``7d`` → timedelta. One number, one unit: ``90`` or ``1.5h`` are refused,
    because a bare number in a policy file is always a question (seconds? minutes?)."""
    found = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ValueError("is not a duration (use a number and a unit: 30s, 5m, 2h, 7d)")
    return timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)])


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration`, in the largest unit that divides exactly."""
    seconds = int(delta.total_seconds())
    for unit, size in _UNIT_SECONDS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
