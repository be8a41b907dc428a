"""The ticket lifecycle against fake Jira projects shaped like real ones: screens, screenless transitions, limits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

from tenacity import wait_none

from repairbot.model import HistoryEntry, Phase
from repairbot.notify.jira import JiraNotifier, dedupe_jql, ticket_labels
from repairbot.notify.messages import StormView
from repairbot.notify.view import RepairView
from repairbot_sim.jira import JiraProject, JiraSim, JiraTransition
from repairbot_sim.jira_project import EDIT_SCREEN, LABEL_LIMIT, TEXT_LIMIT

MakeJira = Callable[..., JiraSim]


def notifier(sim: JiraSim, **kwargs: object) -> JiraNotifier:
    options: dict[str, object] = {"project": "OPS", "hardware_assignee": "dc-hardware", "wait": wait_none(),
                                  "attempts": 3}  # fmt: skip
    if sim.cloud:
        options["basic"] = (sim.user, sim.password)
    else:
        options["token"] = "jira-pat"
    options.update(kwargs)
    assert sim.url is not None
    return JiraNotifier(sim.url, **options)  # type: ignore[arg-type]


def succeeded(view: RepairView) -> RepairView:
    return dataclasses.replace(view, phase=Phase.SUCCEEDED,
                               resolved_at=view.detected_at + timedelta(minutes=14))  # type: ignore[operator]  # fmt: skip


def test_the_closing_comment_reaches_a_ticket_whose_done_transition_has_no_screen(
    make_jira: MakeJira, view: RepairView
) -> None:
    jira_sim = make_jira()  # Jira Software's simplified workflow: "Done" has no screen
    assert not any(t.has_screen for t in jira_sim.workflow["To Do"])
    jira = notifier(jira_sim)
    key = jira.ensure_ticket(view)
    jira.resolve(key, view=succeeded(view))
    issue = jira_sim.issues[key]
    assert issue.status == "Done"
    assert [c for c in jira_sim.comments_of(key) if "MTTR 14m" in c], jira_sim.comments_of(key)


def test_a_done_transition_with_a_screen_gets_the_closing_comment_once(make_jira: MakeJira, view: RepairView) -> None:
    project = JiraProject()
    project.workflow["To Do"] = [JiraTransition("21", "Done", "Done", screen=frozenset({"resolution", "comment"}))]
    jira_sim = make_jira(project=project)
    jira = notifier(jira_sim)
    key = jira.ensure_ticket(view)
    jira.resolve(key, view=succeeded(view))
    assert jira_sim.issues[key].status == "Done"
    assert sum("MTTR 14m" in c for c in jira_sim.comments_of(key)) == 1


def test_a_quarantine_where_the_edit_screen_lacks_priority_still_assigns_and_says_what_to_replace(
    make_jira: MakeJira, view: RepairView
) -> None:
    jira_sim = make_jira(project=JiraProject(edit_screen=EDIT_SCREEN - {"priority"}))
    jira = notifier(jira_sim)
    key = jira.ensure_ticket(view)
    refused = jira.escalate_quarantine(key, dataclasses.replace(view, phase=Phase.QUARANTINED))
    issue = jira_sim.issues[key]
    assert issue.fields["assignee"] == {"name": "dc-hardware"}  # the edit Jira takes still happened
    assert "replace GPU 3" in issue.comments[-1]["body"]  # and the hardware team is told what to replace
    assert issue.fields["priority"] == {"name": "Medium"}  # unchanged: not on this project's edit screen
    # The refused edit is reported, never swallowed: one refusal, naming the field and Jira's reason.
    assert [(r.code, r.retryable) for r in refused] == [("http-400", False)]
    assert "priority" in str(refused[0]) and "not on the appropriate screen" in str(refused[0])


def test_a_quarantine_where_neither_field_is_editable_reports_both_and_still_comments(
    make_jira: MakeJira, view: RepairView
) -> None:
    jira_sim = make_jira(project=JiraProject(edit_screen=EDIT_SCREEN - {"priority", "assignee"}))
    jira = notifier(jira_sim)
    key = jira.ensure_ticket(view)
    refused = jira.escalate_quarantine(key, dataclasses.replace(view, phase=Phase.QUARANTINED))
    assert sorted(r.operation for r in refused) == ["escalate-assignee", "escalate-priority"]
    assert "replace GPU 3" in jira_sim.comments_of(key)[-1]


def test_a_storm_of_800_nodes_keeps_every_node_in_its_ticket_within_jiras_limit(
    make_jira: MakeJira, view: RepairView
) -> None:
    jira_sim = make_jira()
    nodes = [f"dgx-h100-rack{i // 8:03d}-node-{i:04d}.cluster.example.internal" for i in range(800)]
    storm = StormView.of("storm-20261122", [(n, "Blocked") for n in nodes], detail="800 faults in pod 3 within 5m")
    jira = notifier(jira_sim)
    key = jira.ensure_incident_ticket(storm)
    issue = jira_sim.issues[key]
    assert len(issue.fields["description"]) <= TEXT_LIMIT
    everything = issue.fields["description"] + "".join(d.decode() for d in jira_sim.attachments_of(key).values())
    assert all(node in everything for node in nodes)  # nothing lost: the rest is attached
    # The storm grows and is rewritten: the attachment follows, and only the newest list stays attached.
    grown = StormView.of(storm.incident, [*storm.members, ("gpu-late-joiner", "Blocked")], detail=storm.detail)
    jira.update_incident(key, grown)
    attached = jira_sim.attachments_of(key)
    assert len(attached) == 1 and "gpu-late-joiner" in next(iter(attached.values())).decode()
    assert "gpu-late-joiner" not in issue.fields["description"] or len(issue.fields["description"]) <= TEXT_LIMIT


def test_a_comment_longer_than_jira_takes_is_cut_and_the_full_text_attached(
    make_jira: MakeJira, view: RepairView
) -> None:
    jira_sim = make_jira()
    jira = notifier(jira_sim)
    key = jira.ensure_ticket(view)
    text = "\n".join(f"line {i}: drain evicted pod train/llama-{i}" for i in range(2000))  # ~80,000 characters
    jira.comment(key, text)
    [comment] = jira_sim.comments_of(key)
    assert len(comment) <= TEXT_LIMIT and comment.startswith("line 0:")
    [(name, data)] = jira_sim.attachments_of(key).items()
    assert data.decode() == text and name in comment  # the comment names the attachment that holds it all
    jira.comment(key, text)  # the same long text again (a retry): one attachment, not two
    assert len(jira_sim.attachments_of(key)) == 1


def test_a_253_character_node_name_gets_labels_jira_takes_and_its_ticket_is_found_again(
    make_jira: MakeJira, view: RepairView
) -> None:
    jira_sim = make_jira()
    long_node = "gpu-" + "a" * 248 + "1"  # a DNS-subdomain node name at Kubernetes' 253-character limit
    twin_node = long_node[:-1] + "2"  # differs only in its last character
    first = dataclasses.replace(view, node=long_node, name=f"{long_node}-20260105031400")
    twin = dataclasses.replace(view, node=twin_node, name=f"{twin_node}-20260105031400")
    key = notifier(jira_sim).ensure_ticket(first)
    labels = jira_sim.issues[key].fields["labels"]
    assert all(len(label) <= LABEL_LIMIT and " " not in label for label in labels)
    assert notifier(jira_sim).ensure_ticket(first) == key  # a new process finds it by the same capped labels
    assert notifier(jira_sim).ensure_ticket(twin) != key  # and the twin node's repair is not mistaken for it
    assert set(ticket_labels(["repairbot"], long_node, first.name)) != set(
        ticket_labels(["repairbot"], twin_node, twin.name))  # fmt: skip
    assert all(len(label) <= LABEL_LIMIT for label in dedupe_jql("OPS", twin_node, twin.name).split('"')[1::2])


def test_cloud_and_server_each_search_where_they_serve_search(make_jira: MakeJira, view: RepairView) -> None:
    for cloud, served, gone in ((True, "/rest/api/2/search/jql", "/rest/api/2/search"),
                                (False, "/rest/api/2/search", "/rest/api/2/search/jql")):  # fmt: skip
        jira_sim = make_jira(cloud=cloud)
        key = notifier(jira_sim).ensure_ticket(view)
        assert notifier(jira_sim).ensure_ticket(view) == key and len(jira_sim.issues) == 1  # found, not made
        paths = [(c["path"], c["status"]) for c in jira_sim.recorded]
        assert (served, 200) in paths and not [p for p in paths if p[0] == gone], paths


def test_the_closing_step_comment_history_still_reads_in_order(make_jira: MakeJira, view: RepairView) -> None:
    jira_sim = make_jira()
    jira = notifier(jira_sim)
    key = jira.ensure_ticket(view)
    jira.comment_step(key, view, HistoryEntry("drain", "done", "3 pods evicted"))
    jira.resolve(key, view=succeeded(view))
    comments = jira_sim.comments_of(key)
    assert len(comments) == 2 and "drain" in comments[0] and "MTTR 14m" in comments[1]
