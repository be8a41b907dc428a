"""The policy file: defaults, strict validation that names every bad field, ladder matching."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from repairbot.model import Action
from repairbot.policy import (
    DEFAULT_POLICY_YAML,
    DrainMode,
    Policy,
    PolicyError,
    Rung,
    UnavailableLimit,
    format_duration,
    load_policy,
    parse_duration,
    parse_policy,
)
from repairbot_sim.operator import SANDBOX_POLICY

SANDBOX_POLICY_YAML = SANDBOX_POLICY.read_text(encoding="utf-8")
DATA = Path(__file__).resolve().parents[3] / "repairbot" / "data"


def errors_of(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)
    return caught.value.errors


def actions(rungs: tuple[Rung, ...]) -> list[str]:
    return [rung.action.value for rung in rungs]


def test_empty_policy_is_the_default_and_equals_the_shipped_file() -> None:
    assert parse_policy({}) == parse_policy(None) == Policy()
    assert parse_policy(yaml.safe_load(DEFAULT_POLICY_YAML)) == Policy()
    assert load_policy(DATA / "policy-default.yaml") == Policy()


def test_defaults_suit_a_large_fleet() -> None:
    policy = Policy()
    assert policy.budget.max_unavailable.cap(2000) == 100
    assert (policy.breaker.max_faults, policy.breaker.window) == (10, timedelta(minutes=10))
    assert (policy.breaker.max_per_domain, policy.breaker.domain_window) == (2, timedelta(minutes=5))
    assert policy.breaker.failure_domain_label == "repairbot.io/failure-domain"
    assert (policy.lemon.max_repairs, policy.lemon.window, policy.reboots_per_day) == (3, timedelta(days=7), 2)
    assert not policy.dry_run and not policy.drain.allow_force


def test_a_gpu_in_two_repairs_of_a_week_is_a_lemon_by_default_and_the_limit_round_trips() -> None:
    assert Policy().lemon.max_repairs_per_gpu == 2
    custom = parse_policy({"lemon": {"maxRepairsPerGpu": 4, "window": "14d"}})
    lemon = custom.lemon
    assert (lemon.max_repairs_per_gpu, lemon.max_repairs, lemon.window) == (4, 3, timedelta(days=14))
    assert parse_policy(custom.to_dict()) == custom


def test_sandbox_policy_parses_with_short_clocks() -> None:
    sandbox = parse_policy(yaml.safe_load(SANDBOX_POLICY_YAML))
    assert load_policy(SANDBOX_POLICY) == sandbox
    assert sandbox.drain.timeout <= timedelta(minutes=2)
    assert all(r.timeout is None or r.timeout <= timedelta(minutes=1) for r in sandbox.ladder_for("xid-79"))


def test_to_dict_round_trips() -> None:
    for policy in (Policy(), parse_policy(yaml.safe_load(SANDBOX_POLICY_YAML))):
        assert parse_policy(policy.to_dict()) == policy
    custom = parse_policy(
        {
            "budget": {"maxUnavailable": 7, "poolLabel": "pool"},
            "drain": {
                "rules": [
                    {"namespace": "batch-*", "labelSelector": {"tier": "x"}, "mode": "wait", "waitTimeout": "20m"}
                ]
            },
        }
    )
    assert parse_policy(custom.to_dict()) == custom
    assert custom.to_dict()["budget"]["maxUnavailable"] == 7


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"budget": {"maxUnavailable": "150%"}}, 'policy.budget.maxUnavailable: "150%" is over 100%'),
        ({"budget": {"maxUnavailable": "lots"}}, 'policy.budget.maxUnavailable: "lots" must be a node count'),
        ({"budget": {"maxUnavailable": -1}}, "policy.budget.maxUnavailable: -1 must be a node count"),
        ({"budget": {"poolLabel": "not a label"}}, 'policy.budget.poolLabel: "not a label" is not a valid label'),
        ({"breaker": {"maxFaults": 0}}, "policy.breaker.maxFaults: 0 is below the minimum of 1"),
        ({"breaker": {"window": "10"}}, 'policy.breaker.window: "10" is not a duration'),
        ({"breaker": {"domainWindow": "0s"}}, 'policy.breaker.domainWindow: "0s" must be longer than zero'),
        ({"breaker": {"halfOpenCanaries": "one"}}, 'policy.breaker.halfOpenCanaries: "one" must be a whole number'),
        ({"drain": {"timeout": "1.5h"}}, 'policy.drain.timeout: "1.5h" is not a duration'),
        ({"drain": {"rules": [{"mode": "yeet"}]}}, 'policy.drain.rules[0].mode: "yeet" is not one of evict'),
        (
            {"drain": {"rules": [{"mode": "force-after", "waitTimeout": "5m"}]}},
            'policy.drain.rules[0].mode: "force-after" deletes pods; opt in with policy.drain.allowForce: true',
        ),
        ({"drain": {"rules": [{"mode": "wait"}]}}, "policy.drain.rules[0].waitTimeout: null is required"),
        ({"drain": {"rules": "all"}}, 'policy.drain.rules: "all" must be a list'),
        ({"ladders": {"xid-79": []}}, "policy.ladders.xid-79: [] must be a non-empty list"),
        ({"ladders": {"xid-79": ["reboot", "explode"]}}, 'policy.ladders.xid-79[1].action: "explode" is not one'),
        ({"ladders": {"xid-79": ["quarantine", "reboot"]}}, 'policy.ladders.xid-79[0].action: "quarantine" is term'),
        ({"ladders": {"ib-port-down": ["notify", "reboot"]}}, 'policy.ladders.ib-port-down[0].action: "notify" with'),
        ({"ladders": {"xid-79": [{"action": "reboot", "timeout": "soon"}]}}, 'policy.ladders.xid-79[0].timeout: "s'),
        ({"ladders": {"Xid 79": ["reboot"]}}, 'policy.ladders.Xid 79: "Xid 79" is not a finding class'),
        ({"actionTimeouts": {"reboot": 20}}, "policy.actionTimeouts.reboot: 20 is not a duration"),
        ({"lemon": {"window": "7 days"}}, 'policy.lemon.window: "7 days" is not a duration'),
        ({"lemon": {"maxRepairsPerGpu": 0}}, "policy.lemon.maxRepairsPerGpu: 0 is below the minimum of 1"),
        ({"lemon": {"maxRepairsPerGPU": 2}}, 'policy.lemon.maxRepairsPerGPU: unknown key'),
        ({"rebootsPerDay": True}, "policy.rebootsPerDay: true must be a whole number"),
        ({"validation": {"dcgmDiagLevel": 5}}, "policy.validation.dcgmDiagLevel: 5 is over the maximum of 4"),
        ({"validation": {"prometheusUrl": "prom:9090"}}, 'policy.validation.prometheusUrl: "prom:9090" must be an'),
        ({"validation": {"promql": 'up{host="$host"}'}}, "policy.validation.promql:"),
        ({"validation": {"requireLoadCheck": "yes please"}}, 'policy.validation.requireLoadCheck: "yes please"'),
        ({"notifications": {"slack": {"channel": "gpu"}}}, 'policy.notifications.slack.channel: "gpu" must be'),
        ({"notifications": {"jira": {"project": "ops"}}}, 'policy.notifications.jira.project: "ops" is not a Jira'),
        ({"notifications": {"jira": {"labels": ["a b"]}}}, 'policy.notifications.jira.labels: ["a b"] must be'),
        ({"runbookBaseUrl": "runbooks/"}, 'policy.runbookBaseUrl: "runbooks/" must be an http(s) URL'),
        ({"dryRun": "false"}, 'policy.dryRun: "false" must be true or false'),
        ({"budget": [1, 2]}, "policy.budget: [1, 2] must be a mapping"),
    ],
)
def test_every_error_names_its_field_and_value(data: dict[str, Any], expected: str) -> None:
    errors = errors_of(data)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors[0]


def test_all_errors_are_reported_at_once() -> None:
    errors = errors_of({
        "budget": {"maxUnavailable": "150%"},
        "breaker": {"window": "ten minutes"},
        "drain": {"timeout": 30},
        "validation": {"dcgmDiagLevel": -1},
    })  # fmt: skip
    assert [e.split(":")[0] for e in errors] == [
        "policy.budget.maxUnavailable",
        "policy.breaker.window",
        "policy.drain.timeout",
        "policy.validation.dcgmDiagLevel",
    ]
    assert "4 errors" in str(PolicyError(errors))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"budjet": {}}, 'policy.budjet: unknown key (did you mean "budget"?)'),
        ({"budget": {"maxUnavailble": 3}}, 'policy.budget.maxUnavailble: unknown key (did you mean "maxUnavailable"?)'),
        ({"breaker": {"maxPerDomian": 3}}, 'policy.breaker.maxPerDomian: unknown key (did you mean "maxPerDomain"?)'),
        ({"drain": {"rules": [{"mode": "evict", "namespce": "x"}]}}, '(did you mean "namespace"?)'),
        ({"zzz": 1}, "policy.zzz: unknown key (known keys: dryRun, budget"),
    ],
)
def test_unknown_keys_are_errors_with_a_hint(data: dict[str, Any], expected: str) -> None:
    assert any(expected in error for error in errors_of(data))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)), ("2h", timedelta(hours=2)), ("7d", timedelta(7))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert format_duration(expected) == text


@pytest.mark.parametrize("text", ["30", "5 m", "1h30m", "1.5h", "-5m", "5M", "", "5w"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**7))
def test_duration_format_round_trips(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    ("raw", "pool", "cap"),
    [(20, 2000, 20), ("5%", 2000, 100), ("10%", 8, 1), ("0%", 100, 0), (0, 100, 0), ("100%", 7, 7), ("33%", 10, 3)],
)
def test_budget_absolute_and_percent(raw: int | str, pool: int, cap: int) -> None:
    assert parse_policy({"budget": {"maxUnavailable": raw}}).budget.max_unavailable.cap(pool) == cap


@given(st.integers(min_value=1, max_value=100), st.integers(min_value=0, max_value=5000))
def test_percent_cap_never_exceeds_the_share_except_the_one_node_floor(percent: int, size: int) -> None:
    cap = UnavailableLimit(percent=percent).cap(size)
    assert cap == 1 or cap <= size * percent / 100


def test_drain_rules_first_match_wins() -> None:
    policy = parse_policy({"drain": {"allowForce": True, "rules": [
        {"namespace": "batch-*", "mode": "wait", "waitTimeout": "20m"},
        {"labelSelector": {"tier": "scratch"}, "mode": "force-after", "waitTimeout": "5m"},
    ]}})  # fmt: skip
    assert policy.drain.rule_for("batch-a", {}).mode is DrainMode.WAIT
    assert policy.drain.rule_for("ml", {"tier": "scratch"}).mode is DrainMode.FORCE_AFTER
    assert policy.drain.rule_for("ml", {}).mode is DrainMode.EVICT


def test_default_ladders_follow_the_issue() -> None:
    policy = Policy()
    reboot_first = ["reboot", "power-cycle", "quarantine"]
    reset_first = ["gpu-reset", "reboot", "quarantine"]
    for code in ("xid-79", "gpu-lost", "gpu-missing"):
        assert actions(policy.ladder_for(code)) == reboot_first
    for code in ("xid-48", "ecc-dbe", "row-remap-failure"):
        assert actions(policy.ladder_for(code)) == reset_first
    assert actions(policy.ladder_for("row-remap-pending")) == ["gpu-reset"]
    assert actions(policy.ladder_for("ib-port-down")) == ["notify"]
    assert actions(policy.ladder_for("something-new")) == ["notify"]
    assert policy.ladder_for("xid-79")[0].timeout == timedelta(minutes=20)
    assert policy.ladder_for("ib-port-down")[0].timeout is None


def test_ladder_for_exact_beats_glob_longest_glob_wins_then_catalog_then_default() -> None:
    policy = parse_policy({"ladders": {
        "xid-*": ["notify"],
        "xid-1*": ["driver-reload", "quarantine"],
        "xid-13": ["gpu-reset"],
        "default": [{"action": "notify", "timeout": "1h"}, "reboot"],
    }})  # fmt: skip

    def catalog(code: str) -> tuple[Action, ...] | None:
        return (Action.GPU_RESET, Action.QUARANTINE) if code == "row-remap-odd" else None

    assert actions(policy.ladder_for("xid-13", fallback=catalog)) == ["gpu-reset"]
    assert actions(policy.ladder_for("xid-14", fallback=catalog)) == ["driver-reload", "quarantine"]
    assert actions(policy.ladder_for("xid-31", fallback=catalog)) == ["notify"]
    assert actions(policy.ladder_for("row-remap-odd", fallback=catalog)) == ["gpu-reset", "quarantine"]
    assert policy.ladder_for("row-remap-odd", fallback=catalog)[0].timeout == timedelta(minutes=5)
    assert actions(policy.ladder_for("weird", fallback=catalog)) == ["notify", "reboot"]
    assert actions(policy.ladder_for("xid-79")) == ["reboot", "power-cycle", "quarantine"]  # defaults kept


def test_catalog_fallback_applies_only_where_the_policy_is_silent() -> None:
    policy = Policy()
    assert actions(policy.ladder_for("xid-46", fallback=lambda _: (Action.GPU_RESET,))) == ["gpu-reset"]
    assert actions(policy.ladder_for("xid-79", fallback=lambda _: (Action.GPU_RESET,))) == actions(
        policy.ladder_for("xid-79")
    )
    assert actions(policy.ladder_for("xid-46", fallback=lambda _: None)) == ["notify"]


def test_action_timeouts_retime_default_ladders_and_rungs() -> None:
    policy = parse_policy({"actionTimeouts": {"reboot": "3m"}, "ladders": {"xid-94": [{"action": "gpu-reset"}]}})
    assert policy.ladder_for("xid-79")[0].timeout == timedelta(minutes=3)
    assert policy.ladder_for("xid-94")[0].timeout == timedelta(minutes=5)


def test_load_policy_reports_yaml_syntax(tmp_path: Path) -> None:
    broken = tmp_path / "p.yaml"
    broken.write_text("budget: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(broken)


def test_retention_defaults_keep_five_per_node_for_thirty_days() -> None:
    retention = parse_policy({}).retention
    assert (retention.keep_per_node, retention.ttl) == (5, timedelta(days=30))
    assert parse_policy({"retention": {"keepPerNode": 2, "ttl": "10d"}}).retention.ttl == timedelta(days=10)


@pytest.mark.parametrize(
    ("retention", "error"),
    [
        ({"keepPerNode": 0}, "policy.retention.keepPerNode: 0 is below the minimum of 1"),
        ({"keepPerNode": "5"}, 'policy.retention.keepPerNode: "5" must be a whole number'),
        ({"ttl": "30"}, 'policy.retention.ttl: "30"'),
        ({"ttl": "1h"}, 'policy.retention.ttl: "1h" is shorter than 7d (lemon.window'),
        ({"keepPernode": 5}, 'policy.retention.keepPernode: unknown key (did you mean "keepPerNode"?)'),
        ([5], "policy.retention: [5] must be a mapping"),
    ],
)
def test_bad_retention_fails_naming_the_field(retention: object, error: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy({"retention": retention})
    assert any(line.startswith(error) for line in raised.value.errors), raised.value.errors


def test_a_longer_lemon_window_stretches_the_default_retention() -> None:
    policy = parse_policy({"lemon": {"window": "60d"}})
    assert policy.retention.ttl == timedelta(days=60)
