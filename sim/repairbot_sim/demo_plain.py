"""The demo as plain timestamped lines, for logs and CI (``repairbot demo --no-live``, or stdout not a TTY).

One line per event — ``21:55:03.666  +12.4s  gpu-node-009   gpu-reset: failed — validate failed: …`` —
a line when the show moves to its next act, and at the end the nodes and
``kubectl get gpurepairs`` tables as kubectl would print them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TextIO

from repairbot_sim.demo_feed import DemoEvent, EventKind, Frame
from repairbot_sim.demo_tables import node_table, repair_table

MARK = {
    EventKind.NOTE: "==", EventKind.INJECT: ">>", EventKind.OPENED: "++", EventKind.STEP: "  ",
    EventKind.SLACK: "#", EventKind.LOG: "!!",
}  # fmt: skip


def event_line(event: DemoEvent, started: datetime) -> str:
    elapsed = (event.at - started).total_seconds()
    mark = "!!" if event.bad else MARK.get(event.kind, "  ")
    stamp = f"{event.at:%H:%M:%S}.{event.at.microsecond // 1000:03d}"
    return f"{stamp} {elapsed:+7.1f}s {mark} {event.node:<13} {event.text}".rstrip()


class PlainView:
    """Prints each event as it comes, and the two tables once the show is over."""

    def __init__(self, out: TextIO, started: datetime) -> None:
        self.out = out
        self.started = started
        self._frame: Frame | None = None

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def start(self) -> None:
        self._print(f"RepairBot demo started {self.started:%Y-%m-%d %H:%M:%S} UTC")

    def event(self, event: DemoEvent) -> None:
        self._print(event_line(event, self.started))

    def show(self, frame: Frame) -> None:
        self._frame = frame  # the acts are told as events; the tables are printed once, at the end

    def stop(self) -> None:
        if self._frame is None:
            return
        self._print("\nNodes at the end")
        for line in node_table(self._frame.nodes).lines():
            self._print(line)
        self._print("\n$ kubectl get gpurepairs")
        for line in repair_table(self._frame.repairs).lines():
            self._print(line)
