"""The sandbox installs exactly the access objects the chart renders (sim/repairbot_sim/data/sandbox-rbac.yaml)."""

from __future__ import annotations

from typing import Any

from write_sandbox_rbac import COMMAND, rendered_objects, snapshot_text

from repairbot_sim.access import SANDBOX_BREAKER_CONFIGMAP, SANDBOX_LEASE, SANDBOX_RBAC, load_sandbox_rbac


def test_the_sandbox_rbac_snapshot_is_the_chart_rendered_with_the_sandbox_values(chart: Any) -> None:
    assert load_sandbox_rbac() == rendered_objects(chart), (
        f"{SANDBOX_RBAC} is stale: the chart's RBAC, ServiceAccounts or admission policy changed. "
        f"Regenerate it with `{COMMAND}` (or `make sandbox-rbac`) and commit the result."
    )
    assert SANDBOX_RBAC.read_text(encoding="utf-8") == snapshot_text(chart), f"reformatted by hand? run `{COMMAND}`"


def test_the_sandbox_grants_the_operator_its_bmc_secret_by_name_and_no_pod_deletes(chart: Any) -> None:
    rules = [rule for obj in load_sandbox_rbac() if obj["kind"] in ("Role", "ClusterRole") for rule in obj["rules"]]
    secrets = [rule for rule in rules if "secrets" in rule["resources"]]
    assert [rule.get("resourceNames") for rule in secrets] == [["bmc-credentials"]]  # fleet.BMC_SECRET
    assert not [rule for rule in rules if "pods" in rule["resources"] and "delete" in rule["verbs"]]


def test_the_sandbox_operator_uses_the_lease_and_breaker_names_the_chart_grants_it() -> None:
    """sim/repairbot_sim/operator.py and the e2e operators pass these names; RBAC names exactly them."""
    named = {
        rule["resources"][0]: rule["resourceNames"]
        for obj in load_sandbox_rbac()
        if obj["kind"] == "Role" and obj["metadata"]["name"] == "repairbot-operator"
        for rule in obj["rules"]
        if rule.get("resourceNames") and rule["resources"] != ["secrets"]
    }
    assert named == {"leases": [SANDBOX_LEASE], "configmaps": [SANDBOX_BREAKER_CONFIGMAP]}
