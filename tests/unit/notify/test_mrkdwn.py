"""Text from outside RepairBot is shown by Slack, not parsed; cuts keep links whole and say they cut."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from repairbot.notify.mrkdwn import TRUNCATED, cut, escape, link, within_budget
from repairbot.notify.view import RepairView
from repairbot_sim.slack_blocks import mentions


def test_an_alerts_control_characters_are_shown_not_parsed() -> None:
    text = escape("temp > 90 & rising <!channel> <@U0SRE00001>")
    assert text == "temp &gt; 90 &amp; rising &lt;!channel&gt; &lt;@U0SRE00001&gt;"
    assert mentions({"text": text}) == []


def test_a_link_keeps_its_url_and_shows_its_label() -> None:
    expected = "<https://g.example/d?a=1&amp;b=2|Grafana &lt;dash&gt;>"
    assert link("https://g.example/d?a=1&b=2", "Grafana <dash>") == expected
    assert link("https://x.example/a|b", "x") == "<https://x.example/a%7Cb|x>"


def test_a_cut_never_splits_a_link_or_an_entity_and_says_it_cut() -> None:
    text = "see " + link("https://jira.example/browse/OPS-1", "OPS-1") + " now &amp; later"
    for limit in range(len(TRUNCATED), len(text)):
        short = cut(text, limit)
        assert len(short) <= limit and short.endswith(TRUNCATED)
        body = short.removesuffix(TRUNCATED)
        assert body.count("<") == body.count(">") and (body.count("&") == body.count(";"))
    assert cut(text, len(text)) == text


@given(st.text(alphabet="ab&<>|; ", max_size=400), st.integers(min_value=len(TRUNCATED), max_value=400))
def test_any_escaped_text_cut_fits_and_stays_unparsed(raw: str, limit: int) -> None:
    short = cut(escape(raw), limit)
    assert len(short) <= limit
    assert "<" not in short and ">" not in short  # nothing from outside becomes markup
    body = short.removesuffix(TRUNCATED)
    assert not body.endswith(("&", "&a", "&am", "&amp", "&l", "&lt", "&g", "&gt"))


def test_blocks_over_the_message_budget_lose_their_longest_text_first() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "node gpu-17"}},
              {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3000}},
              {"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3000}}]  # fmt: skip
    fitted = within_budget(blocks, budget=4000)
    lengths = [len(b["text"]["text"]) for b in fitted]
    assert sum(lengths) <= 4000 and lengths[0] == len("node gpu-17")
    assert fitted[1]["text"]["text"].endswith(TRUNCATED) and lengths[2] == 3000  # the first longest gave way


def test_a_view_links_the_ticket_the_dispatcher_stored() -> None:
    obj = {"metadata": {"name": "gpu-1-x"}, "spec": {"nodeName": "gpu-1"},
           "status": {"phase": "Draining", "jira": {"key": "OPS-1", "url": "https://jira.example/browse/OPS-1"}}}
    assert RepairView.from_resource(obj).jira_url == "https://jira.example/browse/OPS-1"
