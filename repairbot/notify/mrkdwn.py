"""Slack's mrkdwn written safely: other people's text escaped, RepairBot's own links kept, every limit kept.

Slack parses ``&``, ``<`` and ``>`` in mrkdwn: an alert saying ``temp > 90 &
rising <!channel>`` would page the whole channel and lose characters, so text
from alerts, findings, node names and history is escaped (``&amp;``, ``&lt;``,
``&gt;``, Slack's formatting reference), while the links and mentions RepairBot
writes itself (``<url|label>``, ``<!subteam^S…>``) are built here and kept.

Slack refuses a block whose text is over its limit (``invalid_blocks``) and
counts the text as sent — an ``&amp;`` is five characters — so limits are
applied to the escaped text, and a cut never splits an entity or a ``<…>``
token: what is cut ends in a visible :data:`TRUNCATED`, never a broken link.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

TRUNCATED = "… (truncated)"
"""What a reader sees where RepairBot cut a text to fit Slack."""
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
CONTEXT_LIMIT = 3000
MAX_CONTEXT_ELEMENTS = 10
BLOCKS_TEXT_BUDGET = 10_000
"""All text in one message's blocks. Slack refuses more with ``msg_blocks_too_long`` at an unpublished limit
(its SDK team says about 12,000 less container overhead; 11,341 was seen refused): RepairBot stays well under."""
MIN_SHARE = 200
"""No text is cut below this to fit the budget: the longest texts give way first."""

_TOKEN = re.compile(r"<[^<>]*>|&[a-z]+;")


def escape(text: str) -> str:
    """``text`` shown as it is: Slack's three control characters as the entities Slack decodes."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """``<url|label>``: a link RepairBot writes, its label shown as it is (a ``|`` in the URL would end it)."""
    return f"<{escape(url).replace('|', '%7C')}|{escape(label)}>"


def cut(text: str, limit: int) -> str:
    """``text`` (mrkdwn as sent) in at most ``limit`` characters, ending in :data:`TRUNCATED` if it was cut.

    The cut backs off to before any entity or ``<…>`` token it would split.
    """
    if len(text) <= limit:
        return text
    keep = max(0, limit - len(TRUNCATED))
    for token in _TOKEN.finditer(text):
        if token.start() >= keep:
            break
        if keep < token.end():
            keep = token.start()
            break
    return text[:keep].rstrip() + TRUNCATED


def cut_plain(text: str, limit: int) -> str:
    """``plain_text`` (nothing parsed) in at most ``limit`` characters, ending in :data:`TRUNCATED` if cut."""
    return text if len(text) <= limit else text[: max(0, limit - len(TRUNCATED))].rstrip() + TRUNCATED


def text_object(text: str, limit: int, *, plain: bool = False) -> dict[str, Any]:
    """A text object cut to ``limit``: ``mrkdwn`` (escaped by the caller), or ``plain_text`` with emoji."""
    if plain:
        return {"type": "plain_text", "text": cut_plain(text, limit) or " ", "emoji": True}
    return {"type": "mrkdwn", "text": cut(text, limit) or " "}


def within_budget(blocks: list[dict[str, Any]], budget: int = BLOCKS_TEXT_BUDGET) -> list[dict[str, Any]]:
    """``blocks`` whose texts add up to at most ``budget``: the longest text is cut first, none below MIN_SHARE.

    Slack's per-block limits allow more text in one message than the message
    may hold in all; cutting the longest first keeps the short facts (node,
    phase, action) whole and cuts the long ones (findings, an alert's prose).
    """
    texts = list(_text_objects(blocks))
    total = sum(len(obj["text"]) for obj in texts)
    while total > budget:
        longest = max(texts, key=lambda obj: len(obj["text"]))
        size = len(longest["text"])
        target = max(MIN_SHARE, size - (total - budget))
        if target >= size:
            break  # every text is down to its share: the caller's layout holds too many texts
        shorten = cut_plain if longest["type"] == "plain_text" else cut
        shorter = shorten(longest["text"], target)
        total -= size - len(shorter)
        longest["text"] = shorter
    return blocks


def _text_objects(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for block in blocks:
        candidates = [block.get("text"), *(block.get("fields") or ()), *(block.get("elements") or ())]
        yield from (obj for obj in candidates if isinstance(obj, dict) and isinstance(obj.get("text"), str))
