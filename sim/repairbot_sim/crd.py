"""Find and load the GPURepair CRD from the Helm chart, its single source of truth."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

CRD_RELATIVE_PATH = Path("charts/repairbot/crds/gpurepairs.yaml")
CRD_PATH_ENV = "REPAIRBOT_CRD"


def crd_path() -> Path:
    """The chart's CRD file: ``$REPAIRBOT_CRD``, else the checkout this package was installed from.

    The sandbox deliberately reads the chart's file rather than a copy so the
    emulated cluster can never serve a different schema than ``helm install``.
    """
    override = os.environ.get(CRD_PATH_ENV)
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / CRD_RELATIVE_PATH
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"cannot find {CRD_RELATIVE_PATH} above {Path(__file__).parent}; set {CRD_PATH_ENV} to the CRD file"
    )


def load_crd() -> dict[str, Any]:
    with crd_path().open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document
