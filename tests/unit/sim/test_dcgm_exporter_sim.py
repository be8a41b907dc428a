"""The simulated dcgm-exporter says what the real one would about the fake GPUs (REFERENCE.md §3.3)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from repairbot_sim.dcgm_exporter import exposition
from repairbot_sim.gpu import SimulatedGpuNode


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of ``name`` (the Python parser appends ``_total`` to counters; Prometheus keeps the name as sent)."""
    wanted = (name, f"{name}_total")
    return [(s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name in wanted]


def test_last_xid_and_windowed_count_carry_the_code(tmp_path: Path) -> None:
    now = [1000.0]
    node = SimulatedGpuNode("gpu-node-001", tmp_path, clock=lambda: now[0])
    node.inject("xid:79", 3)
    node.inject("xid:79", 3)
    node.inject("ecc-dbe", 1)
    page = exposition(node, now=now[0])
    last = {labels["gpu"]: (labels["err_code"], value) for labels, value in samples(page, "DCGM_FI_DEV_XID_ERRORS")}
    assert last["3"] == ("79", 79.0) and last["1"] == ("48", 48.0) and last["0"] == ("0", 0.0)
    counts = {(labels["gpu"], labels["xid"]): v for labels, v in samples(page, "DCGM_EXP_XID_ERRORS_COUNT")}
    assert counts == {("3", "79"): 2.0, ("1", "48"): 1.0}
    [(labels, dbe)] = [s for s in samples(page, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL") if s[0]["gpu"] == "1"]
    assert dbe == 1.0 and labels["Hostname"] == "gpu-node-001" and labels["UUID"].startswith("GPU-")
    # Five minutes on, the window has forgotten them; the last-Xid gauge has not.
    later = exposition(node, now=now[0] + 301)
    assert not samples(later, "DCGM_EXP_XID_ERRORS_COUNT")
    assert ("79", 79.0) in [(labels["err_code"], v) for labels, v in samples(later, "DCGM_FI_DEV_XID_ERRORS")]


def test_a_gpu_off_the_bus_has_no_series(tmp_path: Path) -> None:
    node = SimulatedGpuNode("gpu-node-002", tmp_path)
    node.inject("fall-off-bus", 5)
    node.inject("row-remap-failure", 2)
    page = exposition(node)
    temps = samples(page, "DCGM_FI_DEV_GPU_TEMP")
    assert len(temps) == 7 and "5" not in {labels["gpu"] for labels, _ in temps}
    assert [labels["gpu"] for labels, v in samples(page, "DCGM_FI_DEV_ROW_REMAP_FAILURE") if v == 1.0] == ["2"]
