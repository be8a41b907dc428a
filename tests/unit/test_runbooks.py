"""The runbooks an SRE is sent to: every finding class has one, and what they say matches the code.

A "Runbook" link in Slack, Jira or an alert that 404s, a runbook naming a
``repairbot`` command that does not exist, or a ladder in a runbook that the
operator does not climb are all things an on-call engineer notices at 3 a.m.;
these tests keep ``runbooks/`` and ``repairbot/runbooks.py`` honest against the
catalogs, the detectors, the policy and the CLI.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from pathlib import Path

import pytest

from repairbot import runbooks
from repairbot.catalog.sxid import default_sxid_catalog
from repairbot.catalog.xid import default_catalog
from repairbot.cli import build_parser
from repairbot.machine import catalog_fallback
from repairbot.model import Phase
from repairbot.notify.view import RepairView
from repairbot.operator.handlers import manual_finding
from repairbot.policy import parse_policy
from repairbot.webhook.mapping import UNMAPPED_PREFIX, AlertRules
from repairbot.webhook.payloads import Alert, AlertStatus, SenderKind

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
DETECTORS = ROOT / "repairbot" / "detectors"
SECTIONS = ("## What it means", "## What RepairBot does", "## Check by hand", "## When a human must act",
            "## Resume or override")  # fmt: skip
SITUATIONS = (
    runbooks.STORM_RUNBOOK, runbooks.DRAIN_BLOCKED_RUNBOOK, runbooks.QUARANTINE_RUNBOOK, runbooks.HEALTH_RUNBOOK,
    runbooks.SLURM_RUNBOOK,
)
DEFAULT_POLICY = parse_policy({})
FALLBACK = catalog_fallback(default_catalog())


def runbook_files() -> list[Path]:
    return sorted(path for path in RUNBOOKS.glob("*.md") if path.name != runbooks.RUNBOOK_INDEX)


def all_markdown() -> list[Path]:
    return sorted(RUNBOOKS.glob("*.md"))


# --------------------------------------------------------------------------- finding classes


def detector_codes() -> set[str]:
    """Every finding class a detector module writes as a literal: ``gpu_finding("x", …)``,
    ``Finding(code="x")``, ``self._finding("x" if … else "y", …)``, the response tables' keys."""
    calls = {"gpu_finding", "_finding", "Finding"}
    codes: set[str] = set()

    def literals(node: ast.AST | None) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return literals(node.body) + literals(node.orelse)
        return []

    for source in DETECTORS.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in calls:
                    first = node.args[0] if node.args else None
                    keyword = next((k.value for k in node.keywords if k.arg == "code"), None)
                    codes.update(literals(keyword if keyword is not None else first))
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                if any(n.endswith(("_RESPONSES", "_FINDING_TEXT")) for n in names) and isinstance(node.value, ast.Dict):
                    codes.update(code for key in node.value.keys for code in literals(key))
                if any(n.endswith("_CODE") for n in names):
                    codes.update(literals(node.value))
    return {code for code in codes if re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", code)}


def test_the_detector_scan_finds_what_the_detectors_raise() -> None:
    """The scan below must not pass by finding nothing: these classes are known to exist."""
    known = {"gpu-lost", "gpu-missing", "ecc-dbe", "row-remap-pending", "row-remap-failure", "nvlink-down",
             "pcie-degraded", "pcie-replay", "thermal", "recovery-action", "reset-required", "ib-port-down",
             "ib-flap", "ib-errors", "ib-rate-degraded", "dcgm-health-warn", "dcgm-health-fail"}  # fmt: skip
    assert known <= detector_codes()


def every_finding_class() -> list[str]:
    xids = {f"xid-{code}" for code in range(1, 173)} | {e.finding_code for e in default_catalog()}
    sxids = {e.finding_code for e in default_sxid_catalog()}
    ladders = {code for code in DEFAULT_POLICY.ladders if not re.search(r"[*?\[]", code) and code != "default"}
    manual = {manual_finding("gpu-1", {}).code}
    alert = AlertRules.default().finding(_firing("NodeGpuFanFailure"), kind=SenderKind.ALERTMANAGER)
    return sorted(xids | sxids | ladders | detector_codes() | manual | {alert.code})


def _firing(alertname: str) -> Alert:
    return Alert(AlertStatus.FIRING, {"alertname": alertname, "node": "gpu-1"}, {}, fingerprint="f1")


@pytest.mark.parametrize("code", every_finding_class())
def test_every_finding_class_has_a_runbook_that_exists(code: str) -> None:
    runbook = runbooks.runbook_for(code)
    assert (RUNBOOKS / runbook).is_file(), f"{code} → {runbook}, which is not in runbooks/"
    assert runbook != runbooks.RUNBOOK_INDEX, f"{code} lands on the index instead of a runbook explaining it"


def test_an_unmapped_alert_becomes_an_alert_class_with_the_alert_runbook() -> None:
    finding = AlertRules.default().finding(_firing("GPU Fan: Failure!"), kind=SenderKind.ALERTMANAGER)
    assert finding.code.startswith(UNMAPPED_PREFIX)
    assert runbooks.runbook_for(finding.code) == "alert.md"


@pytest.mark.parametrize(
    ("code", "runbook"),
    [
        ("xid-79", "xid-79.md"),
        ("gpu-lost", "xid-79.md"),
        ("xid-48", "ecc-dbe.md"),
        ("ecc-dbe", "ecc-dbe.md"),
        ("xid-95", "ecc-dbe.md"),
        ("row-remap-pending", "row-remap.md"),
        ("row-remap-failure", "row-remap.md"),
        ("xid-63", "row-remap.md"),
        ("xid-64", "row-remap.md"),
        ("xid-119", "gsp.md"),
        ("xid-120", "gsp.md"),
        ("xid-74", "nvlink.md"),
        ("xid-144", "nvlink.md"),
        ("xid-150", "nvlink.md"),
        ("nvlink-down", "nvlink.md"),
        ("pcie-degraded", "pcie.md"),
        ("pcie-replay", "pcie.md"),
        ("ib-port-down", "infiniband.md"),
        ("ib-flap", "infiniband.md"),
        ("gpu-missing", "gpu-missing.md"),
        ("thermal", "thermal-power.md"),
        ("power-brake", "thermal-power.md"),
        ("dcgm-health-fail", "dcgm-health.md"),
        ("alert-gpu-fan-failure", "alert.md"),
        ("xid-13", "xid-other.md"),
        ("xid-31", "xid-other.md"),
        ("xid-43", "xid-other.md"),
        ("xid-9999", "xid-other.md"),
        ("sxid-20034", "xid-other.md"),
        ("manual", "manual.md"),
        ("XID-79", "xid-79.md"),
        ("something-new", "README.md"),
        ("", "README.md"),
    ],
)
def test_runbook_for_maps_classes_to_their_file(code: str, runbook: str) -> None:
    assert runbooks.runbook_for(code) == runbook


def test_every_runbook_is_reachable_from_some_class_or_situation() -> None:
    """A runbook nothing links to is one nobody will read."""
    reached = {runbooks.runbook_for(code) for code in every_finding_class()} | set(SITUATIONS)
    orphans = sorted(path.name for path in runbook_files() if path.name not in reached)
    assert not orphans


def test_situation_runbooks_exist() -> None:
    for name in SITUATIONS:
        assert (RUNBOOKS / name).is_file(), name


@pytest.mark.parametrize(
    ("base", "code", "url"),
    [
        ("https://rb.example/gpu/", "gpu-lost", "https://rb.example/gpu/xid-79.md"),
        ("https://rb.example/gpu", "xid-31", "https://rb.example/gpu/xid-other.md"),
        ("https://rb.example", "brand-new-class", "https://rb.example/README.md"),
        (None, "xid-79", None),
        ("", "xid-79", None),
        ("https://rb.example", "", None),
    ],
)
def test_runbook_url(base: str | None, code: str, url: str | None) -> None:
    assert runbooks.runbook_url(base, code) == url


# --------------------------------------------------------------------------- the notification view


def _repair(reason: str) -> dict[str, object]:
    return {
        "metadata": {"name": "gpu-17-20260105031400"},
        "spec": {"nodeName": "gpu-17", "findings": [{"code": reason, "message": "m", "action": "reboot"}]},
        "status": {"phase": Phase.CORDONED.value, "reason": reason},
    }


@pytest.mark.parametrize(
    ("reason", "runbook"),
    [("gpu-lost", "xid-79.md"), ("xid-48", "ecc-dbe.md"), ("ib-flap", "infiniband.md"), ("xid-13", "xid-other.md")],
)
def test_slack_and_jira_link_the_mapped_runbook(reason: str, runbook: str) -> None:
    view = RepairView.from_resource(_repair(reason), runbook_base_url="https://runbooks.example/gpu/")
    assert view.runbook_url == f"https://runbooks.example/gpu/{runbook}"
    assert (RUNBOOKS / runbook).is_file()


def test_no_runbook_link_without_a_base_url() -> None:
    assert RepairView.from_resource(_repair("xid-79")).runbook_url is None


# --------------------------------------------------------------------------- the runbooks' text


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {github_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)}


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", all_markdown(), ids=lambda p: p.name)
def test_every_relative_link_resolves(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not ours to check offline
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_file() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert not broken, f"{path.name}: broken links {broken}"


@pytest.mark.parametrize("path", runbook_files(), ids=lambda p: p.name)
def test_every_runbook_has_the_same_sections_in_order(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# "), f"{path.name}: starts without a title"
    headings = [line.strip() for line in lines if line.startswith("## ")]
    positions = [headings.index(section) if section in headings else -1 for section in SECTIONS]
    missing = [section for section in SECTIONS if section not in headings]
    assert not missing, f"{path.name}: missing {missing}"
    assert positions == sorted(positions), f"{path.name}: sections out of order {headings}"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


COMMAND = re.compile(r"(?<![\w./-])repairbot ([a-z][a-z-]*)((?: [^`|#\n]*)?)")


def repairbot_commands() -> list[tuple[str, str, str]]:
    """(runbook, subcommand, rest of the command line) for every ``repairbot <sub>`` in the runbooks."""
    found = []
    for path in all_markdown():
        for match in COMMAND.finditer(path.read_text(encoding="utf-8")):
            found.append((path.name, match.group(1), match.group(2)))
    return found


def test_runbooks_name_repairbot_commands() -> None:
    named = {sub for _, sub, _ in repairbot_commands()}
    assert {"resume", "repair", "policy", "kmsg"} <= named


@pytest.mark.parametrize(("runbook", "sub", "rest"), repairbot_commands(), ids=lambda v: str(v)[:40])
def test_every_repairbot_command_in_a_runbook_exists(runbook: str, sub: str, rest: str) -> None:
    commands = subcommands()
    assert sub in commands, f"{runbook}: `repairbot {sub}` is not a subcommand ({', '.join(sorted(commands))})"
    parser = commands[sub]
    nested = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    words = shlex.split(rest.replace("…", "x"), posix=True) if rest.strip() else []
    if nested is not None:
        assert words and words[0] in nested.choices, f"{runbook}: `repairbot {sub} {rest.strip()}`"
        parser = nested.choices[words[0]]
    options = set(parser._option_string_actions)
    unknown = [w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in options]
    assert not unknown, f"{runbook}: `repairbot {sub}` has no option {unknown}"


LADDER_ROW = re.compile(r"^\| `([a-z0-9-]+)` \| ([a-z-]+(?: → [a-z-]+)*) \|$", re.M)


def ladder_rows(path: Path) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    section = text.split("## What RepairBot does", 1)[-1].split("\n## ", 1)[0]
    return LADDER_ROW.findall(section)


def test_class_runbooks_show_their_ladders() -> None:
    without = [p.name for p in runbook_files() if p.name not in SITUATIONS and not ladder_rows(p)]
    assert not without


@pytest.mark.parametrize("path", runbook_files(), ids=lambda p: p.name)
def test_the_ladders_in_runbooks_are_the_ones_the_operator_climbs(path: Path) -> None:
    """The table row says what the default policy (with the Xid catalog behind it) does for that class."""
    for code, written in ladder_rows(path):
        climbed = " → ".join(r.action.value for r in DEFAULT_POLICY.ladder_for(code, fallback=FALLBACK))
        assert written == climbed, f"{path.name}: {code} says {written!r}, the operator climbs {climbed!r}"
        assert runbooks.runbook_for(code) == path.name, f"{path.name} documents {code}, which links elsewhere"


INDEX_ROW = re.compile(r"^\| `([^`]+)` \| \[[^\]]+\]\(([^)]+)\) \|", re.M)


def test_the_index_table_agrees_with_the_code() -> None:
    rows = INDEX_ROW.findall((RUNBOOKS / runbooks.RUNBOOK_INDEX).read_text(encoding="utf-8"))
    concrete = [(code, target) for code, target in rows if re.fullmatch(r"[a-z0-9-]+", code)]
    assert len(concrete) >= 20
    wrong = [(code, target) for code, target in concrete if runbooks.runbook_for(code) != target]
    assert not wrong
    listed = {target for _, target in rows}
    assert {p.name for p in runbook_files() if p.name not in SITUATIONS} <= listed
