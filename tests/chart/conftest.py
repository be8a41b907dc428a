"""Fixtures for the chart tests: the chart loaded by Helm's own engine, and the emulated API server.

``apiserver`` and ``kubectl`` are the integration suite's fixtures (tests/integration/conftest.py),
loaded under a name of their own so the two conftest modules do not collide.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import helm_python as helm
import pytest

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
_spec = importlib.util.spec_from_file_location("repairbot_integration_fixtures", _INTEGRATION)
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures  # dataclasses look their module up there
_spec.loader.exec_module(_fixtures)

apiserver = _fixtures.apiserver
kubectl = _fixtures.kubectl


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    from chart_support import CHART_DIR

    loaded = helm.Chart.load(CHART_DIR)
    try:
        yield loaded
    finally:
        loaded.close()
