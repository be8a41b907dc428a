"""DESIGN.md's dependency rule, checked on every import the code makes (function-level ones too).

Dependencies flow one way. The foundation (``model``; then ``bounds``, ``contract``, the Xid
``catalog`` and the HTTP clients' ``http_credentials``; then ``policy`` and ``runbooks``) imports
nothing above it. The building blocks — the pure state ``machine``, ``detectors``, ``remediations``,
``notify`` and ``kube`` — import only the foundation, never each other. ``agent``, ``operator`` and
``webhook`` compose building blocks and never import each other; ``cli`` sits on top. The simulated
world and the fleet simulation (``sim/``) sit above all of it, and the product never imports them.
A newcomer who adds an upward or sideways import gets this test's list of offending lines, not a
tangle found a year later.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "repairbot"
SIMULATOR = ROOT / "sim"

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"repairbot", "model", "logs"}),  # "repairbot": the package itself (its __version__)
    frozenset({"bounds", "contract", "catalog", "build_info", "http_credentials"}),
    frozenset({"policy", "runbooks"}),
    frozenset({"machine", "detectors", "remediations", "notify", "kube", "slurm"}),
    frozenset({"agent", "operator", "webhook"}),
    frozenset({"cli"}),
)
"""Each unit may import units of lower layers only: a unit of its own layer is a sideways import."""
LAYER_OF = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
SIMULATOR_PACKAGES = ("repairbot_sim", "repairbot_fleetsim")
WITHOUT_KUBERNETES = frozenset(
    {
        "model",
        "bounds",
        "contract",
        "catalog",
        "http_credentials",
        "policy",
        "runbooks",
        "machine",
        "remediations",
        "slurm",
    }
)
"""Units that never talk to Kubernetes themselves: what they need of it is injected (the BMC Secret's reader)."""


@dataclass(frozen=True)
class Import:
    base: Path
    source: Path
    line: int
    importer: str  # the dotted module that imports
    imported: str  # the dotted module it names

    def __str__(self) -> str:
        return f"{self.source.relative_to(self.base)}:{self.line}: {self.importer} imports {self.imported}"


def module_name(path: Path, base: Path) -> str:
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(base: Path, package: str, of: tuple[str, ...] = ("repairbot", *SIMULATOR_PACKAGES)) -> Iterator[Import]:
    """Every absolute import of the top-level packages ``of`` made by ``base/package``'s modules."""
    ours = of
    for path in sorted((base / package).rglob("*.py")):
        importer = module_name(path, base)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ours:
                    yield Import(base, path, node.lineno, importer, name)


def unit_of(module: str) -> str:
    """``repairbot.operator.reconciler`` → ``operator``; ``repairbot`` → ``repairbot``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def against_the_direction(imports: Iterator[Import]) -> list[str]:
    """Each import of ``imports`` that goes upwards or sideways, or reaches the simulated world, with why."""
    offending = []
    for found in imports:
        if found.imported.split(".")[0] != "repairbot":
            offending.append(f"{found}  (the product never imports the simulated world)")
            continue
        source, target = unit_of(found.importer), unit_of(found.imported)
        if source != target and LAYER_OF[target] >= LAYER_OF[source]:
            way = "sideways" if LAYER_OF[target] == LAYER_OF[source] else "upwards"
            offending.append(f"{found}  ({way}: {source} is layer {LAYER_OF[source]}, {target} {LAYER_OF[target]})")
    return offending


def test_every_product_package_and_module_has_a_layer() -> None:
    modules = {path.stem for path in PRODUCT.glob("*.py") if path.stem != "__init__"}
    packages = {path.name for path in PRODUCT.iterdir() if (path / "__init__.py").is_file()}
    assert (modules | packages) - LAYER_OF.keys() == set(), "a new package or module: give it a layer in LAYERS"


def test_the_product_imports_only_downwards() -> None:
    offending = against_the_direction(imports_in(ROOT, "repairbot"))
    assert not offending, "imports against DESIGN.md's direction:\n" + "\n".join(offending)


def test_the_pure_units_never_import_a_kubernetes_client() -> None:
    offending = [
        str(found)
        for found in imports_in(ROOT, "repairbot", of=("kubernetes", "kopf"))
        if unit_of(found.importer) in WITHOUT_KUBERNETES
    ]
    assert not offending, "a pure unit talks to Kubernetes:\n" + "\n".join(offending)


def test_the_fleet_simulation_uses_the_machines_public_face_not_operator_internals() -> None:
    """The simulation must run the operator's real policy through the same public functions."""
    offending = [
        str(found)
        for found in imports_in(SIMULATOR, "repairbot_fleetsim")
        if unit_of(found.imported) in ("operator", "agent", "webhook", "kube", "repairbot_sim")
        or found.imported.startswith("repairbot.machine.")
    ]
    assert not offending, "the fleet simulation reaches past public faces:\n" + "\n".join(offending)


def test_an_upward_import_inside_a_function_and_a_sideways_one_are_both_named(tmp_path: Path) -> None:
    kube = tmp_path / "repairbot" / "kube"
    kube.mkdir(parents=True)
    (tmp_path / "repairbot" / "__init__.py").write_text("")
    (kube / "__init__.py").write_text("")
    (kube / "late.py").write_text(
        "from repairbot.model import Phase\n\ndef late():\n    from repairbot.operator.reconciler import x\n"
    )
    (kube / "side.py").write_text("import repairbot.notify.slack\nimport repairbot_sim.kube\n")
    found = sorted(against_the_direction(imports_in(tmp_path, "repairbot")))
    assert found == [
        "repairbot/kube/late.py:4: repairbot.kube.late imports repairbot.operator.reconciler"
        "  (upwards: kube is layer 3, operator 4)",
        "repairbot/kube/side.py:1: repairbot.kube.side imports repairbot.notify.slack"
        "  (sideways: kube is layer 3, notify 3)",
        "repairbot/kube/side.py:2: repairbot.kube.side imports repairbot_sim.kube"
        "  (the product never imports the simulated world)",
    ], found
