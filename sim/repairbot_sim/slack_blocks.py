"""What Slack refuses in a message, and which mentions it parses out of one: the fake Slack's message rules.

The limits are Slack's published ones (Block Kit reference: blocks, section,
header, context, markdown, text object; ``chat.postMessage``/``chat.update``):
at most 50 blocks; a header's ``plain_text`` at most 150 characters; a section's
text at most 3,000, its fields at most 10 of at most 2,000 each; a context at
most 10 elements, each text at most 3,000; a markdown block at most 12,000; a
``block_id`` at most 255 and unique in the message; every text at least 1
character. A message's ``text`` over 40,000 characters is ``msg_too_long``.

Slack also refuses a message whose blocks hold too much text in all
(``msg_blocks_too_long``). That limit is not published: Slack's SDK team puts
it at "12,000 text characters with a buffer for block containers"
(slackapi/bolt-js#2509), and a refusal was reported at 11,341 characters of
section/header/rich_text text (slackapi/bolt-js#2867). The fake refuses more
than 11,000 characters of block text in all, under both.

An ``actions`` block holds 1 to 25 elements; the fake models buttons (the
Button element reference): ``text`` a ``plain_text`` of at most 75 characters,
``action_id`` at most 255 and unique in its block, ``value`` at most 2,000,
``url`` at most 3,000, ``style`` ``primary`` or ``danger``.

Lengths are counted as Slack counts them: the characters (code points) of the
string as sent, so an escaped ``&amp;`` counts five. Block types, elements and
fields the fake does not model (``image``, select menus, accessories, …) are
refused as unsupported rather than waved through: RepairBot sends none, and
one that starts to must teach the fake its rules first.

Refusals name the rule and its JSON pointer the way Slack does
(``must be less than 3001 characters [json-pointer:/blocks/0/text/text]``),
every broken rule at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_BLOCKS = 50
MAX_TEXT = 40_000
MAX_BLOCKS_TEXT = 11_000
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
HEADER_TEXT_LIMIT = 150
CONTEXT_TEXT_LIMIT = 3000
MARKDOWN_BLOCK_LIMIT = 12_000
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
BLOCK_ID_LIMIT = 255
MAX_ACTIONS_ELEMENTS = 25
BUTTON_TEXT_LIMIT = 75
ACTION_ID_LIMIT = 255
BUTTON_VALUE_LIMIT = 2000
BUTTON_URL_LIMIT = 3000
BUTTON_STYLES = ("primary", "danger")
BUTTON_FIELDS = {"type", "text", "action_id", "value", "url", "style", "confirm", "accessibility_label"}
MODELED_BLOCKS = {
    "section": {"type", "block_id", "text", "fields", "expand"},
    "header": {"type", "block_id", "text"},
    "context": {"type", "block_id", "elements"},
    "divider": {"type", "block_id"},
    "markdown": {"type", "block_id", "text"},
    "actions": {"type", "block_id", "elements"},
}
"""Block types the fake checks, with the fields each may carry (others are refused as unsupported)."""
TEXT_FIELDS = {"plain_text": {"type", "text", "emoji"}, "mrkdwn": {"type", "text", "verbatim"}}

_MENTION = re.compile(r"<(@[UW][A-Z0-9]+|!subteam\^[A-Z0-9]+|!here|!channel|!everyone)(?:\|[^<>]*)?>")


@dataclass(frozen=True, slots=True)
class Problem:
    """Slack's refusal of a message: its ``error`` code and, for blocks, each broken rule with its pointer."""

    error: str
    messages: tuple[str, ...] = ()


def slack_length(text: str) -> int:
    """Characters as Slack counts them: code points of the text as sent (entities count in full)."""
    return len(text)


def parse_blocks(raw: Any) -> list[Any] | None:
    """The ``blocks`` argument as the SDK sends it (a JSON array, or a JSON string of one); None when absent."""
    if raw is None:
        return None
    blocks = json.loads(raw) if isinstance(raw, str) else raw
    return blocks if isinstance(blocks, list) else None


def message_problem(body: dict[str, Any]) -> Problem | None:
    """The first kind of refusal Slack gives ``body`` (a ``chat.postMessage``/``chat.update`` call), else None."""
    text = body.get("text")
    if isinstance(text, str) and slack_length(text) > MAX_TEXT:
        return Problem("msg_too_long", (f"text is {slack_length(text)} characters; the limit is {MAX_TEXT}",))
    raw = body.get("blocks")
    if raw is None:
        return None
    try:
        blocks = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return Problem("invalid_blocks_format", ("blocks is not valid JSON",))
    if not isinstance(blocks, list):
        return Problem("invalid_blocks_format", ("blocks must be an array",))
    broken = list(_blocks_problems(blocks))
    if broken:
        return Problem("invalid_blocks", tuple(broken))
    total = sum(slack_length(t) for t in _texts(blocks))
    if total > MAX_BLOCKS_TEXT:
        why = f"blocks hold {total} characters of text; the limit is {MAX_BLOCKS_TEXT}"
        return Problem("msg_blocks_too_long", (why,))
    return None


def mentions(body: dict[str, Any]) -> list[str]:
    """The mentions Slack parses out of a message, in order, once each: ``<@U…>``, ``<!subteam^S…>``, ``<!here>``…

    Only mrkdwn is parsed: the message ``text`` (unless ``mrkdwn`` is false),
    mrkdwn text objects and markdown blocks; ``plain_text`` shows ``<!here>``
    as those characters, and a plain ``@name`` is never a mention. Labels
    (``<!subteam^S1|@oncall>``) are dropped: the id is what Slack notifies.
    """
    texts: list[str] = []
    if isinstance(body.get("text"), str) and body.get("mrkdwn") is not False:
        texts.append(body["text"])
    try:
        blocks = parse_blocks(body.get("blocks")) or []
    except ValueError:
        blocks = []
    texts.extend(_texts(blocks, mrkdwn_only=True))
    found = [f"<{m.group(1)}>" for text in texts for m in _MENTION.finditer(text)]
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- the rules


def _blocks_problems(blocks: list[Any]) -> Iterator[str]:
    if len(blocks) > MAX_BLOCKS:
        yield f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"
    seen_ids: set[str] = set()
    markdown_total = 0
    for index, block in enumerate(blocks):
        at = f"/blocks/{index}"
        if not isinstance(block, dict):
            yield f"must provide an object [json-pointer:{at}]"
            continue
        kind = block.get("type")
        if kind not in MODELED_BLOCKS:
            yield f"unsupported type: {kind} [json-pointer:{at}/type]"
            continue
        for key in sorted(set(block) - MODELED_BLOCKS[kind]):
            yield f"unsupported field: {key} [json-pointer:{at}/{key}]"
        if "block_id" in block:
            yield from _block_id_problems(block["block_id"], at, seen_ids)
        if kind == "header":
            yield from _text_problems(block.get("text"), f"{at}/text", HEADER_TEXT_LIMIT, kinds=("plain_text",))
        elif kind == "section":
            yield from _section_problems(block, at)
        elif kind == "context":
            yield from _context_problems(block.get("elements"), f"{at}/elements")
        elif kind == "actions":
            yield from _actions_problems(block.get("elements"), f"{at}/elements")
        elif kind == "markdown":
            text = block.get("text")
            yield from _string_problems(text, f"{at}/text", MARKDOWN_BLOCK_LIMIT)
            markdown_total += slack_length(text) if isinstance(text, str) else 0
    if markdown_total > MARKDOWN_BLOCK_LIMIT:
        yield f"markdown blocks hold {markdown_total} characters in all; the limit is {MARKDOWN_BLOCK_LIMIT}"


def _block_id_problems(block_id: Any, at: str, seen: set[str]) -> Iterator[str]:
    if not isinstance(block_id, str) or not block_id:
        yield f"must be a non-empty string [json-pointer:{at}/block_id]"
    elif slack_length(block_id) > BLOCK_ID_LIMIT:
        yield f"must be less than {BLOCK_ID_LIMIT + 1} characters [json-pointer:{at}/block_id]"
    elif block_id in seen:
        yield f"duplicate block_id {block_id!r} [json-pointer:{at}/block_id]"
    else:
        seen.add(block_id)


def _section_problems(block: dict[str, Any], at: str) -> Iterator[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        yield f"must define either `text` or `fields` [json-pointer:{at}/type]"
    if text is not None:
        yield from _text_problems(text, f"{at}/text", SECTION_TEXT_LIMIT)
    if fields is not None:
        yield from _text_array_problems(fields, f"{at}/fields", MAX_FIELDS, FIELD_TEXT_LIMIT)


def _context_problems(elements: Any, at: str) -> Iterator[str]:
    yield from _text_array_problems(elements, at, MAX_CONTEXT_ELEMENTS, CONTEXT_TEXT_LIMIT)


def _actions_problems(elements: Any, at: str) -> Iterator[str]:
    """1..25 interactive elements; buttons are the ones modelled, each ``action_id`` unique in the block."""
    if not isinstance(elements, list) or not elements:
        yield f"must provide a non-empty array [json-pointer:{at}]"
        return
    if len(elements) > MAX_ACTIONS_ELEMENTS:
        yield f"no more than {MAX_ACTIONS_ELEMENTS} items allowed [json-pointer:{at}]"
    seen: set[str] = set()
    for index, element in enumerate(elements):
        here = f"{at}/{index}"
        if not isinstance(element, dict):
            yield f"must provide an object [json-pointer:{here}]"
        elif element.get("type") != "button":
            yield f"unsupported type: {element.get('type')} [json-pointer:{here}/type]"
        else:
            yield from _button_problems(element, here, seen)


def _button_problems(button: dict[str, Any], at: str, seen: set[str]) -> Iterator[str]:
    for key in sorted(set(button) - BUTTON_FIELDS):
        yield f"unsupported field: {key} [json-pointer:{at}/{key}]"
    yield from _text_problems(button.get("text"), f"{at}/text", BUTTON_TEXT_LIMIT, kinds=("plain_text",))
    action_id = button.get("action_id")
    if action_id is not None:
        yield from _string_problems(action_id, f"{at}/action_id", ACTION_ID_LIMIT)
        if isinstance(action_id, str) and action_id in seen:
            yield f"duplicate action_id {action_id!r} [json-pointer:{at}/action_id]"
        seen.add(str(action_id))
    if "value" in button:
        yield from _string_problems(button["value"], f"{at}/value", BUTTON_VALUE_LIMIT)
    if "url" in button:
        yield from _string_problems(button["url"], f"{at}/url", BUTTON_URL_LIMIT)
    if "style" in button and button["style"] not in BUTTON_STYLES:
        yield f"must be one of {', '.join(BUTTON_STYLES)} [json-pointer:{at}/style]"


def buttons(blocks: list[Any] | None) -> list[dict[str, Any]]:
    """Every button of a message's ``actions`` blocks, in order, each with its block's ``block_id``."""
    found: list[dict[str, Any]] = []
    for block in blocks or ():
        if isinstance(block, dict) and block.get("type") == "actions":
            for element in block.get("elements") or ():
                if isinstance(element, dict) and element.get("type") == "button":
                    found.append({**element, "block_id": block.get("block_id", "")})
    return found


def _text_array_problems(items: Any, at: str, max_items: int, text_limit: int) -> Iterator[str]:
    """A non-empty array of at most ``max_items`` text objects of at most ``text_limit`` characters each."""
    if not isinstance(items, list) or not items:
        yield f"must provide a non-empty array [json-pointer:{at}]"
        return
    if len(items) > max_items:
        yield f"no more than {max_items} items allowed [json-pointer:{at}]"
    for index, item in enumerate(items):
        yield from _text_problems(item, f"{at}/{index}", text_limit)


def _text_problems(
    obj: Any, at: str, limit: int, *, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")
) -> Iterator[str]:
    """A text object: one of ``kinds``, only its own fields, a text of 1..``limit`` characters."""
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        yield f"failed to match all allowed schemas [json-pointer:{at}]"
        return
    for key in sorted(set(obj) - TEXT_FIELDS[obj["type"]]):
        yield f"unsupported field: {key} [json-pointer:{at}/{key}]"
    yield from _string_problems(obj.get("text"), f"{at}/text", limit)


def _string_problems(text: Any, at: str, limit: int) -> Iterator[str]:
    if not isinstance(text, str):
        yield f"must provide a string [json-pointer:{at}]"
    elif not text:
        yield f"must be more than 0 characters [json-pointer:{at}]"
    elif slack_length(text) > limit:
        yield f"must be less than {limit + 1} characters [json-pointer:{at}]"


def _texts(blocks: list[Any], *, mrkdwn_only: bool = False) -> Iterator[str]:
    """Every text a block list shows (mrkdwn ones only, when asked): what Slack counts and parses."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "markdown" and isinstance(block.get("text"), str):
            yield block["text"]
            continue
        objects: list[Any] = [block.get("text")]
        for key in ("fields", "elements"):
            if isinstance(block.get(key), list):
                objects.extend(block[key])
        for obj in objects:
            shown = isinstance(obj, dict) and isinstance(obj.get("text"), str)
            if shown and (not mrkdwn_only or obj.get("type") == "mrkdwn"):
                yield obj["text"]
