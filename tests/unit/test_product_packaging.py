"""The product installs and ships without the simulated world it is tested in.

``pip install .`` (and so the image, which installs exactly that) must carry the agent, the
operator and the webhook and nothing the demo, the emulated API server or the fleet simulation
alone need: each such library is attack surface and image weight an SRE pays for nothing.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR_ONLY = {"rich", "matplotlib", "cel-python", "lark", "cryptography", "numpy", "pillow"}
"""Libraries only the simulated world uses (the demo's view, its plots, the emulator's CEL and TLS)."""


def project(path: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(path.read_text(encoding="utf-8"))["project"]


def pulled_by(requirements: list[str]) -> set[str]:
    """Every distribution installing ``requirements`` pulls, read from the installed metadata (no extras)."""
    seen: set[str] = set()
    todo = [Requirement(text).name for text in requirements]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def test_a_plain_install_of_the_product_pulls_none_of_the_simulators_libraries() -> None:
    pulled = pulled_by(project(ROOT / "pyproject.toml")["dependencies"])
    assert {"kopf", "kubernetes", "slack-sdk", "jira", "nvidia-ml-py", "tenacity", "httpx"} <= pulled
    assert not pulled & SIMULATOR_ONLY, f"the product pulls simulator-only libraries: {sorted(pulled & SIMULATOR_ONLY)}"


def test_the_simulator_declares_what_it_imports_and_depends_on_the_product() -> None:
    simulator = {Requirement(text).name for text in project(ROOT / "sim" / "pyproject.toml")["dependencies"]}
    assert "repairbot" in simulator
    assert {"rich", "matplotlib", "cel-python", "cryptography", "jsonpatch"} <= simulator


def test_the_products_wheel_holds_only_the_repairbot_package() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"][
        "find"
    ]["include"]
    packages = find_packages(where=str(ROOT), include=include)
    assert "repairbot" in packages and "repairbot.operator" in packages
    assert all(name == "repairbot" or name.startswith("repairbot.") for name in packages), packages
    assert not (ROOT / "repairbot" / "sim").exists() and not (ROOT / "repairbot" / "fleetsim").exists()
