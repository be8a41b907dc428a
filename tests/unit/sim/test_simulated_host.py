"""The product's own remediations, run on the simulated host: its commands change the simulated hardware."""

from __future__ import annotations

import threading
from pathlib import Path

from repairbot.model import GpuRef
from repairbot.remediations.action import NodeContext
from repairbot.remediations.driver_reload import DRIVER_RELOAD
from repairbot.remediations.gpu_reset import GPU_RESET
from repairbot.remediations.reboot import REBOOT
from repairbot_sim.gpu import SimulatedGpuNode
from repairbot_sim.host import ActionTimes, SimulatedHost


def simulated(tmp_path: Path) -> SimulatedHost:
    node = SimulatedGpuNode("gpu-node-007", tmp_path, gpu_count=4, ib_hcas=1)
    return SimulatedHost(node, ActionTimes(gpu_reset=0, driver_reload=0, reboot=0), sleep=lambda _s: None)


def test_a_gpu_reset_by_uuid_clears_that_gpus_volatile_errors_only(tmp_path: Path) -> None:
    host = simulated(tmp_path)
    devices = host.node.backend.devices
    devices[1].volatile_dbe = devices[2].volatile_dbe = 3
    outcome = GPU_RESET.run(NodeContext(host, GpuRef(index=1, uuid=devices[1].uuid)))
    assert outcome.ok, outcome.message
    assert (devices[1].volatile_dbe, devices[2].volatile_dbe) == (0, 3)


def test_the_simulated_nvidia_smi_takes_a_pci_address_in_nvmls_spelling_too(tmp_path: Path) -> None:
    host = simulated(tmp_path)
    gpu = host.node.backend.devices[2]
    gpu.volatile_dbe = 1
    assert host.run(["nvidia-smi", "--gpu-reset", "-i", "0000" + gpu.pci]).ok
    assert gpu.volatile_dbe == 0
    missing = host.run(["nvidia-smi", "--gpu-reset", "-i", "GPU-nope"])
    assert not missing.ok and "No devices were found" in missing.message


def test_a_gpu_held_by_a_process_is_refused_and_a_lost_one_fails(tmp_path: Path) -> None:
    host = simulated(tmp_path)
    host.node.backend.devices[0].pids.append(4242)
    held = GPU_RESET.run(NodeContext(host, GpuRef(index=0)))
    assert held.refused and "4242" in held.message
    host.node.inject("fall-off-bus", 3)
    lost = GPU_RESET.run(NodeContext(host, GpuRef(index=3)))
    assert not lost.ok and not lost.refused and "unreachable" in lost.message


def test_a_driver_reload_reinitialises_every_gpu_and_is_refused_while_one_is_held(tmp_path: Path) -> None:
    host = simulated(tmp_path)
    host.node.backend.devices[3].volatile_sbe = 9
    assert DRIVER_RELOAD.run(NodeContext(host)).ok
    assert host.node.backend.devices[3].volatile_sbe == 0
    host.node.backend.devices[0].pids.append(7)
    assert DRIVER_RELOAD.run(NodeContext(host)).refused


def test_a_reboot_returns_at_once_and_the_node_comes_back_with_a_new_boot_id(tmp_path: Path) -> None:
    back = threading.Event()
    host = simulated(tmp_path)
    host.on_reboot_finished = back.set
    before = host.boot_id()
    assert REBOOT.run(NodeContext(host)).ok
    assert back.wait(5) and host.boot_id() != before


def test_a_command_the_simulated_host_does_not_know_is_not_found(tmp_path: Path) -> None:
    outcome = simulated(tmp_path).run(["rm", "-rf", "/"])
    assert not outcome.ok and "exited 127" in outcome.message
