"""Jira's size rules for what RepairBot writes, applied before Jira refuses: text fields, labels.

Jira refuses a description or comment over 32,767 characters, counted as Java
counts them (UTF-16 code units: an emoji is two), and a label over 255
characters or with a space. A refusal loses the whole message, so RepairBot
fits first: a text over the limit is cut at a line and the full text goes to
the ticket as an attachment the cut text names (:func:`fit_text`); a label
over the limit keeps its readable start and ends in a hash of the whole, so
it stays unique per node and repair and the same name always gives the same
label (:func:`jira_label`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

TEXT_LIMIT = 32_767
LABEL_LIMIT = 255
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_HASH_CHARS = 12


def jira_length(text: str) -> int:
    """The length Jira checks: UTF-16 code units (Java's ``String.length()``)."""
    return len(text.encode("utf-16-le")) // 2


def jira_label(text: str) -> str:
    """A label Jira takes: ``[A-Za-z0-9_.-]`` only, at most 255 characters, distinct for distinct ``text``.

    A long label keeps its first characters and ends in ``-<hash of text>``,
    so two long node names that differ only at their end still get two labels.
    """
    safe = _LABEL_UNSAFE.sub("_", text).strip("_") or "_"
    if len(safe) <= LABEL_LIMIT:
        return safe
    digest = hashlib.sha256(text.encode()).hexdigest()[:_HASH_CHARS]
    return f"{safe[: LABEL_LIMIT - _HASH_CHARS - 1]}-{digest}"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file for the ticket: its name carries a hash of its content, so the same text is never attached twice."""

    filename: str
    data: bytes
    stem: str

    @classmethod
    def of(cls, stem: str, text: str) -> Attachment:
        data = text.encode()
        return cls(f"{stem}-{hashlib.sha256(data).hexdigest()[:_HASH_CHARS]}.txt", data, stem)


@dataclass(frozen=True, slots=True)
class Fitted:
    """A text cut to Jira's limit, and the attachment holding all of it (None when it fitted already)."""

    text: str
    attachment: Attachment | None = None


def fit_text(text: str, *, stem: str, limit: int = TEXT_LIMIT) -> Fitted:
    """``text`` as Jira will take it: unchanged if it fits, else cut at a line with a note naming the attachment."""
    if jira_length(text) <= limit:
        return Fitted(text)
    attachment = Attachment.of(stem, text)
    note = (f"\n\n… cut to fit Jira's {limit:,}-character limit; the full text ({jira_length(text):,} characters) "
            f"is attached as [^{attachment.filename}].")  # fmt: skip
    return Fitted(_head(text, limit - jira_length(note)) + note, attachment)


def with_attachment_note(text: str, attachment: Attachment, what: str, *, limit: int = TEXT_LIMIT) -> Fitted:
    """``text`` plus a line saying ``what`` is attached, still within ``limit`` (cut at a line if need be)."""
    note = f"\n\n{what} is attached as [^{attachment.filename}]."
    return Fitted(_head(text, limit - jira_length(note)) + note, attachment)


def _head(text: str, budget: int) -> str:
    """The longest start of ``text`` within ``budget`` UTF-16 units, ending at a line break when one is near."""
    units = text.encode("utf-16-le")[: max(budget, 0) * 2]
    head = units.decode("utf-16-le", errors="ignore")
    if len(head) < len(text):
        cut = head.rfind("\n")
        if cut > len(head) // 2:
            head = head[:cut]
    return head
