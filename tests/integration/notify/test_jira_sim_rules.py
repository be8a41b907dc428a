"""The fake Jira answers as Jira does: screens, screenless transitions, limits, Cloud's search and login.

Raw HTTP (``requests``, what the jira client itself sends with), so each rule is seen in Jira's own body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from repairbot_sim.jira import JiraProject, JiraSim
from repairbot_sim.jira_project import EDIT_SCREEN

MakeJira = Callable[..., JiraSim]
PAT = {"Authorization": "Bearer jira-pat"}


def call(sim: JiraSim, method: str, path: str, **kwargs: Any) -> requests.Response:
    if sim.cloud:
        kwargs.setdefault("auth", (sim.user, sim.password))
    else:
        kwargs.setdefault("headers", PAT)
    return requests.request(method, f"{sim.url}{path}", timeout=5, **kwargs)


def ticket(sim: JiraSim, **fields: Any) -> str:
    body = {"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "gpu-17", **fields}}
    answer = call(sim, "POST", "/rest/api/2/issue", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


def test_a_field_off_the_edit_screen_is_refused_with_jiras_body_and_nothing_changes(make_jira: MakeJira) -> None:
    sim = make_jira(project=JiraProject(edit_screen=EDIT_SCREEN - {"priority"}))
    key = ticket(sim)
    answer = call(sim, "PUT", f"/rest/api/2/issue/{key}", json={"fields": {"priority": {"name": "Highest"},
                                                                          "labels": ["ok"]}})  # fmt: skip
    assert answer.status_code == 400
    assert answer.json() == {"errorMessages": [], "errors": {
        "priority": "Field 'priority' cannot be set. It is not on the appropriate screen, or unknown."}}
    assert sim.issues[key].fields["priority"] == {"name": "Medium"} and "labels" not in sim.issues[key].fields


def test_a_comment_inside_a_transition_without_a_screen_is_dropped_with_204(make_jira: MakeJira) -> None:
    sim = make_jira()
    key = ticket(sim)
    body = {"transition": {"id": "21"}, "update": {"comment": [{"add": {"body": "closing"}}]}}
    answer = call(sim, "POST", f"/rest/api/2/issue/{key}/transitions", json=body)
    assert answer.status_code == 204 and sim.issues[key].status == "Done" and sim.comments_of(key) == []
    listed = call(sim, "GET", f"/rest/api/2/issue/{key}/transitions").json()["transitions"]
    assert listed == [] or all(t["hasScreen"] is False for t in listed)


def test_text_labels_and_values_over_jiras_limits_are_refused(make_jira: MakeJira) -> None:
    sim = make_jira()
    key = ticket(sim)
    long_comment = call(sim, "POST", f"/rest/api/2/issue/{key}/comment", json={"body": "x" * 32_768})
    assert long_comment.status_code == 400 and long_comment.json()["errors"] == {
        "comment": "The entered text is too long. It exceeds the allowed limit of 32767 characters."}
    emoji = call(sim, "POST", f"/rest/api/2/issue/{key}/comment", json={"body": "🔥" * 16_384})  # 32,768 UTF-16 units
    assert emoji.status_code == 400
    body = {"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "s" * 256,
                       "labels": ["gpu node"], "priority": {"name": "P0"}}}  # fmt: skip
    refused = call(sim, "POST", "/rest/api/2/issue", json=body).json()["errors"]
    assert refused == {"summary": "Summary must be less than 255 characters.",
                       "labels": "The label 'gpu node' contains spaces which is invalid.",
                       "priority": "The priority selected is invalid."}  # fmt: skip
    too_long = call(sim, "POST", "/rest/api/2/issue", json={"fields": {**body["fields"], "summary": "s",
                    "priority": {"name": "High"}, "labels": ["l" * 256]}})  # fmt: skip
    assert "exceeds the maximum length for a single label of 255 characters" in too_long.json()["errors"]["labels"]
    wrong_type = call(sim, "POST", "/rest/api/2/issue", json={"fields": {"project": {"key": "OPS"}, "summary": "s",
                      "issuetype": {"name": "Sub-task"}}})  # fmt: skip
    assert wrong_type.json()["errors"] == {"issuetype": "valid issue type is required"}


def test_cloud_has_only_search_jql_with_page_tokens_and_server_only_search(make_jira: MakeJira) -> None:
    cloud, server = make_jira(cloud=True), make_jira()
    for _ in range(3):
        ticket(cloud)
    for version in ("2", "3"):
        gone = call(cloud, "GET", f"/rest/api/{version}/search", params={"jql": "project = OPS"})
        assert gone.status_code == 410
        assert "migrate to the /rest/api/3/search/jql API" in gone.json()["errorMessages"][0]
    first = call(cloud, "GET", "/rest/api/3/search/jql", params={"jql": "project = OPS", "maxResults": 2}).json()
    assert first["issues"] == [{"id": "10001"}, {"id": "10002"}] and not first["isLast"]  # ids only, no total
    rest = call(cloud, "POST", "/rest/api/3/search/jql", json={"jql": "project = OPS", "fields": ["summary"],
                                                               "nextPageToken": first["nextPageToken"]}).json()
    assert [i["key"] for i in rest["issues"]] == ["OPS-3"] and rest["isLast"]
    assert call(cloud, "GET", "/rest/api/3/search/jql", params={"jql": "order by key"}).status_code == 400  # unbounded
    assert call(server, "GET", "/rest/api/2/search/jql", params={"jql": "project = OPS"}).status_code == 404
    assert call(server, "GET", "/rest/api/2/search", params={"jql": "project = OPS"}).json()["total"] == 0


def test_cloud_logs_in_with_email_and_api_token_only_and_server_with_a_pat_too(make_jira: MakeJira) -> None:
    cloud, server = make_jira(cloud=True), make_jira()
    assert call(cloud, "GET", "/rest/api/2/serverInfo", headers=PAT, auth=None).status_code == 401
    assert call(cloud, "GET", "/rest/api/2/serverInfo").json()["deploymentType"] == "Cloud"
    assert call(server, "GET", "/rest/api/2/serverInfo").json()["deploymentType"] == "Server"
    assert call(server, "GET", "/rest/api/2/serverInfo", headers={}, auth=(server.user, server.password)).ok


def test_an_upload_without_the_xsrf_header_is_refused_and_one_with_it_is_attached(make_jira: MakeJira) -> None:
    sim = make_jira()
    key = ticket(sim)
    files = {"file": ("nodes.txt", b"gpu-1\tBlocked\n", "text/plain")}
    assert call(sim, "POST", f"/rest/api/2/issue/{key}/attachments", files=files).status_code == 403
    made = call(sim, "POST", f"/rest/api/2/issue/{key}/attachments", files=files,
                headers={**PAT, "X-Atlassian-Token": "no-check"})  # fmt: skip
    assert made.status_code == 200 and made.json()[0]["filename"] == "nodes.txt"
    assert sim.attachments_of(key) == {"nodes.txt": b"gpu-1\tBlocked\n"}
