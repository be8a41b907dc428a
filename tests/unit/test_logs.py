"""``--log-format json``: lines a log pipeline indexes by the same fields the GPURepair history shows."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import kopf
import pytest

import repairbot
from repairbot.logs import JsonFormatter, configure_logging, step_fields


def formatted(logger: logging.Logger | logging.LoggerAdapter[logging.Logger], *args: object,
              **kwargs: object) -> dict[str, object]:  # fmt: skip
    """What one ``logger.info(*args, **kwargs)`` writes in the JSON format."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    base = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
    base.addHandler(handler)
    base.setLevel(logging.INFO)
    try:
        logger.info(*args, **kwargs)  # type: ignore[arg-type]
    finally:
        base.removeHandler(handler)
    return dict(json.loads(stream.getvalue()))


def test_a_repair_step_line_carries_node_repair_phase_and_action_as_fields() -> None:
    line = formatted(logging.getLogger("repairbot.operator.reconciler"),
                     "repair step repair=%s node=%s", "gpu-7-1", "gpu-7",
                     extra=step_fields(node="gpu-7", repair="gpu-7-1", phase="Remediating", action="reboot",
                                       event=None))  # fmt: skip
    assert line["message"] == "repair step repair=gpu-7-1 node=gpu-7"
    assert (line["level"], line["logger"]) == ("INFO", "repairbot.operator.reconciler")
    assert str(line["time"]).endswith("Z") and "T" in str(line["time"])
    assert {k: line[k] for k in ("node", "repair", "phase", "action")} == {
        "node": "gpu-7", "repair": "gpu-7-1", "phase": "Remediating", "action": "reboot"}  # fmt: skip
    assert "event" not in line  # an empty field is left out, not written as null


def test_kopfs_lines_about_a_gpurepair_name_the_repair_like_ours() -> None:
    body = kopf.Body({"apiVersion": "repairbot.io/v1alpha1", "kind": "GPURepair",
                      "metadata": {"name": "gpu-7-1", "uid": "u-1"}})  # fmt: skip
    line = formatted(kopf.ObjectLogger(body=body, settings=kopf.OperatorSettings()), "Handler succeeded.")
    assert line["repair"] == "gpu-7-1" and line["object"] == {
        "apiVersion": "repairbot.io/v1alpha1", "kind": "GPURepair", "name": "gpu-7-1", "uid": "u-1"}  # fmt: skip
    assert "settings" not in line and "k8s_skip" not in line


def test_an_exception_goes_into_the_line_not_onto_lines_of_its_own() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("repairbot.test.exception")
    log.addHandler(handler)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("poll cycle failed node=%s", "gpu-1", extra=step_fields(node="gpu-1"))
    finally:
        log.removeHandler(handler)
    (text,) = stream.getvalue().splitlines()
    line = json.loads(text)
    assert line["node"] == "gpu-1" and "ValueError: boom" in line["exception"]


def test_configure_logging_leaves_a_test_runners_handler_alone() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    try:
        configure_logging("DEBUG", "json", stream=io.StringIO())
        assert foreign in root.handlers and len(root.handlers) == len(before) + 1
    finally:
        root.removeHandler(foreign)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "repairbot.cli", *args], capture_output=True, text=True, timeout=60)


def test_an_operator_refusing_a_bad_policy_logs_one_json_line_with_either_option_order(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("budget: {maxUnavailable: lots}\n")
    for args in (("--log-format", "json", "operator", "--policy", str(bad)),
                 ("operator", "--policy", str(bad), "--log-format", "json", "--log-level", "ERROR")):  # fmt: skip
        done = run_cli(*args)
        assert done.returncode == 2, done.stderr
        lines = [json.loads(text) for text in done.stderr.splitlines()]
        assert [(line["level"], line["logger"]) for line in lines] == [("ERROR", "repairbot.operator.main")], lines
        assert lines[0]["message"] == f"refusing to start: bad policy {bad}"


def test_a_log_level_after_the_sub_command_wins_and_one_left_out_keeps_the_global(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("budget: {maxUnavailable: lots}\n")
    quiet = run_cli("--log-level", "ERROR", "operator", "--policy", str(bad), "--log-level", "CRITICAL")
    assert quiet.returncode == 2 and quiet.stderr == ""
    kept = run_cli("--log-level", "CRITICAL", "--log-format", "json", "operator", "--policy", str(bad))
    assert kept.returncode == 2 and kept.stderr == ""
    text = run_cli("operator", "--policy", str(bad))
    assert " ERROR repairbot.operator.main refusing to start: bad policy" in text.stderr


def test_an_unknown_log_format_is_refused_by_name() -> None:
    done = run_cli("kmsg", "--log-format", "yaml")
    assert done.returncode == 2 and "invalid choice: 'yaml'" in done.stderr


@pytest.mark.parametrize("field", ["created", "name", "msg", "message", "process"])
def test_a_step_field_named_like_a_log_records_own_attribute_fails_at_every_level(field: str) -> None:
    """``logging`` would raise only once the level is on (in production); this raises in every test."""
    with pytest.raises(ValueError, match=field):
        step_fields(node="gpu-1", **{field: True})


def test_no_log_call_in_the_product_passes_a_field_logging_reserves() -> None:
    """Every ``extra=`` given literally in repairbot's code avoids LogRecord's names (``step_fields`` checks the
    rest when it runs, but a call on a rare path may run in no test)."""
    import ast

    reserved = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
    clashes = []
    for path in sorted(Path(repairbot.__file__).parent.rglob("*.py")):
        for call in ast.walk(ast.parse(path.read_text())):
            if not isinstance(call, ast.Call):
                continue
            keys = [k.arg for k in call.keywords if k.arg] if getattr(call.func, "id", "") == "step_fields" else []
            for keyword in call.keywords:
                if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                    keys += [k.value for k in keyword.value.keys if isinstance(k, ast.Constant)]
            clashes += [f"{path.name}:{call.lineno} {key}" for key in keys if key in reserved]
    assert not clashes
