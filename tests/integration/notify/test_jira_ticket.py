"""The real jira client against the fake Jira over a real socket: one ticket per repair, Server and Cloud."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import pytest
from tenacity import wait_none

from repairbot.model import HistoryEntry, Phase
from repairbot.notify import NotifyError
from repairbot.notify.jira import JiraNotifier
from repairbot.notify.messages import StormView
from repairbot.notify.view import RepairView
from repairbot_sim.jira import JiraSim


def notifier(sim: JiraSim, **kwargs: object) -> JiraNotifier:
    options: dict[str, object] = {"project": "OPS", "hardware_assignee": "dc-hardware", "token": "jira-pat",
                                  "wait": wait_none(), "attempts": 3}
    options.update(kwargs)
    assert sim.url is not None
    return JiraNotifier(sim.url, **options)  # type: ignore[arg-type]


def test_create_comment_and_resolve_by_transition_name(jira_sim: JiraSim, view: RepairView) -> None:
    jira = notifier(jira_sim, done_transition="done")  # case-insensitive
    key = jira.ensure_ticket(view)
    assert key == "OPS-1"
    issue = jira_sim.issues[key]
    assert {"repairbot", "gpu", "node-gpu-17", "repair-gpu-17-20260105031400"} <= set(issue.fields["labels"])
    assert "Xid 79" in issue.fields["description"] and "0000:3b:00.0" in issue.fields["description"]
    assert "1654321098765" in issue.fields["description"]

    jira.comment_step(key, view, HistoryEntry("drain", "done", "3 pods evicted"))
    done = dataclasses.replace(view, phase=Phase.SUCCEEDED,
                               resolved_at=view.detected_at + timedelta(minutes=14))  # type: ignore[operator]
    jira.resolve(key, view=done)

    assert issue.status == "Done"
    assert len(issue.comments) == 2 and "MTTR 14m" in issue.comments[1]["body"]
    creates = [c for c in jira_sim.recorded if c["method"] == "POST" and c["path"] == "/rest/api/2/issue"]
    assert len(creates) == 1
    assert creates[0]["body"]["fields"]["project"] == {"key": "OPS"}
    assert creates[0]["body"]["fields"]["issuetype"] == {"name": "Task"}
    paths = {c["path"] for c in jira_sim.recorded}
    assert "/rest/api/2/project/OPS" not in paths and "/rest/api/2/issuetype" not in paths


def test_restart_finds_the_ticket_by_jql_instead_of_creating(jira_sim: JiraSim, view: RepairView) -> None:
    first = notifier(jira_sim).ensure_ticket(view)
    again = notifier(jira_sim).ensure_ticket(view)  # a new process: no cache, no stored key
    assert again == first and len(jira_sim.issues) == 1
    searches = [c for c in jira_sim.recorded if c["path"] == "/rest/api/2/search"]
    assert searches and 'labels = "repair-gpu-17-20260105031400"' in searches[-1]["query"]["jql"]


def test_a_storm_has_one_incident_ticket_found_again_after_a_restart(jira_sim: JiraSim, view: RepairView) -> None:
    nodes = ["gpu-12", "gpu-13", "gpu-14"]
    storm = StormView.of("storm-20261122", [(n, "Blocked") for n in nodes], detail="3 faults in leaf-3 within 5m")
    first = notifier(jira_sim).ensure_incident_ticket(storm)
    again = notifier(jira_sim).ensure_incident_ticket(storm)  # a new process: found by label
    assert again == first and len(jira_sim.issues) == 1
    issue = jira_sim.issues[first]
    assert issue.fields["summary"] == "Fault storm storm-20261122: 3 nodes (gpu-12, gpu-13, gpu-14)"
    assert "incident-storm-20261122" in issue.fields["labels"]
    assert "repairbot resume --all" in issue.fields["description"]
    notifier(jira_sim).comment_step(first, view, HistoryEntry("block", "done", "breaker open"), name_node=True)
    assert " UTC — gpu-17: block" in issue.comments[-1]["body"]  # steps of several nodes interleave here


def test_stored_key_is_used_without_search(jira_sim: JiraSim, view: RepairView) -> None:
    key = notifier(jira_sim).ensure_ticket(view)
    jira_sim.recorded.clear()
    assert notifier(jira_sim).ensure_ticket(dataclasses.replace(view, jira_key=key)) == key
    assert not [c for c in jira_sim.recorded if "search" in c["path"]]


def test_other_repairs_on_the_same_node_get_their_own_ticket(jira_sim: JiraSim, view: RepairView) -> None:
    jira = notifier(jira_sim)
    first = jira.ensure_ticket(view)
    second = notifier(jira_sim).ensure_ticket(dataclasses.replace(view, name="gpu-17-20260107000000"))
    assert first != second


def test_quarantine_raises_priority_assigns_and_says_what_to_replace(jira_sim: JiraSim, view: RepairView) -> None:
    jira = notifier(jira_sim)
    key = jira.ensure_ticket(view)
    jira.escalate_quarantine(key, dataclasses.replace(view, phase=Phase.QUARANTINED))
    issue = jira_sim.issues[key]
    assert issue.fields["priority"] == {"name": "Highest"}
    assert issue.fields["assignee"] == {"name": "dc-hardware"}
    edits = [c["body"]["fields"] for c in jira_sim.recorded if c["method"] == "PUT"]
    assert edits == [{"priority": {"name": "Highest"}}, {"assignee": {"name": "dc-hardware"}}]  # one field each
    assert "replace GPU 3" in issue.comments[-1]["body"] and "1654321098765" in issue.comments[-1]["body"]


def test_jira_down_raises_after_bounded_retries(jira_sim: JiraSim, view: RepairView) -> None:
    jira_sim.down = True
    jira = notifier(jira_sim, attempts=3)
    started = time.monotonic()
    with pytest.raises(NotifyError) as caught:
        jira.ensure_ticket(view)
    assert time.monotonic() - started < 5
    assert caught.value.code == "http-503" and caught.value.retryable
    assert len(jira_sim.recorded) == 3  # serverInfo, three times: bounded
    jira_sim.down = False
    assert jira.ensure_ticket(view) == "OPS-1"  # the outbox's later try succeeds with the same notifier


def test_missing_transition_is_a_clear_non_retryable_error(jira_sim: JiraSim, view: RepairView) -> None:
    jira = notifier(jira_sim, done_transition="Resolve Issue")
    key = jira.ensure_ticket(view)
    with pytest.raises(NotifyError) as caught:
        jira.resolve(key, "fixed")
    assert not caught.value.retryable and "'Done'" in str(caught.value)


def test_basic_auth_and_wrong_credentials(jira_sim: JiraSim, view: RepairView) -> None:
    assert notifier(jira_sim, token=None, basic=("repairbot", "api-token")).ensure_ticket(view) == "OPS-1"
    with pytest.raises(NotifyError) as caught:
        notifier(jira_sim, token="wrong").ensure_ticket(view)
    assert caught.value.code == "http-401" and not caught.value.retryable


def test_cloud_mode_searches_with_search_jql(jira_cloud_sim: JiraSim, view: RepairView) -> None:
    cloud_login = ("repairbot@example.com", "api-token")  # the account's e-mail and an API token
    first = notifier(jira_cloud_sim, token=None, basic=cloud_login)
    key = first.ensure_ticket(view)
    assert first.is_cloud
    again = notifier(jira_cloud_sim, token=None, basic=cloud_login).ensure_ticket(view)
    assert again == key and len(jira_cloud_sim.issues) == 1
    paths = [c["path"] for c in jira_cloud_sim.recorded]
    assert "/rest/api/2/search/jql" in paths and "/rest/api/2/search" not in paths
    assert not first.escalate_quarantine(key, view)
    assert jira_cloud_sim.issues[key].fields["assignee"] == {"accountId": "dc-hardware"}


def test_jira_cloud_refuses_a_data_center_personal_access_token(jira_cloud_sim: JiraSim, view: RepairView) -> None:
    with pytest.raises(NotifyError) as caught:
        notifier(jira_cloud_sim).ensure_ticket(view)  # Bearer <PAT>: Data Center's login, not Cloud's
    assert caught.value.code == "http-401" and not caught.value.retryable


def test_a_rate_limit_is_waited_out_for_as_long_as_jira_says(jira_sim: JiraSim, view: RepairView) -> None:
    jira = notifier(jira_sim)  # no backoff of its own: only Retry-After makes it wait
    key = jira.ensure_ticket(view)
    jira_sim.rate_limit(1, retry_after=1)
    started = time.monotonic()
    jira.comment(key, "after the rate limit")
    assert time.monotonic() - started >= 0.9
    assert jira_sim.comments_of(key)[-1] == "after the rate limit"


def test_a_rate_limit_beyond_the_retries_is_transient_and_says_how_long_to_wait(
    jira_sim: JiraSim, view: RepairView
) -> None:
    jira = notifier(jira_sim, attempts=1)
    key = jira.ensure_ticket(view)
    jira_sim.rate_limit(5, retry_after=7)
    with pytest.raises(NotifyError) as caught:
        jira.comment(key, "rate limited")
    assert (caught.value.code, caught.value.retryable, caught.value.retry_after) == ("http-429", True, 7.0)


def test_a_400_is_permanent_and_an_empty_comment_is_refused_as_jira_does(jira_sim: JiraSim, view: RepairView) -> None:
    jira = notifier(jira_sim)
    key = jira.ensure_ticket(view)
    with pytest.raises(NotifyError) as caught:
        jira.comment(key, "   ")
    assert (caught.value.code, caught.value.retryable) == ("http-400", False)
    assert len([c for c in jira_sim.recorded if c["path"].endswith("/comment")]) == 1  # not retried
