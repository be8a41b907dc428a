"""Did every demo scenario end as it must? Pure checks over what the cluster looks like at the end.

The demo is also an end-to-end test (``make demo`` in CI): each scenario of
:mod:`repairbot_sim.demo_scenarios` has one check here that reads the
GPURepairs, the nodes, the simulated machines' boot ids and what the fake
Slack recorded, and answers ✓ or ✗ with what it saw. Any ✗ makes the demo exit 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from repairbot.model import LABEL_STATE, TAINT_UNHEALTHY, TERMINAL_PHASES
from repairbot_sim.demo_scenarios import Scenario

Obj = Mapping[str, Any]

DESTRUCTIVE_STEPS = frozenset({"start-drain", "request", "power-cycle"})
"""History steps that disturb a node's workloads or its power: a drain, an agent action, a BMC reset."""

TERMINAL = frozenset(p.value for p in TERMINAL_PHASES)


@dataclass(frozen=True, slots=True)
class Observation:
    """The cluster at the end of the show, as the checks see it."""

    repairs: tuple[Obj, ...]
    nodes: Mapping[str, Obj]
    boots_before: Mapping[str, str] = field(default_factory=dict)
    boots_after: Mapping[str, str] = field(default_factory=dict)
    slack: tuple[Obj, ...] = ()  # the fake Slack's /_recorded

    def repairs_of(self, node: str) -> list[Obj]:
        return repairs_of(self.repairs, node)

    def rebooted(self, node: str) -> bool:
        """The simulated machine came back with a new boot id (a reboot or a power cycle happened)."""
        before, after = self.boots_before.get(node), self.boots_after.get(node)
        return before is not None and after is not None and before != after

    def cordoned(self, node: str) -> bool:
        return bool((self.nodes.get(node, {}).get("spec") or {}).get("unschedulable"))

    def state_label(self, node: str) -> str:
        return str(((self.nodes.get(node, {}).get("metadata") or {}).get("labels") or {}).get(LABEL_STATE, ""))

    def tainted(self, node: str) -> bool:
        taints = (self.nodes.get(node, {}).get("spec") or {}).get("taints") or []
        return any(t.get("key") == TAINT_UNHEALTHY for t in taints)


@dataclass(frozen=True, slots=True)
class Verdict:
    scenario: Scenario
    ok: bool
    observed: str


# ----------------------------------------------------------------- reading a GPURepair


def repairs_of(repairs: Iterable[Obj], node: str) -> list[Obj]:
    """``node``'s GPURepairs, oldest first."""
    mine = [r for r in repairs if (r.get("spec") or {}).get("nodeName") == node]
    return sorted(mine, key=lambda r: (r["metadata"].get("creationTimestamp") or "", r["metadata"]["name"]))


def status_of(repair: Obj) -> Obj:
    return repair.get("status") or {}


def phase_of(repair: Obj) -> str:
    return str(status_of(repair).get("phase") or "Pending")


def history_of(repair: Obj) -> list[Obj]:
    return list(status_of(repair).get("history") or [])


def rungs_tried(repair: Obj) -> list[str]:
    """The actions a repair asked for, in order (agent requests and BMC power cycles), then a quarantine."""
    rungs = [
        str(e.get("action") or e["step"])
        for e in history_of(repair)
        if (e.get("step") == "request" or e.get("step") == "power-cycle") and e.get("outcome") == "started"
    ]
    if phase_of(repair) == "Quarantined":
        rungs.append("quarantine")
    return rungs


def destructive_steps(repair: Obj) -> int:
    return sum(1 for e in history_of(repair) if e.get("step") in DESTRUCTIVE_STEPS)


def failed_validations(repair: Obj) -> int:
    return sum(
        1 for e in history_of(repair) if e.get("outcome") == "failed" and "validation failed" in str(e.get("message"))
    )


def slack_top_level_posts(recorded: Iterable[Obj]) -> list[str]:
    """Texts of the channel messages (not thread replies) the fake Slack accepted."""
    return [
        str((r.get("body") or {}).get("text") or "")
        for r in recorded
        if str(r.get("path", "")).endswith("chat.postMessage")
        and r.get("status") == 200
        and not (r.get("body") or {}).get("thread_ts")
    ]


def on_call_paged(recorded: Iterable[Obj], thread_ts: str) -> bool:
    """Did a message of the thread ``thread_ts`` mention someone Slack notifies (as the fake Slack parsed it)?"""
    return bool(thread_ts) and any(
        r.get("mentions") and thread_ts in ((r.get("body") or {}).get("thread_ts"), (r.get("body") or {}).get("ts"))
        for r in recorded
    )


# ----------------------------------------------------------------- the checks


def _last(obs: Observation, node: str) -> Obj | None:
    found = obs.repairs_of(node)
    return found[-1] if found else None


def _repaired_with(rung: str, *, reboot: bool) -> Callable[[Scenario, Observation], Verdict]:
    def check(scenario: Scenario, obs: Observation) -> Verdict:
        repair = _last(obs, scenario.node)
        if repair is None:
            return Verdict(scenario, False, "no GPURepair")
        rungs, rebooted = rungs_tried(repair), obs.rebooted(scenario.node)
        ok = phase_of(repair) == "Succeeded" and rungs == [rung] and rebooted == reboot
        boot = "boot id changed" if rebooted else "boot id unchanged"
        return Verdict(scenario, ok, f"{phase_of(repair)} · {' → '.join(rungs) or 'no action'} · {boot}")

    return check


def _no_repair(scenario: Scenario, obs: Observation) -> Verdict:
    found = obs.repairs_of(scenario.node)
    cordoned = obs.cordoned(scenario.node)
    ok = not found and not cordoned
    what = "no GPURepair" if not found else f"{len(found)} GPURepair(s): {', '.join(phase_of(r) for r in found)}"
    return Verdict(scenario, ok, f"{what} · {'cordoned' if cordoned else 'schedulable'}")


def _quarantined(scenario: Scenario, obs: Observation) -> Verdict:
    repair = _last(obs, scenario.node)
    if repair is None:
        return Verdict(scenario, False, "no GPURepair")
    failed, node = failed_validations(repair), scenario.node
    paged = on_call_paged(obs.slack, str((status_of(repair).get("slack") or {}).get("ts") or ""))
    ok = (
        phase_of(repair) == "Quarantined" and failed == 2 and obs.cordoned(node)
        and obs.state_label(node) == "quarantined" and paged
    )  # fmt: skip
    marks = f"cordoned, state={obs.state_label(node) or '-'}" if obs.cordoned(node) else "schedulable"
    rungs = " → ".join(rungs_tried(repair)) or "no action"
    told = "on-call paged" if paged else "on-call NOT paged"
    return Verdict(scenario, ok, f"{phase_of(repair)} after {failed} failed validation(s) ({rungs}) · {marks} · {told}")


def _held(scenario: Scenario, obs: Observation) -> Verdict:
    repair = _last(obs, scenario.node)
    if repair is None:
        return Verdict(scenario, False, "no GPURepair")
    action = str(status_of(repair).get("action") or "-")
    destructive = destructive_steps(repair)
    rebooted = obs.rebooted(scenario.node)
    ok = (
        action == "notify" and destructive == 0 and not rebooted
        and phase_of(repair) not in ("Quarantined", "Failed", "Blocked")
    )  # fmt: skip
    return Verdict(
        scenario, ok,
        f"{phase_of(repair)} · action {action} · {destructive} destructive step(s) · "
        f"boot id {'changed' if rebooted else 'unchanged'}",
    )  # fmt: skip


def _from_grafana(scenario: Scenario, obs: Observation) -> Verdict:
    found = [r for r in obs.repairs_of(scenario.node) if (r.get("spec") or {}).get("source") == "grafana"]
    if not found:
        sources = {str((r.get("spec") or {}).get("source")) for r in obs.repairs_of(scenario.node)}
        return Verdict(scenario, False, f"no GPURepair from grafana (sources: {', '.join(sorted(sources)) or '-'})")
    repair = found[-1]
    ok = phase_of(repair) == "Succeeded"
    return Verdict(scenario, ok, f"source grafana · {phase_of(repair)} · {' → '.join(rungs_tried(repair)) or '-'}")


def _left_cordoned(scenario: Scenario, obs: Observation) -> Verdict:
    repair = _last(obs, scenario.node)
    if repair is None:
        return Verdict(scenario, False, "no GPURepair")
    node = scenario.node
    was = status_of(repair).get("nodeWasCordoned")
    deferred = any(entry.get("step") == "defer" for entry in history_of(repair))
    ok = phase_of(repair) == "Succeeded" and obs.cordoned(node) and not obs.tainted(node) and was is True and deferred
    return Verdict(
        scenario, ok,
        f"{phase_of(repair)} · {'deferred first' if deferred else 'never deferred'} · "
        f"node {'still cordoned' if obs.cordoned(node) else 'uncordoned'} · "
        f"nodeWasCordoned={str(was).lower()} · {'taint left' if obs.tainted(node) else 'taint removed'}",
    )  # fmt: skip


def _storm(scenario: Scenario, obs: Observation) -> Verdict:
    last = [_last(obs, node) for node in scenario.nodes]
    repairs = [r for r in last if r is not None]
    size = len(scenario.nodes)
    blocked = sum(1 for r in repairs if phase_of(r) == "Blocked")
    cordoned = sum(1 for node in scenario.nodes if obs.cordoned(node))
    reboots = sum(1 for node in scenario.nodes if obs.rebooted(node)) + sum(
        1 for r in repairs for e in history_of(r) if e.get("step") in ("request", "power-cycle")
    )
    incidents = {status_of(r).get("incident") for r in repairs}
    messages = [t for t in slack_top_level_posts(obs.slack) if "storm" in t.lower()]
    # The storm's ticket is the one marked with its incident: a member cordoned a moment before the trip keeps
    # its own ticket too (as it keeps its own Slack thread), and that is not a second storm ticket.
    tickets = {(status_of(r).get("jira") or {}).get("key") for r in repairs
               if (status_of(r).get("jira") or {}).get("incident") in incidents - {None}}  # fmt: skip
    ok = (
        len(repairs) == size and blocked == size and cordoned == size and reboots == 0
        and len(incidents) == 1 and None not in incidents and len(messages) == 1
        and len(tickets) == 1 and None not in tickets
    )  # fmt: skip
    named = ", ".join(sorted(str(i) for i in incidents if i)) or "none"
    return Verdict(
        scenario, ok,
        f"{blocked}/{size} Blocked · {cordoned}/{size} cordoned · {reboots} reboot(s) · "
        f"incident {named} · {len(messages)} Slack storm message(s) · {len(tickets - {None})} Jira ticket(s)",
    )  # fmt: skip


CHECKS: Mapping[str, Callable[[Scenario, Observation], Verdict]] = {
    "xid79": _repaired_with("reboot", reboot=True),
    "dbe": _repaired_with("gpu-reset", reboot=False),
    "xid13": _no_repair,
    "row-remap": _quarantined,
    "ib-flap": _held,
    "alert": _from_grafana,
    "human": _left_cordoned,
    "storm": _storm,
}


def check_all(
    scenarios: Sequence[Scenario], obs: Observation, *, before_resume: Observation | None = None
) -> list[Verdict]:
    """Each scenario's verdict; with ``before_resume`` (the cluster just before the storm was resumed from
    Slack) the storm is judged on that and on what the resume did after it."""
    verdicts = []
    for scenario in scenarios:
        if scenario.key == "storm" and before_resume is not None:
            verdicts.append(_storm_resumed(scenario, obs, before_resume))
        else:
            verdicts.append(CHECKS[scenario.key](scenario, obs))
    return verdicts


def _storm_resumed(scenario: Scenario, obs: Observation, before: Observation) -> Verdict:
    """Blocked as a storm must be until the click; then every member resumed from Slack, one canary first.

    "First" is about what can hurt: no other member drains or acts (a drain, an action request, a power
    cycle) before the canary is back in service. A member may be resumed into a hold for a human (a notify
    rung) meanwhile: that touches nothing, and it is blocked again if it escalates to a destructive rung.
    """
    held = _storm(scenario, before)
    members = [r for r in (_last(obs, node) for node in scenario.nodes) if r is not None]
    by_slack = sum(1 for r in members if any(e.get("step") == "resume" and "from Slack" in str(e.get("message"))
                                             for e in history_of(r)))  # fmt: skip
    went = sorted(
        min((str(e.get("at")), str((r.get("spec") or {}).get("nodeName"))) for e in acts)
        for r in members if (acts := [e for e in history_of(r) if e.get("step") in DESTRUCTIVE_STEPS])
    )
    canary = went[0][1] if went else None
    came_back = next((str(e.get("at")) for r in members if (r.get("spec") or {}).get("nodeName") == canary
                      for e in history_of(r) if e.get("step") == "return-to-service"), None)  # fmt: skip
    early = [(at, node) for at, node in went[1:] if came_back is None or at < came_back]
    first = canary is not None and came_back is not None and not early
    ok = held.ok and by_slack == len(scenario.nodes) and first
    if first:
        how = f"canary {canary} first"
    elif canary is None:
        how = "no member went"
    elif came_back is None:
        how = f"canary {canary} not back"  # slow, or failed: the breaker then keeps the rest out
    else:
        how = f"{early[0][1]} drained at {early[0][0]}, before canary {canary} came back at {came_back}"
    what = f"then resumed from Slack ({by_slack}/{len(scenario.nodes)}): {how}"
    return Verdict(scenario, ok, f"{held.observed} · {what}")


def exit_code(verdicts: Sequence[Verdict]) -> int:
    """0 only if every scenario ended as expected (and there was at least one)."""
    return 0 if verdicts and all(v.ok for v in verdicts) else 1


# ----------------------------------------------------------------- when to stop waiting


def settled(scenario: Scenario, repairs: Sequence[Obj]) -> bool:
    """Has ``scenario`` reached the state it is judged in (whatever that state is)?"""
    if scenario.key == "xid13":
        return True
    lasts = [repairs_of(repairs, node) for node in scenario.nodes]
    if not all(lasts):
        return False
    phases = [phase_of(found[-1]) for found in lasts]
    if scenario.key == "storm":
        return all(p == "Blocked" for p in phases)
    if scenario.key == "ib-flap":
        return all(p in TERMINAL or any(e.get("step") == "hold" for e in history_of(f[-1])) for p, f in
                   zip(phases, lasts, strict=True))  # fmt: skip
    return all(p in TERMINAL for p in phases)


def notifications_caught_up(repairs: Sequence[Obj]) -> bool:
    """Every repair has its Slack thread and Jira ticket, and both have told its current phase."""
    for repair in repairs:
        status = status_of(repair)
        deliveries = status.get("deliveries") or {}
        if not (status.get("slack") or {}).get("ts") or not (status.get("jira") or {}).get("key"):
            return False
        if any((deliveries.get(target) or {}).get("phase") != status.get("phase") for target in ("slack", "jira")):
            return False
    return True
