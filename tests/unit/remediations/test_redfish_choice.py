"""The Redfish protocol decisions, without a BMC: which system, which reset, which annotations."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from repairbot.remediations.power_cycle import ResetPlan, choose_reset_plan
from repairbot.remediations.redfish import (
    ANNOTATION_BMC_ADDRESS,
    ANNOTATION_BMC_INSECURE,
    ANNOTATION_BMC_SECRET,
    ANNOTATION_BMC_SYSTEM,
    BmcTarget,
    RedfishError,
    _worth_retrying,
    bmc_target,
    choose_system,
    member_paths,
    redfish_message,
    reset_capability,
)

SUSHY_ALLOWS = ["On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn"]


@pytest.mark.parametrize(
    ("allowable", "plan"),
    [
        (["On", "ForceOff", "ForceRestart", "PowerCycle"], ResetPlan(("PowerCycle",))),
        (SUSHY_ALLOWS, ResetPlan(("ForceRestart",))),
        (["ForceRestart"], ResetPlan(("ForceRestart",))),
        (["On", "ForceOff", "GracefulShutdown"], ResetPlan(("ForceOff", "On"))),
        (["ForceOn", "ForceOff"], ResetPlan(("ForceOff", "ForceOn"))),
        (["On", "ForceOn", "ForceOff"], ResetPlan(("ForceOff", "On"))),
        (None, ResetPlan(("PowerCycle",), fallback="ForceRestart")),
    ],
    ids=["power-cycle", "sushy", "force-restart-only", "off-then-on", "off-then-force-on", "on-preferred", "unknown"],
)
def test_reset_plan_prefers_power_cycle_then_force_restart_then_off_on(
    allowable: list[str] | None, plan: ResetPlan
) -> None:
    assert choose_reset_plan(allowable) == plan


@pytest.mark.parametrize(
    "allowable",
    [[], ["GracefulRestart", "GracefulShutdown", "Nmi"], ["ForceOff"], ["On"]],
    ids=["nothing", "graceful-only", "off-without-on", "on-only"],
)
def test_reset_plan_refuses_when_nothing_power_cycles_a_hung_host(allowable: list[str]) -> None:
    with pytest.raises(ValueError, match="allows no reset that power-cycles a hung host"):
        choose_reset_plan(allowable)


def test_plan_name_joins_its_steps() -> None:
    assert ResetPlan(("ForceOff", "On")).name == "ForceOff+On"


SYSTEMS = ["/redfish/v1/Systems/gpu-node-001", "/redfish/v1/Systems/gpu-node-002/"]


@pytest.mark.parametrize(
    ("members", "wanted", "chosen"),
    [
        (["/redfish/v1/Systems/1"], None, "/redfish/v1/Systems/1"),
        (["/redfish/v1/Systems/1"], "1", "/redfish/v1/Systems/1"),
        (SYSTEMS, "gpu-node-002", "/redfish/v1/Systems/gpu-node-002/"),
        (SYSTEMS, "gpu-node-001", "/redfish/v1/Systems/gpu-node-001"),
    ],
)
def test_system_is_the_named_one_or_the_only_one(members: list[str], wanted: str | None, chosen: str) -> None:
    assert choose_system(members, wanted) == chosen


@pytest.mark.parametrize(
    ("members", "wanted", "message"),
    [
        (SYSTEMS, None, "serves 2 systems (gpu-node-001, gpu-node-002) and the node names none"),
        (SYSTEMS, "gpu-node-009", "has no system 'gpu-node-009' (it has: gpu-node-001, gpu-node-002)"),
        ([], None, "lists no systems"),
        ([], "x", "has no system 'x' (it has: none)"),
    ],
)
def test_system_choice_never_guesses(members: list[str], wanted: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        choose_system(members, wanted)


def test_member_paths_skip_malformed_members() -> None:
    collection = {"Members": [{"@odata.id": "/a"}, {}, "junk", {"@odata.id": "/b"}]}
    assert member_paths(collection) == ["/a", "/b"]
    assert member_paths({}) == []


def _system(reset: dict[str, Any] | None) -> dict[str, Any]:
    return {"Id": "1", "Actions": {} if reset is None else {"#ComputerSystem.Reset": reset}}


@pytest.mark.parametrize(
    ("reset", "target", "allowable"),
    [
        ({"target": "/t", "ResetType@Redfish.AllowableValues": ["On", "PowerCycle"]}, "/t", ("On", "PowerCycle")),
        ({"target": "/t"}, "/t", None),
        ({"target": "/t", "ResetType@Redfish.AllowableValues": "garbage"}, "/t", None),
        ({"target": "/t", "ResetType@Redfish.AllowableValues": []}, "/t", ()),
    ],
    ids=["advertised", "silent", "malformed", "empty"],
)
def test_reset_capability_reads_target_and_allowable_values(
    reset: dict[str, Any], target: str, allowable: tuple[str, ...] | None
) -> None:
    capability = reset_capability(_system(reset))
    assert (capability.target, capability.allowable) == (target, allowable)


@pytest.mark.parametrize("reset", [None, {}, {"target": ""}])
def test_system_without_reset_action_is_an_error(reset: dict[str, Any] | None) -> None:
    with pytest.raises(ValueError, match=re.escape("offers no #ComputerSystem.Reset action on system '1'")):
        reset_capability(_system(reset))


def _node(annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "gpu-node-003", "annotations": annotations}}


GOOD = {ANNOTATION_BMC_ADDRESS: "https://10.0.0.5/", ANNOTATION_BMC_SECRET: "repairbot/bmc-gpu-node-003"}


@pytest.mark.parametrize(
    ("annotations", "target"),
    [
        (GOOD, BmcTarget("gpu-node-003", "https://10.0.0.5", "repairbot", "bmc-gpu-node-003")),
        (
            {**GOOD, ANNOTATION_BMC_SYSTEM: "System.Embedded.1", ANNOTATION_BMC_INSECURE: "True"},
            BmcTarget("gpu-node-003", "https://10.0.0.5", "repairbot", "bmc-gpu-node-003", "System.Embedded.1", True),
        ),
        (
            {**GOOD, ANNOTATION_BMC_INSECURE: "yes"},
            BmcTarget("gpu-node-003", "https://10.0.0.5", "repairbot", "bmc-gpu-node-003"),
        ),
    ],
    ids=["minimal", "system-and-insecure", "insecure-only-when-true"],
)
def test_bmc_target_from_annotations(annotations: dict[str, str], target: BmcTarget) -> None:
    assert bmc_target(_node(annotations)) == target


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({}, "node gpu-node-003: no BMC known; set annotation repairbot.io/bmc-address"),
        ({**GOOD, ANNOTATION_BMC_ADDRESS: "10.0.0.5"}, "repairbot.io/bmc-address='10.0.0.5' is not an http"),
        ({ANNOTATION_BMC_ADDRESS: "http://b"}, "repairbot.io/bmc-secret='' must name the BMC Secret as namespace/name"),
        ({**GOOD, ANNOTATION_BMC_SECRET: "bmc-gpu-node-003"}, "must name the BMC Secret as namespace/name"),
        ({**GOOD, ANNOTATION_BMC_SECRET: "a/b/c"}, "must name the BMC Secret as namespace/name"),
    ],
    ids=["no-address", "not-a-url", "no-secret", "secret-without-namespace", "secret-too-deep"],
)
def test_bmc_target_errors_name_the_annotation(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(RedfishError) as raised:
        bmc_target(_node(annotations))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "general", "@Message.ExtendedInfo": [{"Message": "specific"}]}}, "specific"),
        ({"error": {"message": "general"}}, "general"),
        ({"error": "flat"}, ""),
        (None, ""),
        ([], ""),
    ],
)
def test_redfish_message_prefers_the_extended_info(body: Any, message: str) -> None:
    assert redfish_message(body) == message


REQUEST = httpx.Request("POST", "http://bmc/redfish/v1/Systems/1/Actions/ComputerSystem.Reset")


@pytest.mark.parametrize(
    ("error", "idempotent", "retried"),
    [
        (httpx.ConnectError("refused", request=REQUEST), False, True),
        (httpx.ConnectTimeout("slow", request=REQUEST), False, True),
        (httpx.ReadTimeout("slow", request=REQUEST), True, True),
        (httpx.ReadTimeout("slow", request=REQUEST), False, False),  # the BMC may already have reset the host
        (httpx.RemoteProtocolError("cut", request=REQUEST), False, False),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] bad cert", request=REQUEST), True, False),
        (ValueError("not HTTP"), True, False),
    ],
    ids=["refused", "connect-timeout", "read-timeout-get", "read-timeout-post", "cut-post", "bad-cert", "other"],
)
def test_only_errors_that_time_can_fix_are_retried(error: BaseException, idempotent: bool, retried: bool) -> None:
    assert _worth_retrying(error, idempotent=idempotent) is retried
