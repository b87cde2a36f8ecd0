"""The dashboard's widgets: each renders its part of a :class:`Frame` and keeps nothing else."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Sparkline, Static

from realorders.domain import Status
from realorders.engine.ports import StockLevel
from realorders.ui.style import STATUS_STYLE, status_text
from realorders.webhooks import WebhookFigures, events_text

from .feed import EngineState, Frame, OrderRow, StuckOrder

__all__ = [
    "FlowPanel",
    "KpiBar",
    "LiveTable",
    "age",
    "inventory_cells",
    "order_cells",
    "stuck_cells",
    "webhook_cells",
]

#: available units at or below which a product counts as running out
LOW_STOCK = 5
_ENGINE_STYLE = {
    EngineState.RUNNING: "bold green",
    EngineState.IDLE: "green",
    EngineState.STOPPED: "bold red",
    EngineState.UNREACHABLE: "bold red",
}
_FLOW = (Status.PENDING, Status.RESERVED, Status.PACKED, Status.SHIPPED, Status.DELIVERED)
_ASIDE = (Status.BACKORDERED, Status.REJECTED, Status.CANCELLED)
#: a URL may be 2,000 characters long, a disabled reason 500: the table shows their start
_URL_WIDTH = 48
_STATE_WIDTH = 40


def age(seconds: float) -> str:
    """Compact, and coarse enough that a cell changes at most once a second."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _latency(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def stuck_count(frame: Frame) -> str:
    return f"{len(frame.stuck)}{'+' if frame.stuck_more else ''}"


def low_stock(levels: Sequence[StockLevel]) -> int:
    return sum(1 for level in levels if level.available <= LOW_STOCK)


class KpiBar(Static):
    """Headline figures; the engine state first, because it explains the rest.

    Three short lines below 130 columns (nothing wraps at 80), two lines above.
    """

    WIDE = 130

    def show(self, frame: Frame, paused: bool) -> None:
        style = _ENGINE_STYLE[frame.engine]
        if frame.problem is not None:  # no figures at all rather than misleading zeros
            self.update(
                Text.assemble(
                    ("● store unreachable", style),
                    ("  — see below; retrying every refresh", "dim"),
                )
            )
            return
        width = self.size.width
        wide = width >= self.WIDE
        several = frame.engines > 1  # the distributed mode: the group shares the work
        label = f"{frame.engines} engines" if several else "engine"
        engine = Text.assemble(("● ", style), (f"{label} {frame.engine.value}", style))
        if frame.engine_pid and not several:  # one pid of several would mislead
            engine.append(f" pid {frame.engine_pid}", style="dim")
        backlog = Text(f"backlog {frame.backlog:,}")
        if frame.backlog and frame.engine is EngineState.STOPPED:
            backlog.stylize("bold red")
            backlog.append("  start it: realorders run", style="red")
        state = Text("  ").join([engine, backlog])
        if paused:
            state.append("  ⏸ PAUSED (p resumes)", style="bold reverse yellow")
        counts = frame.counts
        totals = Text("  ").join(
            [
                Text(f"in flight {frame.in_flight:,}", style="bold"),
                Text(f"delivered {counts.get('delivered', 0):,}", style="green"),
                Text(f"rejected {counts.get('rejected', 0):,}", style="red"),
                Text(f"cancelled {counts.get('cancelled', 0):,}", style="bright_black"),
            ]
        )
        low = low_stock(frame.levels)
        rates = Text("  ").join(
            [
                Text(f"{frame.orders_per_second:,.1f} orders/s"),
                Text(f"{frame.events_per_second:,.0f} events/s"),
                Text(f"p50 {_latency(frame.latency_p50)} p95 {_latency(frame.latency_p95)}"),
                Text(f"stuck {stuck_count(frame)}", style="bold yellow" if frame.stuck else ""),
                Text(f"low stock {low}", style="bold yellow" if low else ""),
            ]
        )
        # The store closes the header: after the rates when it fits, else on a line of its
        # own (Kafka + Redis is a long name), cut to the width. Narrow, only a cluster's
        # address is worth a line: a file's name is in the command that opened it.
        store = Text(frame.store, style="dim")
        fits = rates.cell_len + 2 + store.cell_len <= width
        if width:
            store.truncate(width, overflow="ellipsis")
        if wide and fits:
            rates.append(f"  {frame.store}", style="dim")
            lines = [Text("  ").join([state, totals]), rates]
        elif wide:
            lines = [Text("  ").join([state, totals]), rates, store]
        else:
            lines = [state, totals, rates]
            if frame.cli is not None:
                lines.append(store)
        self.update(Text("\n").join(lines))


class FlowPanel(Vertical):
    """Counts along the lifecycle, and finished orders per second over the last minutes."""

    def compose(self) -> ComposeResult:
        yield Static(id="flow-counts")
        yield Sparkline([], id="flow-spark")

    def show(self, frame: Frame) -> None:
        counts = frame.counts
        line = Text()
        for index, status in enumerate(_FLOW):
            if index:
                line.append(" → ", style="dim")
            line.append(f"{status.value} ", style=STATUS_STYLE[status])
            line.append(f"{counts.get(status.value, 0):,}", style="bold")
        aside = Text()
        for status in _ASIDE:
            aside.append(f"{status.value} ", style=STATUS_STYLE[status])
            aside.append(f"{counts.get(status.value, 0):,}  ", style="bold")
        points = frame.throughput
        peak = max(points, default=0.0)
        aside.append(f"│ finished/s, last {len(points)}s: peak {peak:,.1f}", style="dim")
        self.query_one("#flow-counts", Static).update(Text("\n").join([line, aside]))
        # one point renders as a full bar: show the flat line of no data instead
        self.query_one("#flow-spark", Sparkline).data = list(points) if len(points) > 1 else []


def _right(value: str, style: str = "") -> Text:
    return Text(value, style=style, justify="right")


def order_cells(row: OrderRow, now: float) -> tuple[str | Text, ...]:
    status = status_text(row.status)
    if row.queued:
        status.append(" (queued)", style="dim")
    return (row.id, row.customer_id, status, age(now - row.since), _right(_money(row.total)))


def stuck_cells(stuck: StuckOrder, now: float) -> tuple[str | Text, ...]:
    row = stuck.row
    waited = now - row.since
    return (
        row.id,
        row.customer_id,
        status_text(row.status),
        Text(age(waited), style="bold red" if waited > 2 * stuck.threshold else "yellow"),
        age(stuck.threshold),
    )


def inventory_cells(level: StockLevel) -> tuple[str | Text, ...]:
    style = ""
    if level.available <= 0:
        style = "bold red"
    elif level.available <= LOW_STOCK:
        style = "yellow"
    return (
        level.product_id,
        level.name or "",
        _right(f"{level.on_hand:,}"),
        _right(f"{level.reserved:,}"),
        _right(f"{level.available:,}", style),
        _right(f"{level.backordered:,}", "bold red" if level.backordered else "dim"),
    )


def webhook_cells(figure: WebhookFigures) -> tuple[str | Text, ...]:
    """A failing endpoint (deliveries given up on, or disabled) shows in red."""
    endpoint = figure.endpoint
    url = Text(endpoint.url, style="bold red" if figure.failing else "", no_wrap=True)
    url.truncate(_URL_WIDTH, overflow="ellipsis")
    state = Text("enabled", style="green")
    if not endpoint.enabled:
        state = Text(f"disabled: {endpoint.disabled_reason or '-'}", style="red", no_wrap=True)
        state.truncate(_STATE_WIDTH, overflow="ellipsis")
    return (
        endpoint.endpoint_id,  # the row key, plain (LiveTable sorts by it)
        _right(f"{figure.backlog:,}", "bold" if figure.backlog else "dim"),
        _right(f"{figure.failed:,}", "bold red" if figure.failed else "dim"),
        state,
        events_text(endpoint.events),
        url,
    )


class LiveTable(DataTable[str | Text]):
    """A DataTable kept in step with keyed rows by updating cells, never by rebuilding.

    Rebuilding a few hundred rows every tick is what makes a terminal table
    flicker and fall behind; here only changed cells are touched, rows come
    and go individually (or the table is refilled when most rows turned over),
    and the cursor stays on the same key unless it sits on the top row, which
    follows the newest. The first column must hold the row key: rows are
    reordered by it.
    """

    def __init__(self, columns: Sequence[tuple[str, str]], **kwargs: object) -> None:
        # not the seam: DataTable's keywords are typed one by one; these are passed through
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._column_spec = list(columns)
        self._cells: dict[str, tuple[str | Text, ...]] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for key, label in self._column_spec:
            self.add_column(label, key=key)

    @property
    def selected_key(self) -> str | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self._order[self.cursor_row]

    def sync(self, rows: dict[str, tuple[str | Text, ...]], order: list[str]) -> None:
        """Show ``rows`` (key -> cells) in ``order``, touching only what changed."""
        selected = self.selected_key
        follow_top = self.cursor_row <= 0
        columns = [key for key, _ in self._column_spec]
        leaving = self._cells.keys() - rows.keys()
        if len(leaving) > len(rows) // 2:  # mostly new rows: refilling is cheaper
            self.clear()
            self._cells, self._order = {}, []
            leaving = set()
        for key in leaving:
            self.remove_row(key)
        for key, cells in rows.items():
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                continue
            for column, before, after in zip(columns, old, cells, strict=True):
                if before != after:
                    self.update_cell(key, column, after)
        self._cells = dict(rows)
        if order != self._order:
            position = {key: index for index, key in enumerate(order)}
            self.sort(columns[0], key=lambda key: position[key])
            self._order = list(order)
            if selected in position and not follow_top:
                self.move_cursor(row=position[selected], animate=False)
