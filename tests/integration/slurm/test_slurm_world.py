"""The Slurm world itself: real daemons on loopback that run jobs, drain nodes and survive a controller restart."""

from __future__ import annotations

from slurm_world import slurm_world


def test_a_job_runs_on_the_node_it_names_and_a_drain_waits_for_it() -> None:
    with slurm_world(("gpu-node-001", "gpu-node-002")) as world:
        job = world.submit("gpu-node-001")
        assert world.jobs_on("gpu-node-001") == [job]
        world.drain("gpu-node-001", "human: fan")
        assert world.node_state("gpu-node-001") == "MIXED+DRAIN"  # draining: the job still runs
        world.cancel(job)
        world.wait_until(lambda: world.node_state("gpu-node-001") == "IDLE+DRAIN", 20, "drained")
        assert world.node_reason("gpu-node-001") == "human: fan"


def test_a_drain_survives_a_controller_restart() -> None:
    with slurm_world(("gpu-node-001",)) as world:
        world.drain("gpu-node-001", "human: fan")
        world.stop_controller()
        assert "DOWN" in world.run("scontrol", "ping", check=False)
        world.start_controller()
        assert world.node_state("gpu-node-001").endswith("+DRAIN")
