"""Power-cycling nodes through real HTTP Redfish servers: sushy-tools' emulator and our own sim.

Every test goes the operator's whole way: Node annotations and the BMC Secret
from the emulated API server (real kubernetes client), then the BMC over HTTP.
Calls run in a worker thread (``asyncio.to_thread``), as in the operator,
while our sim serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TYPE_CHECKING

import pytest

from repairbot.remediations.action import ActionOutcome
from repairbot.remediations.redfish import ANNOTATION_BMC_INSECURE, RedfishError
from repairbot_sim.redfish import SUSHY_LIKE, RedfishSim

if TYPE_CHECKING:  # fixtures' types, from this folder's conftest
    from conftest import BmcFleet, SushyFactory

NODE = "gpu-node-001"


# --------------------------------------------------------------------------- sushy-tools (an independent BMC)


def test_sushy_has_no_power_cycle_so_force_restart_is_chosen(sushy_emulator: SushyFactory, bmc_fleet: BmcFleet) -> None:
    sushy = sushy_emulator(systems=1)
    bmc_fleet.add_node(NODE, sushy.url)

    outcome = bmc_fleet.power_cycle(NODE)

    assert outcome.ok, outcome.message
    assert outcome.details.get("reset") == "ForceRestart"
    system = f"/redfish/v1/Systems/{sushy.system_ids[0]}"
    assert f"accepted ForceRestart for {system}" in outcome.message
    resets = [request for request in sushy.requests() if request[0] == "POST"]
    assert resets == [("POST", f"{system}/Actions/ComputerSystem.Reset", 204)], "one reset, never a PowerCycle try"
    # sushy's fake host goes Off at once and comes back On within ~11 s.
    assert bmc_fleet.bmc.power_state(NODE) in {"Off", "On"}


def test_sushy_rejects_a_wrong_password_and_the_error_names_the_secret(
    sushy_emulator: SushyFactory, bmc_fleet: BmcFleet
) -> None:
    sushy = sushy_emulator(systems=1)
    secret = bmc_fleet.add_node(NODE, sushy.url, password="rotated-yesterday")

    outcome = bmc_fleet.power_cycle(NODE)

    assert not outcome.ok
    assert outcome.message == (
        f"node {NODE}: BMC {sushy.url} answered 401 to GET /redfish/v1/Systems: check the Secret {secret}"
    )


def test_sushy_with_two_systems_needs_the_node_to_name_one(sushy_emulator: SushyFactory, bmc_fleet: BmcFleet) -> None:
    sushy = sushy_emulator(systems=2)
    bmc_fleet.add_node("gpu-node-001", sushy.url)
    bmc_fleet.add_node("gpu-node-002", sushy.url, system=sushy.system_ids[1])

    unnamed = bmc_fleet.power_cycle("gpu-node-001")
    named = bmc_fleet.power_cycle("gpu-node-002")

    assert not unnamed.ok
    assert "serves 2 systems" in unnamed.message and "set annotation repairbot.io/bmc-system" in unnamed.message
    assert named.ok and named.details.get("reset") == "ForceRestart"
    assert sushy.system_ids[1] in named.message


# --------------------------------------------------------------------------- our RedfishSim


async def test_power_cycle_capable_bmc_gets_power_cycle_and_the_sandbox_hears_of_it(
    redfish_sim: RedfishSim, bmc_fleet: BmcFleet
) -> None:
    heard: list[tuple[str, str]] = []

    async def reboot_simulated_node(system_id: str, reset_type: str) -> None:
        heard.append((system_id, reset_type))

    redfish_sim.on_reset = reboot_simulated_node
    redfish_sim.add_system(NODE)
    redfish_sim.add_system("gpu-node-002")
    bmc_fleet.add_node(NODE, redfish_sim.url, system=NODE)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert outcome.ok, outcome.message
    assert (outcome.details.get("reset"), outcome.details.get("task")) == ("PowerCycle", None)
    assert heard == [(NODE, "PowerCycle")]
    assert redfish_sim.resets_for(NODE) == ["PowerCycle"] and redfish_sim.resets_for("gpu-node-002") == []
    assert await asyncio.to_thread(bmc_fleet.bmc.power_state, NODE) == "On"


async def test_wrong_credentials_fail_with_the_secret_named(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    redfish_sim.add_system(NODE)
    redfish_sim.reject_credentials()
    bmc_fleet.add_node(NODE, redfish_sim.url)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert not outcome.ok and outcome.details.get("reset") is None
    expected = f"node {NODE}: BMC {redfish_sim.url} answered 401 to GET /redfish/v1/Systems: check the Secret"
    assert outcome.message == f"{expected} repairbot/bmc-{NODE}"
    assert redfish_sim.requests == ["GET /redfish/v1/", "GET /redfish/v1/Systems"], "401 is never retried"
    assert redfish_sim.resets == []


@pytest.mark.parametrize("status", [503, 429, 500])
async def test_a_busy_bmc_is_retried_until_it_answers(
    redfish_sim: RedfishSim, bmc_fleet: BmcFleet, status: int
) -> None:
    redfish_sim.add_system(NODE)
    redfish_sim.fail_next(2, status=status)
    bmc_fleet.add_node(NODE, redfish_sim.url)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert outcome.ok, outcome.message
    assert redfish_sim.requests[:3] == ["GET /redfish/v1/"] * 3
    assert redfish_sim.resets_for(NODE) == ["PowerCycle"]


async def test_a_bmc_busy_beyond_the_bound_fails_the_rung(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    redfish_sim.add_system(NODE)
    redfish_sim.fail_next(100)
    bmc_fleet.add_node(NODE, redfish_sim.url)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert not outcome.ok
    assert outcome.message.startswith(f"node {NODE}: BMC {redfish_sim.url} answered 503 to GET /redfish/v1/")
    assert "the BMC is busy" in outcome.message
    assert len(redfish_sim.requests) == 4, "bounded by RedfishTiming.attempts"


async def test_a_reset_refused_with_503_is_retried_and_lands_once(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    redfish_sim.add_system(NODE)
    bmc_fleet.add_node(NODE, redfish_sim.url)
    session = await asyncio.to_thread(bmc_fleet.bmc.open_session, NODE)
    try:
        _, system = await asyncio.to_thread(session.find_system)
        target = system["Actions"]["#ComputerSystem.Reset"]["target"]
        redfish_sim.fail_next(1)
        response = await asyncio.to_thread(session.reset, target, "ForceRestart")
    finally:
        session.close()
    assert response.status_code == 204
    assert redfish_sim.requests[-2:] == [f"POST {target}"] * 2
    assert redfish_sim.resets_for(NODE) == ["ForceRestart"]


async def test_client_errors_are_not_retried(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    redfish_sim.add_system(NODE)
    redfish_sim.fail_next(1, status=404)
    bmc_fleet.add_node(NODE, redfish_sim.url)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert not outcome.ok and "answered 404 to GET /redfish/v1/" in outcome.message
    assert redfish_sim.requests == ["GET /redfish/v1/"]


async def test_several_systems_and_none_named_is_a_clear_error(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    for name in ("gpu-node-001", "gpu-node-002", "gpu-node-003"):
        redfish_sim.add_system(name)
    bmc_fleet.add_node(NODE, redfish_sim.url)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert not outcome.ok
    assert outcome.message == (
        f"node {NODE}: BMC {redfish_sim.url} serves 3 systems (gpu-node-001, gpu-node-002, gpu-node-003) "
        "and the node names none; set annotation repairbot.io/bmc-system to the right one"
    )
    assert redfish_sim.resets == []


async def test_a_named_system_the_bmc_lacks_is_a_clear_error(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    redfish_sim.add_system("gpu-node-002")
    bmc_fleet.add_node(NODE, redfish_sim.url, system="gpu-node-001")

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert not outcome.ok
    assert "has no system 'gpu-node-001' (it has: gpu-node-002); fix repairbot.io/bmc-system" in outcome.message


async def test_sushy_like_bmc_gets_force_restart(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    redfish_sim.add_system(NODE, allowable_values=SUSHY_LIKE)
    bmc_fleet.add_node(NODE, redfish_sim.url)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert outcome.ok and outcome.details.get("reset") == "ForceRestart"
    assert not any(request.startswith("POST") and "PowerCycle" in request for request in redfish_sim.requests)


async def test_silent_bmc_refusing_power_cycle_falls_back_to_force_restart(
    redfish_sim: RedfishSim, bmc_fleet: BmcFleet
) -> None:
    redfish_sim.add_system(NODE, allowable_values=SUSHY_LIKE, advertise_allowable=False)
    bmc_fleet.add_node(NODE, redfish_sim.url)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert outcome.ok and outcome.details.get("reset") == "ForceRestart"
    posts = [request for request in redfish_sim.requests if request.startswith("POST")]
    assert len(posts) == 2, "PowerCycle refused with 400, then ForceRestart"
    assert redfish_sim.resets_for(NODE) == ["ForceRestart"]


async def test_off_then_on_waits_for_the_host_to_be_off(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    redfish_sim.add_system(NODE, allowable_values=("On", "ForceOff", "GracefulShutdown"), power_off_delay=0.3)
    bmc_fleet.add_node(NODE, redfish_sim.url)

    started = time.monotonic()
    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert outcome.ok and outcome.details.get("reset") == "ForceOff+On"
    assert time.monotonic() - started >= 0.3
    assert redfish_sim.resets_for(NODE) == ["ForceOff", "On"]
    assert redfish_sim.systems[NODE].current_power_state() == "On"


async def test_a_host_that_never_powers_off_fails_within_the_bound(
    redfish_sim: RedfishSim, bmc_fleet: BmcFleet
) -> None:
    redfish_sim.add_system(NODE, allowable_values=("On", "ForceOff"), power_off_delay=60)
    bmc_fleet.add_node(NODE, redfish_sim.url)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert not outcome.ok
    assert "still reports PowerState On 1s after ForceOff" in outcome.message
    assert redfish_sim.resets_for(NODE) == ["ForceOff"], "never On without having seen Off"


async def test_an_accepted_task_is_reported(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    redfish_sim.answer_with_task = True
    redfish_sim.add_system(NODE)
    bmc_fleet.add_node(NODE, redfish_sim.url)

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert outcome.ok and outcome.details.get("task") == "/redfish/v1/TaskService/Tasks/1"
    assert outcome.message.endswith("; task /redfish/v1/TaskService/Tasks/1")


async def test_self_signed_bmc_needs_the_insecure_annotation(
    redfish_sim: RedfishSim, bmc_fleet: BmcFleet, self_signed_tls: ssl.SSLContext
) -> None:
    await redfish_sim.stop()
    url = await redfish_sim.start(ssl_context=self_signed_tls)
    redfish_sim.add_system(NODE)
    redfish_sim.add_system("gpu-node-002")
    bmc_fleet.add_node(NODE, url, system=NODE)
    bmc_fleet.add_node("gpu-node-002", url, system="gpu-node-002", extra={ANNOTATION_BMC_INSECURE: "true"})

    verified = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert not verified.ok
    assert verified.message.startswith(f"node {NODE}: BMC {url} did not answer GET /redfish/v1/: ConnectError")
    assert verified.message.endswith(
        'its TLS certificate is not trusted (annotate repairbot.io/bmc-insecure="true" to skip)'
    )
    assert redfish_sim.requests == [], "no request got through the handshake"

    insecure = await asyncio.to_thread(bmc_fleet.power_cycle, "gpu-node-002")

    assert insecure.ok and insecure.details.get("reset") == "PowerCycle"


async def test_a_missing_secret_is_named(redfish_sim: RedfishSim, bmc_fleet: BmcFleet) -> None:
    redfish_sim.add_system(NODE)
    bmc_fleet.add_node(NODE, redfish_sim.url, secret="repairbot/nobody-created-this")

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert outcome == ActionOutcome(False, f"node {NODE}: BMC Secret repairbot/nobody-created-this does not exist")
    assert redfish_sim.requests == [], "no BMC is asked without credentials"


async def test_an_unreachable_bmc_fails_with_the_address(bmc_fleet: BmcFleet, unused_local_url: str) -> None:
    url = unused_local_url
    bmc_fleet.add_node(NODE, url, extra={ANNOTATION_BMC_INSECURE: "true"})

    outcome = await asyncio.to_thread(bmc_fleet.power_cycle, NODE)

    assert not outcome.ok
    assert outcome.message.startswith(f"node {NODE}: BMC {url} did not answer GET /redfish/v1/: ConnectError")


async def test_power_state_of_an_unknown_node_raises_with_the_node_named(bmc_fleet: BmcFleet) -> None:
    with pytest.raises(RedfishError, match="node gpu-node-404: cannot read the Node \\(404"):
        await asyncio.to_thread(bmc_fleet.bmc.power_state, "gpu-node-404")
