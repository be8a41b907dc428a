"""Regenerate sim/repairbot_sim/data/sandbox-rbac.yaml: the chart's access objects as the sandbox installs them.

``python -m tests.chart.write_sandbox_rbac`` (or ``make sandbox-rbac``) renders the chart with Helm's
own engine (a test dependency) for release ``repairbot`` in namespace ``repairbot`` with the
sandbox's values, and keeps the ServiceAccounts, RBAC and ValidatingAdmissionPolicy objects.
test_sandbox_rbac_snapshot.py fails while the committed file differs from this rendering.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from repairbot_sim import fleet
from repairbot_sim.access import CHART_RELEASE, SANDBOX_CHART_VALUES, SANDBOX_RBAC, SANDBOX_RBAC_KINDS

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "repairbot"
COMMAND = "python -m tests.chart.write_sandbox_rbac"
HEADER = (
    "# GENERATED from charts/repairbot (release repairbot, namespace repairbot, the sandbox's values):\n"
    f"# the ServiceAccounts, RBAC and admission policies the sandbox installs. Regenerate: {COMMAND}\n"
)


def rendered_objects(chart: Any) -> list[dict[str, Any]]:
    """The access objects of one rendering, in a stable order."""
    manifests: dict[str, str] = chart.render(
        SANDBOX_CHART_VALUES, name=CHART_RELEASE, namespace=fleet.AGENT_NAMESPACE, is_install=True
    )
    objects = [
        doc
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc and doc.get("kind") in SANDBOX_RBAC_KINDS
    ]
    order = {kind: i for i, kind in enumerate(SANDBOX_RBAC_KINDS)}
    return sorted(
        objects,
        key=lambda o: (order[o["kind"]], o["metadata"].get("namespace", ""), o["metadata"]["name"]),
    )


def snapshot_text(chart: Any) -> str:
    return HEADER + yaml.safe_dump_all(rendered_objects(chart), sort_keys=False, explicit_start=True)


def main() -> None:
    import helm_python as helm

    chart = helm.Chart.load(CHART_DIR)
    try:
        SANDBOX_RBAC.write_text(snapshot_text(chart), encoding="utf-8")
    finally:
        chart.close()
    print(f"wrote {SANDBOX_RBAC}")


if __name__ == "__main__":
    main()
