"""The policy's escalation rules and Xid catalog overrides: parsing, field-named errors, round trip, counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from repairbot.cli import main
from repairbot.model import Action, Finding, GpuRef, Occurrence, Severity
from repairbot.policy import (
    EscalationRule,
    EscalationScope,
    PolicyError,
    first_escalation,
    parse_policy,
    sightings,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RULES = [
    {"match": "xid-13", "scope": "gpu", "distinctJobs": True, "count": 3, "window": "1h", "action": "gpu-reset"},
    {"match": "xid-31", "count": 5, "window": "10m", "action": "notify"},
    {"match": "ib-flap", "scope": "node", "count": 3, "window": "5m", "action": "reboot"},
]


def errors_of(data: dict[str, object]) -> tuple[str, ...]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)
    return caught.value.errors


def test_the_three_rules_an_sre_asks_for_parse_and_round_trip() -> None:
    policy = parse_policy({"escalations": RULES})
    assert policy.escalations[0] == EscalationRule("xid-13", 3, timedelta(hours=1), Action.GPU_RESET,
                                                   EscalationScope.GPU, True)  # fmt: skip
    assert policy.escalations[2].scope is EscalationScope.NODE
    assert policy.to_dict()["escalations"][1] == {**RULES[1], "scope": "gpu", "distinctJobs": False}
    assert parse_policy(policy.to_dict()) == policy


def test_a_bad_rule_names_every_wrong_field() -> None:
    bad = {"match": "Xid 13", "scope": "rack", "count": 0, "window": "60", "action": "explode", "jobs": True}
    assert errors_of({"escalations": [bad]}) == (
        "policy.escalations[0].jobs: unknown key (known keys: match, scope, distinctJobs, count, window, action)",
        "policy.escalations[0].match: 'Xid 13' is not a finding class or glob (e.g. xid-13, ib-flap, xid-*)",
        "policy.escalations[0].scope: 'rack' is not one of gpu, node",
        "policy.escalations[0].count: 0 must be a whole number of at least 1",
        "policy.escalations[0].window: '60' is not a duration (use a number and a unit: 30s, 5m, 2h, 7d)",
        "policy.escalations[0].action: 'explode' is not one of notify, gpu-reset, driver-reload, reboot, "
        "power-cycle, quarantine",
    )


def test_a_zero_window_and_a_non_list_are_refused() -> None:
    assert errors_of({"escalations": [{**RULES[0], "window": "0s"}]}) == (
        "policy.escalations[0].window: '0s' must be longer than zero",
    )
    assert errors_of({"escalations": {"xid-13": 3}})[0].startswith("policy.escalations: must be a list")


def test_xid_overrides_change_the_catalog_the_operator_uses() -> None:
    policy = parse_policy({"xid": {"overrides": {"13": {"action": "notify", "applicationClass": False},
                                                 "119": {"action": "reboot", "severity": "fatal"}}}})  # fmt: skip
    catalog = policy.xid.catalog()
    assert catalog.lookup(13).action is Action.NOTIFY and not catalog.lookup(13).application_class
    assert catalog.lookup(119).default_ladder == (Action.REBOOT, Action.POWER_CYCLE, Action.QUARANTINE)
    assert catalog.lookup(119).severity is Severity.FATAL
    assert parse_policy(policy.to_dict()) == policy


def test_a_bad_xid_override_names_its_field_path() -> None:
    assert errors_of({"xid": {"overrides": {
        "13": {"ladder": ["gpu-reset"]},
        "79": {"action": "reboot", "ladder": ["reboot", "quarantine"], "severity": "bad"},
        "x": {"action": "notify"},
        "94": {"aplicationClass": True},
    }}}) == (
        "policy.xid.overrides.13.ladder: a ladder with destructive rungs must end in quarantine",
        "policy.xid.overrides.79.severity: 'bad' is not one of info, warning, critical, fatal",
        "policy.xid.overrides.x: 'x' is not an Xid code (a positive whole number)",
        "policy.xid.overrides.94.aplicationClass: unknown key (known keys: action, ladder, severity, "
        "applicationClass, deferUntilDrain)",
    )  # fmt: skip


def test_policy_check_prints_the_bad_override_and_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"xid": {"overrides": {"13": {"ladder": ["reboot"]}}},
                                    "escalations": [{**RULES[0], "count": -1}]}))  # fmt: skip
    assert main(["policy", "check", str(path)]) != 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "policy.xid.overrides.13.ladder: a ladder with destructive rungs must end in quarantine" in text
    assert "policy.escalations[0].count: -1 must be a whole number of at least 1" in text


def _xid13(minute: int, pid: int, seq: int) -> Finding:
    evidence = {"pid": str(pid), "process": "python", "kmsgSeq": str(seq), "kmsgBoot": "b1"}
    return Finding("xid-13", "Xid 13", Action.NONE, gpu=GpuRef(index=3), first_seen=T0 + timedelta(minutes=minute),
                   evidence=evidence)  # fmt: skip


def test_a_report_sent_again_after_a_lost_reply_is_counted_once() -> None:
    """The agent re-sends a batch when intake's reply was lost; the merged finding must not count it twice."""
    merged = _xid13(0, pid=101, seq=7)
    merged.merge(_xid13(20, pid=202, seq=9))
    merged.merge(_xid13(20, pid=202, seq=9))  # the same kernel-log record again
    assert merged.count == 2
    assert [o.job for o in merged.occurrences] == ["python[101]", "python[202]"]
    rule = parse_policy({"escalations": [{**RULES[0], "count": 2}]}).escalations
    rule3 = parse_policy({"escalations": [RULES[0]]}).escalations
    assert first_escalation(rule, sightings([merged]), T0 + timedelta(minutes=21)) is not None
    assert first_escalation(rule3, sightings([merged]), T0 + timedelta(minutes=21)) is None


def test_the_window_ends_now_and_counts_only_occurrences_inside_it() -> None:
    rule = parse_policy({"escalations": [{**RULES[1], "count": 2}]}).escalations
    finding = Finding("xid-31", "Xid 31", Action.NONE, gpu=GpuRef(index=1), first_seen=T0,
                      occurrences=(Occurrence(T0), Occurrence(T0 + timedelta(minutes=9))))  # fmt: skip
    assert first_escalation(rule, sightings([finding]), T0 + timedelta(minutes=10)) is not None
    assert first_escalation(rule, sightings([finding]), T0 + timedelta(minutes=10, seconds=1)) is None


def test_occurrences_survive_the_crd_round_trip() -> None:
    merged = _xid13(0, pid=101, seq=7)
    merged.merge(_xid13(5, pid=202, seq=8))
    again = Finding.from_dict(merged.to_dict())
    assert again.occurrences == merged.occurrences and again.count == 2
