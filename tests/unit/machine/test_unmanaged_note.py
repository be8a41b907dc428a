"""The drain's note on pods without a controller: worded, bounded, and written once per drain."""

from __future__ import annotations

from repairbot.machine.unmanaged import already_noted, unmanaged_message


def test_the_note_names_ten_pods_and_counts_the_rest() -> None:
    pods = [f"ml/shell-{i:03d}" for i in range(250)]
    message = unmanaged_message(pods)
    assert message.startswith("250 pods not managed by a controller: they will not come back after eviction: ")
    assert message.endswith("ml/shell-009 and 240 more") and "ml/shell-010" not in message
    assert len(message) < 400


def test_each_drain_names_its_unmanaged_pods_again_but_only_once() -> None:
    note = {"step": "drain", "outcome": "unmanaged-pods", "message": "1 pod …"}
    first_drain = [{"step": "start-drain", "outcome": "done"}]
    assert not already_noted(first_drain)
    assert already_noted([*first_drain, note, {"step": "continue", "outcome": "x"}])
    # the rung failed, the node is drained again for the next one: a new drain, a new note
    assert not already_noted([*first_drain, note, {"step": "reboot", "outcome": "failed"}, *first_drain])
