"""The Xid/SXid catalog: NVIDIA's buckets → our actions, and the safety rules around them."""

from __future__ import annotations

import pytest

from repairbot.catalog.sxid import SxidClass, default_sxid_catalog
from repairbot.catalog.xid import (
    NVLINK5_CODES,
    RecoveryAction,
    XidCatalog,
    decode_nvlink5,
    default_catalog,
    recovery_action_to_action,
)
from repairbot.model import Action, Severity

RESET = (Action.GPU_RESET, Action.REBOOT, Action.QUARANTINE)
REBOOT = (Action.REBOOT, Action.POWER_CYCLE, Action.QUARANTINE)


@pytest.fixture(scope="module")
def catalog() -> XidCatalog:
    return default_catalog()


@pytest.mark.parametrize(
    ("code", "mnemonic", "immediate", "action", "ladder", "app_class"),
    [
        (
            13,
            "ROBUST_CHANNEL_GR_EXCEPTION / ROBUST_CHANNEL_GR_ERROR_SW_NOTIFY",
            "RESTART_APP",
            Action.NONE,
            (Action.NONE,),
            True,
        ),
        (31, "ROBUST_CHANNEL_FIFO_ERROR_MMU_ERR_FLT", "RESTART_APP", Action.NONE, (Action.NONE,), True),
        (43, "ROBUST_CHANNEL_RESETCHANNEL_VERIF_ERROR", "IGNORE", Action.NONE, (Action.NONE,), True),
        (45, "ROBUST_CHANNEL_PREEMPTIVE_REMOVAL", "WORKFLOW_XID_45", Action.NONE, (Action.NONE,), True),
        (48, "ROBUST_CHANNEL_GPU_ECC_DBE", "WORKFLOW_XID_48", Action.GPU_RESET, RESET, False),
        (
            54,
            "SILENT_RUNNING_PWR_REDUCED_CLOCKING",
            "CHECK_MECHANICALS",
            Action.QUARANTINE,
            (Action.QUARANTINE,),
            False,
        ),
        (63, "INFOROM_DRAM_RETIREMENT_EVENT", "IGNORE", Action.GPU_RESET, RESET, False),
        (64, "INFOROM_DRAM_RETIREMENT_FAILURE", "RESET_GPU", Action.GPU_RESET, RESET, False),
        (68, "ROBUST_CHANNEL_NVDEC0_ERROR", "RESTART_APP", Action.NONE, (Action.NONE,), True),
        (69, "ROBUST_CHANNEL_GR_CLASS_ERROR", "RESTART_APP", Action.NONE, (Action.NONE,), True),
        (74, "NVLINK_ERROR", "WORKFLOW_NVLINK_ERR", Action.GPU_RESET, RESET, False),
        (79, "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS", "RESTART_BM", Action.REBOOT, REBOOT, False),
        (94, "ROBUST_CHANNEL_CONTAINED_ERROR", "RESTART_APP", Action.NONE, (Action.NONE,), True),
        (95, "ROBUST_CHANNEL_UNCONTAINED_ERROR", "RESET_GPU", Action.GPU_RESET, RESET, False),
        (119, "GSP_RPC_TIMEOUT", "RESET_GPU", Action.GPU_RESET, RESET, False),
        (120, "GSP_ERROR", "RESET_GPU", Action.GPU_RESET, RESET, False),
        (151, "ROBUST_CHANNEL_KEY_ROTATION_ERROR", "RESTART_VM", Action.REBOOT, REBOOT, False),
        (154, "GPU_RECOVERY_ACTION_CHANGED", "XID_154", Action.NOTIFY, (Action.NOTIFY,), False),
        (167, "PCIE_FATAL_TIMEOUT", "", Action.NOTIFY, (Action.NOTIFY,), False),
    ],
)
def test_key_codes(
    catalog: XidCatalog,
    code: int,
    mnemonic: str,
    immediate: str,
    action: Action,
    ladder: tuple[Action, ...],
    app_class: bool,
) -> None:
    entry = catalog.lookup(code)
    assert (entry.mnemonic, entry.immediate_bucket) == (mnemonic, immediate)
    assert (entry.action, entry.default_ladder, entry.application_class) == (action, ladder, app_class)
    assert entry.finding_code == f"xid-{code}"
    assert entry.known


def test_catalog_covers_every_code_from_1_to_172(catalog: XidCatalog) -> None:
    assert [entry.code for entry in catalog] == list(range(1, 173))


def test_row_remap_pending_waits_for_the_next_drain(catalog: XidCatalog) -> None:
    assert catalog.lookup(63).defer_until_drain
    assert not catalog.lookup(64).defer_until_drain


def test_xid_79_is_the_worst_severity(catalog: XidCatalog) -> None:
    assert catalog.lookup(79).severity is Severity.FATAL


def test_unknown_code_is_notify_and_never_destructive(catalog: XidCatalog) -> None:
    entry = catalog.lookup(9999)
    assert not entry.known
    assert (entry.action, entry.severity, entry.default_ladder) == (Action.NOTIFY, Severity.WARNING, (Action.NOTIFY,))
    assert not entry.is_destructive
    assert catalog.assess(9999, "anything").action is Action.NOTIFY


def test_every_application_class_code_is_non_destructive(catalog: XidCatalog) -> None:
    app_codes = [entry for entry in catalog if entry.application_class]
    assert {13, 31, 43, 45, 68, 69, 94} <= {entry.code for entry in app_codes}
    for entry in app_codes:
        assert not any(rung.is_destructive for rung in entry.default_ladder), entry.code


def test_every_ladder_ends_in_quarantine_or_is_harmless(catalog: XidCatalog) -> None:
    for entry in catalog:
        assert entry.default_ladder[0] is entry.action, entry.code
        if any(rung.is_destructive for rung in entry.default_ladder):
            assert entry.default_ladder[-1] is Action.QUARANTINE, entry.code


@pytest.mark.parametrize("code", list(NVLINK5_CODES))
@pytest.mark.parametrize(
    ("text", "fatal", "action"),
    [
        ("NETIR_LINK_EVT Fatal XC0 i0 Link 08 (0x004505c6 0x00000002 0x00000000)", True, Action.GPU_RESET),
        ("NETIR_LINK_EVT  Fatal   XC0 i0 Link 01 (0x021425c6 0x00000000)", True, Action.GPU_RESET),
        ("NETIR_LINK_DOWN Nonfatal XC1 i2 Link 17 (0xdeadbeef)", False, Action.NOTIFY),
        ("SAW_MVB Non-fatal XC0 i0 Link 03 (0x00000021 0x00000004)", False, Action.NOTIFY),
        ("something unparseable", None, Action.NOTIFY),
    ],
)
def test_nvlink5_fatal_resets_and_nonfatal_records(
    catalog: XidCatalog, code: int, text: str, fatal: bool | None, action: Action
) -> None:
    assessment = catalog.assess(code, text)
    assert assessment.nvlink5 is not None
    assert assessment.nvlink5.fatal is fatal
    assert assessment.action is action
    assert assessment.ladder == (RESET if fatal else (Action.NOTIFY,))


def test_nvlink5_decode_fields() -> None:
    decode = decode_nvlink5(149, "NETIR_LINK_EVT Fatal XC0 i0 Link 08 (0x004505c6 0x00000002 0x00000000)")
    assert (decode.unit, decode.cross_containment, decode.instance, decode.link) == ("NETIR_LINK_EVT", "XC0", 0, 8)
    assert (decode.intrinfo, decode.error_status, decode.subcode) == (0x004505C6, 0x2, 4)
    assert decode.action is Action.GPU_RESET
    legacy = decode_nvlink5(149, "NETIR_LINK_EVT Fatal XC 1 i 2 Link 01 [0x0000000a]")
    assert (legacy.cross_containment, legacy.instance, legacy.link, legacy.intrinfo) == ("XC1", 2, 1, 0xA)
    no_link = decode_nvlink5(149, "NETIR_INT  Fatal   XC0 i0 Link -1")
    assert (no_link.unit, no_link.link, no_link.intrinfo) == ("NETIR_INT", -1, None)
    with pytest.raises(ValueError, match="xid 79"):
        decode_nvlink5(79, "Fatal")


@pytest.mark.parametrize(
    ("text", "action", "severity"),
    [
        (
            "GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)",
            Action.GPU_RESET,
            Severity.CRITICAL,
        ),
        ("GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)", Action.REBOOT, Severity.CRITICAL),
        ("GPU recovery action changed from 0x0 (None) to 0x4 (Drain and Reset)", Action.GPU_RESET, Severity.CRITICAL),
        ("GPU recovery action changed from 0x1 (GPU Reset Required) to 0x0 (None)", Action.NONE, Severity.INFO),
        ("GPU recovery action changed from 0x0 (None) to 0x63 (future)", Action.NOTIFY, Severity.WARNING),
        ("", Action.NOTIFY, Severity.WARNING),
    ],
)
def test_xid_154_follows_the_recovery_action_in_the_line(
    catalog: XidCatalog, text: str, action: Action, severity: Severity
) -> None:
    assessment = catalog.assess(154, text)
    assert (assessment.action, assessment.severity) == (action, severity)


@pytest.mark.parametrize(
    ("value", "action"),
    [
        (RecoveryAction.NONE, Action.NONE),
        (RecoveryAction.GPU_RESET, Action.GPU_RESET),
        (RecoveryAction.NODE_REBOOT, Action.REBOOT),
        (RecoveryAction.DRAIN_P2P, Action.GPU_RESET),
        (RecoveryAction.DRAIN_AND_RESET, Action.GPU_RESET),
        (RecoveryAction.RECOVER_IMEX_DOMAIN, Action.NOTIFY),
        (RecoveryAction.BUS_RESET, Action.REBOOT),
        (RecoveryAction.SYSTEM_REBOOT, Action.REBOOT),
        (42, Action.NOTIFY),
    ],
)
def test_recovery_action_field(value: int, action: Action) -> None:
    assert recovery_action_to_action(value) is action


def test_overrides_change_action_and_ladder(catalog: XidCatalog) -> None:
    tuned = catalog.with_overrides(
        {79: {"ladder": ["power-cycle", "quarantine"]}, "13": {"action": "notify"}, "xid-92": {"action": "notify"}}
    )
    assert tuned.lookup(79).action is Action.POWER_CYCLE
    assert tuned.lookup(79).default_ladder == (Action.POWER_CYCLE, Action.QUARANTINE)
    assert tuned.lookup(13).default_ladder == (Action.NOTIFY,)
    assert tuned.lookup(92).action is Action.NOTIFY
    assert catalog.lookup(79).action is Action.REBOOT  # the original is untouched
    unknown = catalog.with_overrides({4242: {"action": "gpu-reset"}}).lookup(4242)
    assert unknown.default_ladder == RESET


def test_override_of_nvlink5_fatal_response_is_honoured(catalog: XidCatalog) -> None:
    tuned = catalog.with_overrides({149: {"action": "reboot"}})
    assert tuned.assess(149, "NETIR_LINK_EVT Fatal XC0 i0 Link 00").action is Action.REBOOT
    assert tuned.assess(149, "NETIR_LINK_EVT Nonfatal XC0 i0 Link 00").action is Action.NOTIFY


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({79: {"action": "reboooot"}}, r"xid 79: field 'action'"),
        ({79: {"ladder": ["reboot", "power-cycle"]}}, r"xid 79: field 'ladder'.*quarantine"),
        ({79: {"ladder": []}}, r"xid 79: field 'ladder'"),
        ({79: {"ladder": "reboot"}}, r"xid 79: field 'ladder'"),
        ({79: {"ladder": ["reboot", "nope"]}}, r"xid 79: field 'ladder'"),
        ({79: {"action": "gpu-reset", "ladder": ["reboot", "quarantine"]}}, r"xid 79: field 'action'"),
        ({79: {"severity": "meh"}}, r"xid 79: field 'severity'"),
        ({79: {"application_class": "yes"}}, r"xid 79: field 'application_class'"),
        ({79: {"application_class": True}}, r"xid 79: field 'application_class'"),
        ({13: {"action": "reboot"}}, r"xid 13: field 'action'"),
        ({48: {"colour": "red"}}, r"xid 48: field 'colour'"),
        ({48: "reboot"}, r"xid 48"),
        ({"abc": {"action": "notify"}}, r"xid 'abc'"),
        ({-3: {"action": "notify"}}, r"xid -3"),
    ],
)
def test_override_errors_name_code_and_field(catalog: XidCatalog, overrides: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        catalog.with_overrides(overrides)


@pytest.mark.parametrize(
    ("code", "sxid_class", "action", "ladder"),
    [
        (10003, SxidClass.FATAL, Action.REBOOT, REBOOT),
        (12020, SxidClass.ALWAYS_FATAL, Action.REBOOT, REBOOT),
        (20034, SxidClass.FATAL, Action.GPU_RESET, RESET),
        (11012, SxidClass.NON_FATAL, Action.NONE, (Action.NONE,)),
        (20001, SxidClass.NON_FATAL, Action.NONE, (Action.NONE,)),
        (20009, SxidClass.NON_FATAL, Action.NOTIFY, (Action.NOTIFY,)),
        (10004, SxidClass.FATAL, Action.NOTIFY, (Action.NOTIFY,)),
        (11004, SxidClass.FATAL, Action.NOTIFY, (Action.NOTIFY,)),
        (25010, SxidClass.FATAL, Action.NOTIFY, (Action.NOTIFY,)),
        (28003, SxidClass.FATAL, Action.NOTIFY, (Action.NOTIFY,)),
        # NVSentinel sxiderrorsmapping.csv: the 19xxx ECC-limit rows are not "every odd code".
        (19053, SxidClass.FATAL, Action.REBOOT, REBOOT),  # RX_SYS_NCISOC_PARITY_ERR
        (19061, SxidClass.FATAL, Action.REBOOT, REBOOT),  # TX_LNK_CREQ_RAM_DAT_ECC_DBE_ERR
        (19069, SxidClass.FATAL, Action.REBOOT, REBOOT),  # TX_LNK_RSP1_RAM_HDR_ECC_DBE_ERR
        (19062, SxidClass.NON_FATAL, Action.NONE, (Action.NONE,)),  # TX_LNK_CREQ_RAM_ECC_LIMIT_ERR
        (19068, SxidClass.NON_FATAL, Action.NONE, (Action.NONE,)),  # TX_LNK_COM_RAM_ECC_LIMIT_ERR
        (12022, SxidClass.FATAL, Action.REBOOT, REBOOT),  # EGRESS_NXBAR_HDR_ECC_DBE_ERR
        (15009, SxidClass.FATAL, Action.REBOOT, REBOOT),  # ROUTE_GLT_ECC_DBE_ERR
    ],
)
def test_sxid_rows(code: int, sxid_class: SxidClass, action: Action, ladder: tuple[Action, ...]) -> None:
    entry = default_sxid_catalog().lookup(code)
    assert (entry.sxid_class, entry.action, entry.default_ladder) == (sxid_class, action, ladder)
    assert entry.finding_code == f"sxid-{code}"


def test_always_fatal_sxids_are_fatal_severity() -> None:
    assert default_sxid_catalog().lookup(22003).severity is Severity.FATAL
    assert default_sxid_catalog().lookup(10004).severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("fatal", "action", "severity"),
    [
        (True, Action.NOTIFY, Severity.CRITICAL),
        (False, Action.NONE, Severity.INFO),
        (None, Action.NOTIFY, Severity.WARNING),
    ],
)
def test_unknown_sxid_is_never_destructive(fatal: bool | None, action: Action, severity: Severity) -> None:
    entry = default_sxid_catalog().lookup(31337, fatal=fatal)
    assert not entry.known
    assert (entry.action, entry.severity) == (action, severity)
    assert not entry.is_destructive


@pytest.mark.parametrize("code", [12020, 12028, 10003, 20034, 19061])
def test_a_known_sxid_on_a_non_fatal_line_is_at_most_a_notification(code: int) -> None:
    entry = default_sxid_catalog().lookup(code, fatal=False)
    assert entry.known and entry.action in (Action.NOTIFY, Action.NONE)
    assert not any(rung.is_destructive for rung in entry.default_ladder)
    assert "Non-fatal" in entry.line_says


@pytest.mark.parametrize("code", [11012, 11021])
def test_a_known_sxid_the_table_ignores_on_a_fatal_line_gets_the_fabric_reset(code: int) -> None:
    entry = default_sxid_catalog().lookup(code, fatal=True)
    assert (entry.action, entry.default_ladder) == (Action.REBOOT, REBOOT)
    assert entry.severity in (Severity.CRITICAL, Severity.FATAL)
    assert "Fatal" in entry.line_says


@pytest.mark.parametrize("code", [10004, 11004, 25010, 28003, 20009])
def test_a_fatal_thermal_cable_or_fabric_config_sxid_pages_a_person_and_resets_nothing(code: int) -> None:
    """An overheating switch or a bad cable is not cured by a reboot: NVSentinel says check it, so do we."""
    entry = default_sxid_catalog().lookup(code, fatal=True)
    assert (entry.action, entry.default_ladder) == (Action.NOTIFY, (Action.NOTIFY,))
    assert entry.severity in (Severity.CRITICAL, Severity.FATAL)
    assert "Fatal" in entry.line_says and "a person" in entry.line_says


@pytest.mark.parametrize(
    ("code", "fatal"), [(12020, True), (20034, True), (11012, False), (20009, False), (20009, None)]
)
def test_a_line_that_agrees_with_the_table_keeps_the_tables_response(code: int, fatal: bool | None) -> None:
    assert default_sxid_catalog().lookup(code, fatal=fatal) == default_sxid_catalog().lookup(code)


def test_every_sxid_ladder_ends_in_quarantine_or_is_harmless() -> None:
    for entry in default_sxid_catalog():
        if any(rung.is_destructive for rung in entry.default_ladder):
            assert entry.default_ladder[-1] is Action.QUARANTINE, entry.code
