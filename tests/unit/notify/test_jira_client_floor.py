"""The jira client RepairBot may be installed with must search where Jira Cloud still answers (/search/jql)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import jira
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def _jira_requirement() -> Requirement:
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    [found] = [Requirement(d) for d in dependencies if Requirement(d).name == "jira"]
    return found


def test_no_jira_release_that_searches_clouds_removed_endpoint_satisfies_the_requirement() -> None:
    # 3.8.0 sends Cloud searches to /rest/api/2/search, which Jira Cloud answers with 410 (CHANGE-2046);
    # 3.10.0-3.10.3 never reached PyPI; 3.10.4 is the first there whose search_issues routes Cloud to /search/jql.
    specifier = _jira_requirement().specifier
    assert not specifier.contains("3.8.0") and not specifier.contains("3.10.3")
    assert specifier.contains(version("jira"))  # the installed client is one the requirement admits


def test_the_installed_client_has_the_cloud_search_repairbot_calls() -> None:
    assert callable(getattr(jira.JIRA, "enhanced_search_issues", None))
