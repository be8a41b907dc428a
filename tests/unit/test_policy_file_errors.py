"""A file that is no policy at all (not UTF-8, 5,000 deep, huge, not a mapping, missing): one line, exit 2.

``repairbot policy check`` and ``repairbot operator --policy`` both answer
with the file's name and the problem — never a traceback, and the operator
never starts on it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from repairbot.cli import main
from repairbot.policy import PolicyError, load_policy

CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "not-utf8": (lambda p: p.write_bytes(b"budget:\n  maxUnavailable: 3\n  poolLabel: caf\xe9\n"),
                 "is not UTF-8 text (byte 0xe9 at offset 44)"),
    "utf16": (lambda p: p.write_text("budget: {}\n", encoding="utf-16"), "is not UTF-8 text (byte 0xff at offset 0)"),
    "deep": (lambda p: p.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n"), "nests deeper than"),
    "deep-block": (lambda p: p.write_text("".join(" " * i + "k:\n" for i in range(600))), "nests deeper than"),
    "huge": (lambda p: p.write_text("# " + "x" * (2 * 1024 * 1024) + "\n"), "is larger than 1048576 bytes"),
    "list": (lambda p: p.write_text("- budget\n- breaker\n"), "must be a mapping of policy sections, not a list"),
    "scalar": (lambda p: p.write_text("42\n"), "must be a mapping of policy sections, not an integer"),
    "missing": (lambda p: None, "cannot be read: No such file or directory"),
    "directory": (lambda p: p.mkdir(), "cannot be read: Is a directory"),
}  # fmt: skip


@pytest.fixture(params=sorted(CASES))
def bad_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    write, problem = CASES[request.param]
    path = tmp_path / f"{request.param}.yaml"
    write(path)
    return path, problem


def test_loading_a_file_that_is_not_a_policy_is_a_policy_error_naming_file_and_problem(
    bad_file: tuple[Path, str],
) -> None:
    path, problem = bad_file
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert problem in str(raised.value)
    assert "\n" not in str(raised.value)


def test_policy_check_on_a_file_that_is_not_a_policy_exits_2_with_one_line(
    bad_file: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, problem = bad_file
    assert main(["policy", "check", str(path)]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"{path}: ") and problem in out, out


def test_operator_refuses_to_start_on_a_file_that_is_not_a_policy_with_one_line(
    bad_file: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, problem = bad_file
    code = main(["operator", "--policy", str(path), "--kubeconfig", "/nonexistent", "--no-leader-election"])
    assert code == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"repairbot operator: bad policy {path}: ") and problem in out, out
