"""The policy's ``alertmanager`` and ``grafana`` sections: keeping on-call quiet while RepairBot works.

A reboot RepairBot starts makes the node's own alerts fire (the kubelet's
NotReady, the exporters' targets down) and pages a human for work nobody needs
to do. With ``alertmanager.url`` set, RepairBot holds one Alertmanager silence
per node from its first disruptive step (the drain) until the node is back or
quarantined: the node's label matchers plus a regex over the alert names it
should cover, each silence ``duration`` long and renewed while the repair
runs, so a crashed operator's silence lapses by itself instead of muting a
node forever. With ``grafana.url`` set, every step of a repair becomes a
Grafana annotation, so the fleet dashboard shows when and why a node went out.
Both are off by default.

Apart from :mod:`repairbot.policy.types` and :mod:`repairbot.policy.parse` so
the two sections read on one screen, their validation included. Like them it
imports nothing of ours but sibling policy modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from repairbot.policy.durations import format_duration

if TYPE_CHECKING:
    from repairbot.policy.parse import _Section

NODE_PLACEHOLDER = "$node"
"""Written in a matcher's value, replaced by the node's name: ``{node: "$node"}``."""

DEFAULT_ALERTNAMES = (
    "KubeNodeNotReady",
    "KubeNodeUnreachable",
    "KubeletDown",
    "TargetDown",
    "NodeExporterDown",
    "DCGMExporterDown",
    "RepairBotAgentDown",
)
"""What a drain and a reboot make fire on their own: kube-prometheus' node and target alerts, the exporters."""

_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_ALERTNAME = r"[^\s]+"
_URL = r"https?://[^\s]+"


@dataclass(frozen=True, slots=True)
class AlertmanagerPolicy:
    """Where RepairBot's silences go and what they cover; ``url`` None disables them.

    ``matchers`` are exact label matches, ``$node`` standing for the node's name
    (the default ``node="$node"`` fits kube-prometheus' node alerts; a fleet
    whose alerts say ``instance`` names that label). ``alertnames`` narrows the
    silence to the alerts a repair itself causes, matched as one regex
    (``alertname=~"A|B"``); empty means every alert of the node — rarely wise,
    since a real second fault should still page. ``duration`` is one silence's
    length: renewed when half of it is left, so a silence outlives a stopped
    operator by at most that long.
    """

    url: str | None = None
    matchers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({"node": NODE_PLACEHOLDER}))
    alertnames: tuple[str, ...] = DEFAULT_ALERTNAMES
    duration: timedelta = timedelta(minutes=30)

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "matchers": dict(self.matchers),
            "alertnames": list(self.alertnames),
            "duration": format_duration(self.duration),
        }


@dataclass(frozen=True, slots=True)
class GrafanaPolicy:
    """Where repair steps are annotated; ``url`` None disables annotations.

    The API token is a secret and never in the policy: the operator reads it
    from ``REPAIRBOT_GRAFANA_TOKEN`` (the chart's Secret). ``dashboard_uid``
    pins the annotations to one dashboard; unset, they are organisation-wide
    and every dashboard with an annotation query on the ``repairbot`` tag shows
    them. ``tags`` are added to every annotation's own (``repairbot``, the
    node, the phase).
    """

    url: str | None = None
    dashboard_uid: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "dashboardUid": self.dashboard_uid, "tags": list(self.tags)}


ALERTMANAGER_KEYS = ("url", "matchers", "alertnames", "duration")
GRAFANA_KEYS = ("url", "dashboardUid", "tags")
MIN_SILENCE = timedelta(minutes=2)
"""Shorter silences would lapse between two renewals of a busy operator."""


def read_alertmanager(section: _Section) -> AlertmanagerPolicy:
    """``policy.alertmanager``; every problem is reported with its field path, then the default is used."""
    d = AlertmanagerPolicy()
    duration = section.duration("duration", d.duration)
    if duration < MIN_SILENCE:
        section.fail("duration", section.data.get("duration"), f"is shorter than {format_duration(MIN_SILENCE)}: "
                     "the silence would lapse between renewals")  # fmt: skip
        duration = d.duration
    return AlertmanagerPolicy(
        url=section.text("url", None, pattern=_URL, hint="must be an http(s) URL"),
        matchers=_read_matchers(section, d.matchers),
        alertnames=section.texts(
            "alertnames",
            d.alertnames,
            pattern=_ALERTNAME,
            hint="must be a list of alert names, e.g. [KubeNodeNotReady, TargetDown]",
        ),
        duration=duration,
    )


def _read_matchers(section: _Section, default: Mapping[str, str]) -> Mapping[str, str]:
    raw = section.data.get("matchers", dict(default))
    hint = 'must map label names to values with $node for the node, e.g. {node: "$node"}'
    if not isinstance(raw, Mapping) or not raw:
        section.fail("matchers", raw, hint)
        return default
    bad = [k for k, v in raw.items() if not (isinstance(k, str) and re.fullmatch(_LABEL_NAME, k))
           or not isinstance(v, str) or not v]  # fmt: skip
    if bad:
        section.fail("matchers", raw, f"{hint} (bad: {', '.join(map(str, bad))})")
        return default
    if not any(NODE_PLACEHOLDER in v for v in raw.values()):
        section.fail("matchers", raw, "must name the node ($node) in one value, or one silence would mute every node")
        return default
    return MappingProxyType(dict(raw))


def read_grafana(section: _Section) -> GrafanaPolicy:
    """``policy.grafana``; every problem is reported with its field path, then the default is used."""
    return GrafanaPolicy(
        url=section.text("url", None, pattern=_URL, hint="must be an http(s) URL"),
        dashboard_uid=section.text(
            "dashboardUid",
            None,
            pattern=r"[A-Za-z0-9_-]{1,40}",
            hint="is not a dashboard UID (letters, digits, - and _, at most 40)",
        ),
        tags=section.texts("tags", (), pattern=r"\S+", hint="must be a list of tags without spaces"),
    )
