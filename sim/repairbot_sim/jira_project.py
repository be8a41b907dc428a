"""What a Jira project allows: the rules the fake Jira holds every create, edit and transition to.

A real project's shape lives in its schemes: which issue types exist, which
priorities, which fields each issue type's *create* and *edit* screens carry,
and which transitions its workflow has (each with or without a screen). Jira
refuses a field that is not on the screen for the operation with a 400 that
names the field; it refuses text over its limits, labels with spaces or over
255 characters, an unknown priority, issue type or user. A comment sent inside
a transition that has no screen is *not* refused: Jira answers 204 and drops
it. The fake reproduces each of these from a :class:`JiraProject`, so a test
can give the fake the shape of the project it stands for (e.g. an edit screen
without priority) and see what the product does about it.

The error texts are Jira's own as clients have reported them (Server/Data
Center wording unless ``cloud``, where Cloud's differs): e.g. the screen error
from a Jira Cloud create, the label and summary errors from jiralert and
tenable's Jira issues, the dropped transition comment from jira-cli #1024.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TEXT_LIMIT = 32_767  # description, comment body, any multi-line text field
SUMMARY_LIMIT = 255
LABEL_LIMIT = 255
STATUS_CATEGORY = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}

# Fields a typical Jira Software project carries on its create and edit screens.
CREATE_SCREEN = frozenset({"summary", "description", "labels", "priority", "assignee", "reporter"})
EDIT_SCREEN = frozenset({"summary", "description", "labels", "priority", "assignee", "comment"})


@dataclass(frozen=True, slots=True)
class JiraTransition:
    """One workflow transition. ``screen`` holds the fields its screen carries; none means no screen at all."""

    id: str
    name: str
    to: str
    screen: frozenset[str] | None = None

    @property
    def has_screen(self) -> bool:
        return self.screen is not None


def _transition(spec: JiraTransition | tuple[Any, ...]) -> JiraTransition:
    """A transition from ``(id, name, to)`` or ``(id, name, to, screen fields)`` as a test writes it."""
    if isinstance(spec, JiraTransition):
        return spec
    tid, name, to, *rest = spec
    return JiraTransition(str(tid), str(name), str(to), frozenset(rest[0]) if rest and rest[0] is not None else None)


def workflow_of(spec: Mapping[str, Iterable[JiraTransition | tuple[Any, ...]]]) -> dict[str, list[JiraTransition]]:
    return {status: [_transition(t) for t in transitions] for status, transitions in spec.items()}


# Jira Software's simplified workflow: every transition goes without a screen.
WORKFLOW = workflow_of({
    "To Do": [("11", "Start Progress", "In Progress"), ("21", "Done", "Done")],
    "In Progress": [("21", "Done", "Done"), ("31", "Stop Progress", "To Do")],
    "Done": [("41", "Reopen", "To Do")],
})  # fmt: skip


@dataclass(slots=True)
class JiraProject:
    """One project's schemes. ``create_screens``/``edit_screens`` map an issue type to its screen's fields;
    a type not named there has ``create_screen``/``edit_screen``."""

    key: str = "OPS"
    issue_types: tuple[str, ...] = ("Task", "Bug", "Story", "Epic", "Incident")
    priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low", "Lowest")
    default_priority: str = "Medium"
    create_screen: frozenset[str] = CREATE_SCREEN
    edit_screen: frozenset[str] = EDIT_SCREEN
    create_screens: dict[str, frozenset[str]] = field(default_factory=dict)
    edit_screens: dict[str, frozenset[str]] = field(default_factory=dict)
    workflow: dict[str, list[JiraTransition]] = field(default_factory=lambda: {k: list(v) for k, v in WORKFLOW.items()})
    users: frozenset[str] = frozenset({"repairbot", "repairbot@example.com", "dc-hardware"})

    def create_fields(self, issue_type: str) -> frozenset[str]:
        return self.create_screens.get(issue_type, self.create_screen)

    def edit_fields(self, issue_type: str) -> frozenset[str]:
        return self.edit_screens.get(issue_type, self.edit_screen)

    def issue_type_named(self, value: Any) -> str | None:
        name = value.get("name") if isinstance(value, dict) else None
        return name if name in self.issue_types else None


class FieldErrors(Exception):
    """Jira's 400 for a request's fields: ``errors`` maps each refused field to Jira's sentence about it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(str(errors))
        self.errors = errors


def java_length(text: str) -> int:
    """Jira counts text as Java does (``String.length()``): UTF-16 code units, so an emoji counts two."""
    return len(text.encode("utf-16-le")) // 2


def not_on_screen(name: str) -> str:
    return f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."


def too_long(*, cloud: bool) -> str:
    limit = f"{TEXT_LIMIT:,}" if cloud else str(TEXT_LIMIT)
    return f"The entered text is too long. It exceeds the allowed limit of {limit} characters."


@dataclass(frozen=True, slots=True)
class FieldRules:
    """The value rules of the fields RepairBot writes, for one project on one kind of deployment."""

    project: JiraProject
    cloud: bool

    def check(self, fields: Mapping[str, Any], allowed: frozenset[str], errors: dict[str, str]) -> None:
        """Add to ``errors`` every field not in ``allowed`` (the screen) and every value Jira would refuse."""
        for name, value in fields.items():
            if name not in allowed:
                errors[name] = not_on_screen(name)
                continue
            problem = self._value_problem(name, value)
            if problem:
                errors[name] = problem

    def check_update(self, update: Mapping[str, Any], allowed: frozenset[str], errors: dict[str, str]) -> None:
        """The ``update`` verbs (``{"labels": [{"add": "x"}]}``): the same screen and value rules per field."""
        for name, operations in update.items():
            if name not in allowed:
                errors[name] = not_on_screen(name)
                continue
            for operation in operations or []:
                for verb, value in (operation or {}).items():
                    problem = self._update_problem(name, verb, value)
                    if problem:
                        errors[name] = problem

    def comment_problem(self, body: Any) -> str | None:
        text = body if isinstance(body, str) else ""
        if not text.strip():
            return "Comment body can not be empty!"
        return too_long(cloud=self.cloud) if java_length(text) > TEXT_LIMIT else None

    def _update_problem(self, name: str, verb: str, value: Any) -> str | None:
        if name == "comment":
            return self.comment_problem((value or {}).get("body")) if verb == "add" else None
        if name == "labels" and verb in ("add", "set"):
            return self._labels_problem(value if isinstance(value, list) else [value])
        return self._value_problem(name, value) if verb == "set" else None

    def _value_problem(self, name: str, value: Any) -> str | None:
        if name == "summary":
            return self._summary_problem(value)
        if name == "description":
            return too_long(cloud=self.cloud) if isinstance(value, str) and java_length(value) > TEXT_LIMIT else None
        if name == "labels":
            return self._labels_problem(value) if isinstance(value, list) else "data was not an array"
        if name == "priority":
            return None if (value or {}).get("name") in self.project.priorities else "The priority selected is invalid."
        if name in ("assignee", "reporter"):
            return self._user_problem(value)
        return None

    def _summary_problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return "You must specify a summary of the issue."
        if java_length(value) > SUMMARY_LIMIT:
            return (f"Summary can't exceed {SUMMARY_LIMIT} characters." if self.cloud
                    else f"Summary must be less than {SUMMARY_LIMIT} characters.")  # fmt: skip
        return None

    def _labels_problem(self, labels: list[Any]) -> str | None:
        for label in labels:
            text = str(label)
            if any(c.isspace() for c in text):
                return (f"The label '{text}' can't contain spaces." if self.cloud
                        else f"The label '{text}' contains spaces which is invalid.")  # fmt: skip
            if len(text) > LABEL_LIMIT:
                return f"The label '{text}' exceeds the maximum length for a single label of {LABEL_LIMIT} characters."
        return None

    def _user_problem(self, value: Any) -> str | None:
        """Cloud names users by ``accountId`` only (usernames went with GDPR); Server/DC by ``name``."""
        if value is None:
            return None  # unassigned
        key = "accountId" if self.cloud else "name"
        who = (value or {}).get(key) if isinstance(value, dict) else None
        if who is None:
            return f"Specify the user by {key}."
        return None if who in self.project.users else f"User '{who}' does not exist."
