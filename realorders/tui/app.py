"""``realorders dashboard``: the live tracking dashboard (Textual).

All storage access happens on one worker thread that owns the store
connection: it gathers a :class:`Frame` every ``refresh`` seconds and runs the
operator's actions (cancel, restock, order lookups) in between. The event loop
only renders frames, so a slow query never freezes the screen.

Longer than 400 lines on purpose: the app's bindings, commands, modal flows
and rendering of each frame are Textual's one App class; its parts without
Textual (the frame, the feed, the worker, the widgets) live beside it.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from realorders.client import OrderView
from realorders.domain import CANCELLABLE, Status

from .feed import DEFAULT_STUCK_AFTER, Frame, OrderRow, ViewFilter
from .screens import ConfirmScreen, HelpScreen, OrderDetailScreen, QuantityScreen
from .widgets import (
    FlowPanel,
    KpiBar,
    LiveTable,
    inventory_cells,
    order_cells,
    stuck_cells,
    stuck_count,
    webhook_cells,
)
from .worker import Source, StoreLink

__all__ = ["DashboardApp", "Source"]

THEMES = ("textual-dark", "nord", "gruvbox", "textual-light", "solarized-light")
_SORTS: tuple[tuple[str, Callable[[OrderRow], Any]], ...] = (
    ("newest", lambda r: -r.arrival),
    ("id", lambda r: r.id),
    ("customer", lambda r: (r.customer_id, -r.arrival)),
    ("status", lambda r: (list(Status).index(r.status), -r.arrival)),
    ("age", lambda r: r.since),
    ("total", lambda r: -(r.total or 0.0)),
)
_SORT_NAMES = [name for name, _ in _SORTS]


class DashboardApp(App[None]):
    """Renders frames from a :class:`Source` and turns keys into store actions.

    ``source`` is a factory: it is called on the store thread, which then owns
    what it opens (a SQLite connection may only be used by its own thread).
    """

    CSS_PATH = "dashboard.tcss"
    TITLE = "realorders"
    BINDINGS = [  # noqa: RUF012
        Binding("q", "quit", "Quit"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("S", "sort(True)", "Reverse sort", show=False),
        Binding("c", "cancel_order", "Cancel"),
        Binding("r", "restock", "Restock"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("t", "next_theme", "Theme", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("1", "show_tab('orders')", "Orders", show=False),
        Binding("2", "show_tab('stuck')", "Stuck", show=False),
        Binding("3", "show_tab('inventory')", "Inventory", show=False),
        Binding("4", "show_tab('webhooks')", "Webhooks", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(
        self,
        source: Callable[[], Source],
        *,
        refresh: float = 0.25,
        stuck_after: dict[Status, float] | None = None,
        trace: Path | None = None,
    ) -> None:
        super().__init__()
        self.refresh_interval = refresh
        self.stuck_after = stuck_after or dict(DEFAULT_STUCK_AFTER)
        self.store = StoreLink(self, source, self._show, refresh)
        self.frame: Frame | None = None
        self.sort_by = "newest"
        self.sort_reverse = False
        self._stuck_label = ""
        self._webhooks_label = ""
        self._trace = trace.open("a", buffering=1) if trace else None

    # -- layout -----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield KpiBar(id="kpis")
        yield FlowPanel(id="flow")
        yield Static(id="empty")
        with TabbedContent(id="tabs", initial="orders"):
            with TabPane("Orders", id="orders"):
                yield Input(placeholder="filter: status, customer or id prefix", id="filter")
                yield LiveTable(
                    [
                        ("id", "ORDER"),
                        ("customer", "CUSTOMER"),
                        ("status", "STATUS"),
                        ("age", "IN STATE"),
                        ("total", "TOTAL"),
                    ],
                    id="orders-table",
                )
            with TabPane("Stuck", id="stuck"):
                yield LiveTable(
                    [
                        ("id", "ORDER"),
                        ("customer", "CUSTOMER"),
                        ("status", "STATUS"),
                        ("age", "IN STATE"),
                        ("limit", "LIMIT"),
                    ],
                    id="stuck-table",
                )
            with TabPane("Inventory", id="inventory"):
                yield LiveTable(
                    [
                        ("product", "PRODUCT"),
                        ("name", "NAME"),
                        ("on_hand", "ON HAND"),
                        ("reserved", "RESERVED"),
                        ("available", "AVAILABLE"),
                        ("backordered", "WAITING"),
                    ],
                    id="inventory-table",
                )
            with TabPane("Webhooks", id="webhooks"):
                yield LiveTable(
                    [
                        ("endpoint", "ENDPOINT"),  # the figures first: they fit at 80
                        ("backlog", "BACKLOG"),
                        ("failed", "FAILED"),
                        ("state", "STATE"),
                        ("events", "EVENTS"),
                        ("url", "URL"),
                    ],
                    id="webhooks-table",
                )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#empty", Static).display = False
        self.query_one("#orders-table", LiveTable).focus()
        self.run_worker(self.store.loop, thread=True, exclusive=True, group="store")

    def on_unmount(self) -> None:
        self.store.stop()
        if self._trace is not None:
            self._trace.close()

    # -- the store thread -------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.store.paused

    @property
    def view_filter(self) -> ViewFilter:
        return self.store.filter

    def refresh_now(self) -> None:
        self.store.refresh_now()

    # -- rendering --------------------------------------------------------------

    def _show(self, frame: Frame) -> None:
        self.frame = frame
        self.query_one(KpiBar).show(frame, self.paused)
        self.query_one(FlowPanel).show(frame)
        self.query_one(FlowPanel).display = frame.problem is None
        empty = self.query_one("#empty", Static)
        empty.display = frame.problem is not None or frame.empty
        if empty.display:
            empty.update(self._empty_text(frame))
        self._show_orders(frame)
        now = frame.taken_at
        stuck = self.query_one("#stuck-table", LiveTable)
        stuck.sync(
            {s.row.id: stuck_cells(s, now) for s in frame.stuck}, [s.row.id for s in frame.stuck]
        )
        inventory = self.query_one("#inventory-table", LiveTable)
        inventory.sync(
            {level.product_id: inventory_cells(level) for level in frame.levels},
            [level.product_id for level in frame.levels],
        )
        label = f"Stuck ({stuck_count(frame)})"
        if label != self._stuck_label:  # a new label restarts the tab underline's animation
            self._stuck_label = label
            self.query_one(TabbedContent).get_tab("stuck").label = label
        self._show_webhooks(frame)
        self.sub_title = frame.store + (
            f"  ·  filter: {self.view_filter.describe()}" if self.view_filter.describe() else ""
        )
        if self._trace is not None:
            self.call_after_refresh(self._write_trace, frame)

    def _show_orders(self, frame: Frame) -> None:
        key = dict(_SORTS)[self.sort_by]
        rows = sorted(frame.orders, key=key, reverse=self.sort_reverse)
        self.query_one("#orders-table", LiveTable).sync(
            {row.id: order_cells(row, frame.taken_at) for row in rows}, [row.id for row in rows]
        )

    def _show_webhooks(self, frame: Frame) -> None:
        hooks = frame.webhooks
        self.query_one("#webhooks-table", LiveTable).sync(
            {f.endpoint.endpoint_id: webhook_cells(f) for f in hooks},
            [f.endpoint.endpoint_id for f in hooks],
        )
        failing = sum(1 for f in hooks if f.failing)
        label = f"Webhooks ({failing} failing)" if failing else "Webhooks"
        if label != self._webhooks_label:
            self._webhooks_label = label
            self.query_one(TabbedContent).get_tab("webhooks").label = label

    def _write_trace(self, frame: Frame) -> None:
        assert self._trace is not None
        self._trace.write(f"{time.time():.6f} {frame.head} {frame.newest_event_at or 0:.6f}\n")

    @staticmethod
    def _empty_text(frame: Frame) -> Text:
        """What to run next, spelled for this very store (``--db PATH`` or the Kafka settings)."""
        if frame.cli is None:  # a file: commands take --db; the file says if a store exists
            cli = f"realorders --db {shlex.quote(frame.store)}"
            missing = not Path(frame.store).exists()
            unreadable = "This is not a store the dashboard can read.\n"
            fix = "\n\nCheck --db / REALORDERS_DB; the dashboard keeps retrying."
            watching, demo = "", "\nor see the whole product at once: realorders demo --dashboard"
        else:
            cli, missing = frame.cli, frame.missing
            unreadable = "The dashboard cannot reach the store.\n"
            fix = (
                "\n\nCheck that Kafka and Redis run there and the settings "
                "(`realorders config show`); the dashboard keeps retrying."
            )
            watching, demo = f"\n\nWatching {frame.store}.", ""
        if frame.problem is not None and not missing:
            return Text.assemble((unreadable, "bold"), (frame.problem, "yellow"), watching, fix)
        if frame.problem is not None:
            return Text.assemble(
                ("Nothing to show yet.\n", "bold"),
                (frame.problem, "yellow"),
                watching,
                "\n\nThe dashboard keeps looking; start with:\n"
                f"  {cli} init --inventory inventory.csv\n"
                f"  {cli} import orders.ndjson\n"
                f"  {cli} run{demo}",
            )
        return Text.assemble(
            ("No orders yet in this store.\n", "bold"),
            "Submit or import some, and start the engine:\n"
            f"  {cli} submit --customer c-1 --item SKU=2\n"
            f"  {cli} import orders.ndjson\n"
            f"  {cli} run",
        )

    # -- actions ----------------------------------------------------------------

    def _selected(self, table_id: str) -> str | None:
        return self.query_one(f"#{table_id}", LiveTable).selected_key

    def _selected_order(self) -> str | None:
        active = self.query_one(TabbedContent).active
        if active == "stuck":
            return self._selected("stuck-table")
        if active == "orders":
            return self._selected("orders-table")
        return None

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.query_one(f"#{tab}-table", LiveTable).focus()

    def action_filter(self) -> None:
        self.action_show_tab("orders")
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.view_filter.describe()
        box.focus()

    @on(Input.Submitted, "#filter")
    def _apply_filter(self, event: Input.Submitted) -> None:
        try:
            self.store.filter = ViewFilter.parse(event.value)
        except ValueError as exc:
            self.notify(f"filter: {exc}", severity="error")
            return
        event.input.display = bool(event.value.strip())
        self.query_one("#orders-table", LiveTable).focus()
        self.refresh_now()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if not box.display and not self.view_filter.describe():
            return  # nothing to clear: Esc must not pull the user off another tab
        box.value = ""
        box.display = False
        self.store.filter = ViewFilter()
        self.query_one("#orders-table", LiveTable).focus()
        self.refresh_now()

    def action_sort(self, reverse: bool = False) -> None:
        if self.query_one(TabbedContent).active != "orders":
            self.action_show_tab("orders")  # sorting applies to the orders table
        if reverse:
            self.sort_reverse = not self.sort_reverse
        else:
            index = (_SORT_NAMES.index(self.sort_by) + 1) % len(_SORT_NAMES)
            self.sort_by, self.sort_reverse = _SORT_NAMES[index], False
        self.notify(
            f"orders sorted by {self.sort_by}" + (" (reversed)" if self.sort_reverse else "")
        )
        if self.frame is not None:
            self._show_orders(self.frame)

    @on(DataTable.HeaderSelected, "#orders-table")
    def _sort_by_header(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column == self.sort_by:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_by, self.sort_reverse = column, False
        if self.frame is not None:
            self._show_orders(self.frame)

    def action_toggle_pause(self) -> None:
        self.store.paused = not self.store.paused
        if self.frame is not None:
            self.query_one(KpiBar).show(self.frame, self.paused)
        if not self.paused:
            self.refresh_now()

    def action_next_theme(self) -> None:
        names = [name for name in THEMES if name in self.available_themes]
        index = names.index(self.theme) + 1 if self.theme in names else 0
        self.theme = names[index % len(names)]
        self.notify(f"theme: {self.theme}")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.stuck_after))

    @on(DataTable.RowSelected, "#orders-table, #stuck-table")
    def _open_order(self, event: DataTable.RowSelected) -> None:
        self.open_order(str(event.row_key.value))

    def open_order(self, order_id: str) -> None:
        screen = OrderDetailScreen(order_id)

        def fetch() -> None:
            if self.paused and screen.view is not None:
                return  # paused means paused, here too
            self.store.submit(
                lambda source: source.client().get(order_id),
                lambda view: self._show_detail(screen, view),
                f"order {order_id}",
                failed=lambda message: self._show_detail_error(screen, message),
                wake=False,  # a lookup changes nothing: no extra frame
            )

        def closed(result: str | None) -> None:
            timer.stop()
            if result == "cancel":
                self._confirm_cancel(order_id)

        self.push_screen(screen, closed)
        fetch()
        timer = self.set_interval(max(self.refresh_interval, 0.5), fetch)

    def _show_detail(self, screen: OrderDetailScreen, view: OrderView) -> None:
        if screen not in self.screen_stack:
            return  # closed, or being dismissed (its widgets may be gone already)
        if screen.is_mounted:
            screen.show(view, time.time())
        else:  # the lookup beat the screen's compose: show it once composed
            screen.call_later(self._show_detail, screen, view)

    def _show_detail_error(self, screen: OrderDetailScreen, message: str) -> None:
        if screen in self.screen_stack and screen.is_mounted:
            screen.show_error(message)

    def action_cancel_order(self) -> None:
        order_id = self._selected_order()
        if order_id is None:
            self.notify("select an order first (Orders or Stuck tab)", severity="warning")
            return
        status = self._shown_status(order_id)
        if status is not None and status not in CANCELLABLE:
            self.notify(f"{order_id} is {status.value}: it can no longer be cancelled")
            return
        self._confirm_cancel(order_id)

    def _shown_status(self, order_id: str) -> Status | None:
        if self.frame is None:
            return None
        rows = [*self.frame.orders, *(s.row for s in self.frame.stuck)]
        return next((row.status for row in rows if row.id == order_id), None)

    def _confirm_cancel(self, order_id: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.store.submit(
                    lambda source: source.client().cancel(order_id, "cancelled from the dashboard"),
                    lambda _position: self.notify(f"cancellation of {order_id} queued"),
                    f"cancel {order_id}",
                )

        self.push_screen(ConfirmScreen(f"Cancel order {order_id}?"), answered)

    def action_restock(self) -> None:
        if self.query_one(TabbedContent).active != "inventory":
            self.action_show_tab("inventory")
            self.notify("choose a product, then press r again")
            return
        product_id = self._selected("inventory-table")
        if product_id is None:
            self.notify("no product to restock", severity="warning")
            return

        def answered(units: int | None) -> None:
            if units:
                self.store.submit(
                    lambda source: source.client().restock(product_id, units),
                    lambda _position: self.notify(f"restock of {product_id} +{units} queued"),
                    f"restock {product_id}",
                )

        self.push_screen(QuantityScreen(f"Restock {product_id}: how many units?"), answered)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Pause / resume", "Stop or restart live updates (p)", self.action_toggle_pause
        )
        yield SystemCommand(
            "Filter orders", "By status, customer or id prefix (/)", self.action_filter
        )
        yield SystemCommand(
            "Clear filter", "Show the newest orders again (esc)", self.action_clear_filter
        )
        yield SystemCommand("Sort orders", "By the next column (s)", self.action_sort)
        yield SystemCommand(
            "Reverse sort", "Flip the orders' order (S)", lambda: self.action_sort(True)
        )
        yield SystemCommand("Keys", "Every key of the dashboard (?)", self.action_help)
        yield SystemCommand(
            "Orders", "The live orders table (1)", lambda: self.action_show_tab("orders")
        )
        yield SystemCommand(
            "Stuck orders",
            "Longer than allowed in a state (2)",
            lambda: self.action_show_tab("stuck"),
        )
        yield SystemCommand(
            "Inventory", "Stock per product (3)", lambda: self.action_show_tab("inventory")
        )
        yield SystemCommand(
            "Webhooks",
            "Endpoints, delivery backlog and failures (4)",
            lambda: self.action_show_tab("webhooks"),
        )
        yield SystemCommand(
            "Restock product", "Add units to the selected product (r)", self.action_restock
        )
        yield SystemCommand(
            "Cancel order", "Cancel the selected order (c)", self.action_cancel_order
        )
        yield SystemCommand("Next theme", "Cycle the colour theme (t)", self.action_next_theme)


def trace_path() -> Path | None:
    """Where to log frame timings (benchmarks set ``REALORDERS_DASHBOARD_TRACE``)."""
    value = os.environ.get("REALORDERS_DASHBOARD_TRACE")
    return Path(value) if value else None
