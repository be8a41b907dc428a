"""The demo's live terminal view (rich): the nodes, the GPURepairs as kubectl shows them, and a scrolling event log.

:func:`render_dashboard` is pure (a frame and events in, a rich renderable
out), so it renders into a recording ``Console`` in tests as well as into a
terminal; :class:`LiveView` redraws it in place with ``rich.live.Live``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from repairbot_sim.demo_feed import DemoEvent, EventKind, Frame
from repairbot_sim.demo_tables import Table as TableData
from repairbot_sim.demo_tables import node_table, repair_table

PHASE_STYLE = {
    "Succeeded": "bold green", "Quarantined": "bold red", "Failed": "bold red", "Blocked": "bold magenta",
    "Cancelled": "dim", "Pending": "cyan", "Cordoned": "yellow", "Draining": "yellow",
    "Remediating": "bold yellow", "Validating": "yellow",
}  # fmt: skip
STATE_STYLE = {"repairing": "yellow", "quarantined": "bold red", "faulty": "red"}
EVENT_STYLE = {
    EventKind.NOTE: "bold", EventKind.INJECT: "bold cyan", EventKind.OPENED: "blue",
    EventKind.STEP: "", EventKind.SLACK: "green", EventKind.LOG: "dim yellow",
}  # fmt: skip
MIN_EVENT_LINES = 8


def _nodes(rows: Sequence[tuple[str, ...]], headers: Sequence[str], hidden: int) -> Table:
    more = f"… and {hidden} more nodes: Ready, healthy, schedulable" if hidden else None
    table = Table(
        *headers, title="Nodes", box=box.SIMPLE_HEAD, title_justify="left", padding=(0, 1),
        caption=more, caption_justify="left", caption_style="dim",
    )  # fmt: skip
    for row in rows:
        name, ready, state, cordoned, gpus, health, domain = row
        table.add_row(
            name,
            Text(ready, style="" if ready == "Ready" else "bold red"),
            Text(state, style=STATE_STYLE.get(state, "dim")),
            Text(cordoned, style="yellow"),
            gpus,
            Text(health, style="green" if health in ("healthy", "-") else "bold red"),
            domain,
        )
    return table


def _troubled(row: tuple[str, ...]) -> bool:
    _, ready, state, cordoned, _, health, _ = row
    return ready != "Ready" or state != "-" or bool(cordoned) or health not in ("healthy", "-")


def _repairs(data: TableData) -> Table:
    title = "GPURepairs  (kubectl get gpurepairs)"
    table = Table(*data.headers, title=title, box=box.SIMPLE_HEAD, title_justify="left", padding=(0, 1))
    phase_at = data.headers.index("PHASE") if "PHASE" in data.headers else -1
    for row in data.rows:
        cells: list[Text | str] = list(row)
        if phase_at >= 0:
            cells[phase_at] = Text(row[phase_at], style=PHASE_STYLE.get(row[phase_at], ""))
        table.add_row(*cells)
    if not data.rows:
        table.add_row(*(["No resources found"] + [""] * (len(data.headers) - 1)), style="dim")
    return table


def _width(table: TableData) -> int:
    """What a rich SIMPLE_HEAD table of these rows needs: the widest cells plus one space each side."""
    return sum(max([len(h), *(len(r[i]) for r in table.rows)]) + 2 for i, h in enumerate(table.headers)) + 2


def event_text(event: DemoEvent) -> Text:
    line = Text(f"{event.at:%H:%M:%S}.{event.at.microsecond // 1000:03d} ", style="dim", no_wrap=True,
                overflow="ellipsis")  # fmt: skip
    line.append(f"{event.node:<13} " if event.node else " " * 14, style="bold")
    line.append(event.text, style="bold red" if event.bad else EVENT_STYLE.get(event.kind, ""))
    return line


def render_dashboard(frame: Frame, events: Sequence[DemoEvent], *, width: int = 120, height: int = 50) -> Group:
    """One screen: a title line, the two tables (side by side when wide enough), and the latest events.

    When the terminal is short the nodes table keeps only the nodes with something to show
    (cordoned, labelled, not Ready, GPUs unhealthy), so the event log keeps a few lines.
    """
    title = Text.assemble(
        ("RepairBot demo", "bold"),
        f" · {len(frame.nodes)} GPU nodes · GPURepairs: {len(frame.repairs)} · ",
        (frame.act, "bold cyan"),
        f" · +{frame.elapsed:.0f}s",
    )
    node_data, repair_data = node_table(frame.nodes), repair_table(frame.repairs)
    side_by_side = width >= _width(node_data) + _width(repair_data) + 2
    repair_lines = max(len(repair_data.rows), 1) + 4

    def used(node_rows: int) -> int:
        node_lines = node_rows + 4
        return max(node_lines, repair_lines) if side_by_side else node_lines + repair_lines

    rows, hidden = list(node_data.rows), 0
    if height - used(len(rows)) - 3 < MIN_EVENT_LINES:
        shown = [r for r in rows if _troubled(r)]
        rows, hidden = shown, len(rows) - len(shown)
    nodes = _nodes(rows, node_data.headers, hidden)
    repairs = _repairs(repair_data)
    tables: RenderableType
    if side_by_side:
        tables = Table.grid(padding=(0, 2))
        tables.add_row(nodes, repairs)
    else:
        tables = Group(nodes, repairs)
    room = max(MIN_EVENT_LINES, height - used(len(rows) + (1 if hidden else 0)) - 3)
    log = Table.grid()
    for event in list(events)[-room:]:
        log.add_row(event_text(event))
    return Group(title, tables, Text("Events (the words of each GPURepair's status.history)", style="bold"), log)


class LiveView:
    """Redraws the dashboard in place; the last frame stays on screen when it stops."""

    def __init__(self, console: Console, *, keep: int = 500) -> None:
        self.console = console
        self._events: deque[DemoEvent] = deque(maxlen=keep)
        self._frame = Frame((), (), "starting", 0.0)
        self._live: Live | None = None

    def start(self) -> None:
        self._live = Live(
            self._render(), console=self.console, auto_refresh=False, transient=False,
            redirect_stdout=False, redirect_stderr=False, vertical_overflow="crop",
        )  # fmt: skip
        self._live.start()

    def event(self, event: DemoEvent) -> None:
        self._events.append(event)

    def show(self, frame: Frame) -> None:
        self._frame = frame
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.stop()
            self._live = None

    def _render(self) -> Group:
        size = self.console.size
        return render_dashboard(self._frame, list(self._events), width=size.width, height=size.height)
