"""The dashboard driven by keys (Textual's Pilot) on a real store with a real engine.

Every test opens :class:`DashboardApp` on a SQLite file that a real
``realorders run --delays pack=3,ship=3,deliver=3`` subprocess processes (see
``conftest.py``), submits orders through a separate :class:`Client`, and checks
both what the widgets hold and what the store says. The delays keep orders in
``reserved`` and ``packed`` long enough to act on them.

The tests are plain functions that run their scenario with ``asyncio.run``:
no async pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
import io
import shlex
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text
from textual.command import Command, CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, Static, TabbedContent
from waiting import Patience

from realorders import Client, LineItem
from realorders.deliveries import DeliveryStatus
from realorders.delivery import new_delivery
from realorders.domain import Status
from realorders.engine.ports import StockLevel
from realorders.tui.app import DashboardApp
from realorders.tui.feed import (
    DEFAULT_STUCK_AFTER,
    EngineState,
    Feed,
    Frame,
    OrderRow,
    ViewFilter,
)
from realorders.tui.screens import ConfirmScreen, HelpScreen, OrderDetailScreen, QuantityScreen
from realorders.tui.widgets import FlowPanel, KpiBar, LiveTable

from .conftest import HELD, INVENTORY, SOLD_OUT, EngineProcess

S = Status
#: states an order can have reached after the given one (fulfilment keeps moving)
LATER = {
    S.RESERVED: (S.PACKED, S.SHIPPED, S.DELIVERED),
    S.PACKED: (S.SHIPPED, S.DELIVERED),
    S.SHIPPED: (S.DELIVERED,),
}
SIZE = (120, 40)
TIMEOUT = 15.0  # seconds without progress: a shared 2-core machine runs the engine beside it
Scenario = Callable[[Pilot[None]], Awaitable[None]]


# -- helpers ------------------------------------------------------------------------


def dashboard(db: Path, stuck_after: dict[Status, float] | None = None) -> DashboardApp:
    thresholds = stuck_after or dict(DEFAULT_STUCK_AFTER)
    app = DashboardApp(
        lambda: Feed(db, window=100, stuck_after=thresholds),
        refresh=0.1,
        stuck_after=thresholds,
    )
    # Every frame relabels the "Stuck (n)" tab, and Textual re-animates the tab
    # underline (0.3 s) on each relabel. At refresh=0.1 that animation never ends,
    # and Pilot.press waits for animations to finish: a key press on the
    # dashboard could then block for a minute. No animations, no waiting.
    app.animation_level = "none"
    return app


def drive(app: DashboardApp, scenario: Scenario) -> None:
    """Run ``scenario`` against the app in a headless terminal of SIZE."""

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await scenario(pilot)

    asyncio.run(main())


def frame_progress(app: object) -> object:
    """The store's work as the dashboard has seen it: newest event, backlog, engine, counts.

    Never the clock (rates, ages): an idle store must not look busy.
    """
    frame = app.frame if isinstance(app, DashboardApp) else None
    if frame is None:
        return None
    return frame.head, frame.backlog, frame.engine, tuple(sorted(frame.counts.items()))


async def until(
    pilot: Pilot[Any], ready: Callable[[], object], what: str, idle_timeout: float = TIMEOUT
) -> None:
    """Let the app run until ``ready()`` holds: for as long as the frames show progress
    (:func:`frame_progress`), failing after ``idle_timeout`` seconds without."""
    patience = Patience(what, idle_timeout=idle_timeout)
    while not ready():
        patience.check(frame_progress(pilot.app), frame_progress(pilot.app))
        await pilot.pause(0.1)


def table(app: DashboardApp, name: str = "orders") -> LiveTable:
    return app.query_one(f"#{name}-table", LiveTable)


def shown(app: DashboardApp, name: str = "orders") -> list[str]:
    """Row keys in display order, read from the DataTable itself."""
    return [str(row.key.value) for row in table(app, name).ordered_rows]


def cell(app: DashboardApp, key: str, column: str, name: str = "orders") -> str:
    widget = table(app, name)
    if key not in widget._cells:
        return ""
    return str(widget.get_cell(key, column))


def status_of(app: DashboardApp, order_id: str) -> str:
    return cell(app, order_id, "status")


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text (rich tables rendered at the app's width)."""
    content = widget.content
    if isinstance(content, str | Text):
        return str(content)
    out = io.StringIO()
    Console(file=out, width=SIZE[0], color_system=None, legacy_windows=False).print(content)
    return out.getvalue()


def notes(app: DashboardApp) -> list[str]:
    """Messages of the notifications the app has raised (and not yet expired)."""
    return [note.message for note in app._notifications]


def kpi(app: DashboardApp) -> str:
    return text_of(app.query_one(KpiBar))


def submit(db: Path, customer: str, *items: tuple[str, int]) -> str:
    with Client(db, create=False) as client:
        lines = [LineItem(product, quantity) for product, quantity in items or [("KB-01", 1)]]
        return client.submit(customer_id=customer, items=lines).order_id


def db_status(db: Path, order_id: str) -> Status | None:
    """The order's status in the read model; None while it is still queued."""
    with Client(db, create=False) as client:
        view = client.get(order_id)
        return None if view.queued else view.status


def on_hand(db: Path, product_id: str) -> int:
    with Client(db, create=False) as client:
        (level,) = [lv for lv in client.levels() if lv.product_id == product_id]
        return level.on_hand


async def select(pilot: Pilot[Any], app: DashboardApp, key: str, name: str = "orders") -> None:
    """Move the table cursor onto ``key`` with the arrow keys."""
    widget = table(app, name)
    await pilot.press("ctrl+home")
    for _ in range(len(widget._order) + 1):
        if widget.selected_key == key:
            return
        await pilot.press("down")
    raise AssertionError(f"{key} is not in the {name} table: {widget._order}")


async def wait_statuses(
    pilot: Pilot[Any], app: DashboardApp, expected: dict[str, str | tuple[str, ...]]
) -> None:
    """Until each order's row shows its status (one status, or any of a tuple)."""

    def matches(oid: str, wanted: str | tuple[str, ...]) -> bool:
        return status_of(app, oid) in ((wanted,) if isinstance(wanted, str) else wanted)

    await until(
        pilot,
        lambda: all(matches(oid, wanted) for oid, wanted in expected.items()),
        f"statuses {expected}",
    )


# -- rows -----------------------------------------------------------------------------


def test_rows_appear_and_update_in_place(shop_db: Path, engine: EngineProcess) -> None:
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.frame is not None, "a first frame")
        assert shown(app) == []
        ada = submit(shop_db, "ada", ("KB-01", 2))
        bob = submit(shop_db, "bob", ("MS-02", 1))
        cy = submit(shop_db, "cy", (SOLD_OUT, 1))
        moving = ("reserved", "packed")  # 3 s each: a slow machine may miss the first
        await wait_statuses(pilot, app, {ada: moving, bob: moving, cy: "backordered"})
        assert shown(app) == [cy, bob, ada]  # newest first
        assert table(app).row_count == 3
        row = table(app).get_row(ada)
        seen = str(row[2])
        assert [str(value) for value in row[:2]] == [ada, "ada"]
        assert str(row[4]) == "178.00"
        assert cell(app, cy, "total") == "12.50"
        # the cursor stays on its order while rows change under it
        await select(pilot, app, bob)

        # the engine moves them on after 3 s: the same rows change, none is added
        after = {"reserved": "packed", "packed": "shipped"}[seen]
        await wait_statuses(pilot, app, {ada: after})
        assert shown(app) == [cy, bob, ada]
        assert table(app).row_count == 3
        assert table(app).selected_key == bob
        assert status_of(app, cy) == "backordered"
        assert db_status(shop_db, ada) in (S(after), *LATER[S(after)])
        assert db_status(shop_db, cy) is S.BACKORDERED
        frame = app.frame
        assert frame is not None
        assert frame.engine in (EngineState.RUNNING, EngineState.IDLE)
        assert frame.counts["backordered"] == 1
        assert "engine running" in kpi(app)

    drive(app, scenario)


# -- filter ---------------------------------------------------------------------------


def test_filter_by_status_and_customer(shop_db: Path, engine: EngineProcess) -> None:
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        ada = submit(shop_db, "ada")
        bob = submit(shop_db, "bob", (SOLD_OUT, 1))
        cy = submit(shop_db, "cy", (SOLD_OUT, 2))
        ada2 = submit(shop_db, "ada", ("MS-02", 1))
        everyone = [ada2, cy, bob, ada]
        await wait_statuses(pilot, app, {bob: "backordered", cy: "backordered"})
        await until(pilot, lambda: shown(app) == everyone, "all four orders")

        box = app.query_one("#filter", Input)
        assert not box.display
        await pilot.press("slash")
        assert box.display
        assert box.has_focus
        await pilot.press(*"status:backordered", "enter")
        assert app.view_filter == ViewFilter(status=S.BACKORDERED)
        await until(pilot, lambda: shown(app) == [cy, bob], "only the backordered orders")
        assert all(status_of(app, oid) == "backordered" for oid in shown(app))
        assert "filter: status:backordered" in app.sub_title
        assert box.display  # the active filter stays visible
        assert table(app).has_focus

        # the filter is live: a new backorder shows up, a new delivery does not
        dee = submit(shop_db, "dee", (SOLD_OUT, 1))
        eve = submit(shop_db, "eve")
        await until(pilot, lambda: shown(app) == [dee, cy, bob], "the new backorder")
        assert eve not in shown(app)

        await pilot.press("escape")
        assert app.view_filter == ViewFilter()
        assert not box.display
        await until(pilot, lambda: shown(app) == [eve, dee, *everyone], "every order again")
        assert "filter:" not in app.sub_title

        await pilot.press("slash", *"customer:ada", "enter")
        await until(pilot, lambda: shown(app) == [ada2, ada], "ada's orders")
        assert {cell(app, oid, "customer") for oid in shown(app)} == {"ada"}

        # a bad filter is refused and the current one kept
        await pilot.press("slash")
        assert box.value == "customer:ada"  # the box opens on the active filter
        box.value = ""
        await pilot.press(*"status:lost", "enter")
        await until(pilot, lambda: "filter: unknown status 'lost'" in notes(app), "the error")
        assert app.view_filter == ViewFilter(customer_id="ada")
        assert box.has_focus
        await pilot.pause(0.3)
        assert shown(app) == [ada2, ada]

        await pilot.press("escape")
        await until(pilot, lambda: len(shown(app)) == 6, "every order again")

    drive(app, scenario)


# -- sort -----------------------------------------------------------------------------

STATUS_ORDER = list(Status)
#: the cycle ``s`` walks through, with what each order means
EXPECTED_SORTS: list[tuple[str, Callable[[OrderRow], Any]]] = [
    ("id", lambda r: r.id),
    ("customer", lambda r: (r.customer_id, -r.arrival)),
    ("status", lambda r: (STATUS_ORDER.index(r.status), -r.arrival)),
    ("age", lambda r: r.since),  # longest in its state first
    ("total", lambda r: -(r.total or 0.0)),  # biggest first
    ("newest", lambda r: -r.arrival),
]


def expected_order(app: DashboardApp, key: Callable[[OrderRow], Any], reverse: bool) -> list[str]:
    assert app.frame is not None
    return [row.id for row in sorted(app.frame.orders, key=key, reverse=reverse)]


def test_sort_cycles_and_reverses(shop_db: Path, engine: EngineProcess) -> None:
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        ids = {
            "zoe": submit(shop_db, "zoe", ("KB-01", 1)),  # 89.00
            "ada": submit(shop_db, "ada", ("CB-10", 1)),  # 9.90
            "mia": submit(shop_db, "mia", ("MN-27", 1)),  # 249.00
            "bob": submit(shop_db, "bob", (SOLD_OUT, 1)),  # 12.50, backordered
            "kim": submit(shop_db, "kim", ("NO-SUCH", 1)),  # rejected
        }
        await until(
            pilot,
            lambda: all(status_of(app, oid) not in ("", "pending") for oid in ids.values()),
            "every order processed",
        )
        assert app.sort_by == "newest"
        newest = shown(app)
        assert newest == list(ids.values())[::-1]

        for name, key in EXPECTED_SORTS:
            await pilot.press("s")
            assert (app.sort_by, app.sort_reverse) == (name, False)
            assert shown(app) == expected_order(app, key, False), name
            assert table(app)._order == shown(app)
        assert shown(app) == newest

        # spot checks that do not depend on the key functions above
        await pilot.press("s")
        assert shown(app) == sorted(ids.values())
        await pilot.press("s")
        assert [cell(app, oid, "customer") for oid in shown(app)] == sorted(ids)
        await pilot.press("s", "s", "s")
        assert app.sort_by == "total"
        assert shown(app)[:3] == [ids["mia"], ids["zoe"], ids["bob"]]

        await pilot.press("S")
        assert (app.sort_by, app.sort_reverse) == ("total", True)
        assert shown(app) == expected_order(app, EXPECTED_SORTS[4][1], True)
        assert shown(app)[-1] == ids["mia"]
        await pilot.press("S")
        assert app.sort_reverse is False
        assert shown(app)[0] == ids["mia"]

        # the order holds across refreshes while statuses change
        await pilot.press("s", "s")
        assert app.sort_by == "id"
        await pilot.pause(0.5)
        assert shown(app) == sorted(ids.values())

    drive(app, scenario)


# -- order detail -----------------------------------------------------------------------


def test_enter_opens_the_order_detail(shop_db: Path, engine: EngineProcess) -> None:
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        first = submit(shop_db, "bob")
        target = submit(shop_db, "ada", ("KB-01", 2), ("CB-10", 3))
        last = submit(shop_db, "cy")
        await wait_statuses(pilot, app, {first: "reserved", target: "reserved", last: "reserved"})
        await select(pilot, app, target)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, OrderDetailScreen)
        assert screen.order_id == target
        assert len(app.screen_stack) == 2
        await until(pilot, lambda: screen.view is not None, "the order to load")
        assert screen.view is not None
        assert screen.view.state is not None
        assert screen.view.state.customer_id == "ada"

        title = text_of(screen.query_one("#detail-title", Static))
        assert title == f"order {target}"
        body = text_of(screen.query_one("#detail-body", Static))
        assert target in body
        assert "customer ada" in body
        assert "KB-01" in body
        assert "CB-10" in body
        assert "207.70" in body  # 2 x 89.00 + 3 x 9.90
        assert "pending" in body
        assert "reserved" in body

        # the open detail follows the order: the engine packs it after 3 s
        def packed() -> bool:
            return "packed" in text_of(screen.query_one("#detail-body", Static))

        await until(pilot, packed, "the detail to show the packed state")
        assert db_status(shop_db, target) in (S.PACKED, *LATER[S.PACKED])

        await pilot.press("escape")
        assert not isinstance(app.screen, OrderDetailScreen)
        assert len(app.screen_stack) == 1
        assert table(app).selected_key == target

    drive(app, scenario)


# -- cancel -----------------------------------------------------------------------------


def test_cancel_selected_order(shop_db: Path, start_engine: Callable[..., EngineProcess]) -> None:
    start_engine(HELD)  # the orders stay cancellable, however long the keys take
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        keep = submit(shop_db, "ada")
        target = submit(shop_db, "bob", ("DK-05", 1))
        await wait_statuses(pilot, app, {keep: "reserved", target: "reserved"})
        await select(pilot, app, target)

        await pilot.press("c")  # asked first; "n" leaves the order alone
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert len(app.screen_stack) == 1

        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        assert len(app.screen_stack) == 1
        await until(
            pilot, lambda: db_status(shop_db, target) is S.CANCELLED, "the cancellation to commit"
        )
        assert f"cancellation of {target} queued" in notes(app)
        await wait_statuses(pilot, app, {target: "cancelled"})
        assert db_status(shop_db, keep) is not S.CANCELLED
        assert status_of(app, keep) != "cancelled"
        assert app.frame is not None
        assert app.frame.counts["cancelled"] == 1
        assert "cancelled 1" in kpi(app)

    drive(app, scenario)


def test_cancel_from_the_detail_screen(
    shop_db: Path, start_engine: Callable[..., EngineProcess]
) -> None:
    start_engine(HELD)  # the orders stay cancellable, however long the keys take
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        target = submit(shop_db, "ada", ("WC-04", 1))
        other = submit(shop_db, "bob")
        await wait_statuses(pilot, app, {target: "reserved", other: "reserved"})
        await select(pilot, app, target)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, OrderDetailScreen)
        await until(pilot, lambda: screen.view is not None, "the order to load")

        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        assert len(app.screen_stack) == 2  # the detail closed, the question took its place
        await pilot.press("y")
        assert len(app.screen_stack) == 1
        await until(
            pilot, lambda: db_status(shop_db, target) is S.CANCELLED, "the cancellation to commit"
        )
        await wait_statuses(pilot, app, {target: "cancelled"})
        assert db_status(shop_db, other) is not S.CANCELLED
        with Client(shop_db, create=False) as client:
            state = client.get(target).state
        assert state is not None
        assert state.reason == "cancelled from the dashboard"

    drive(app, scenario)


# -- restock ----------------------------------------------------------------------------


def test_restock_from_the_inventory_tab(shop_db: Path, engine: EngineProcess) -> None:
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        waiting = submit(shop_db, "cy", (SOLD_OUT, 2))
        await wait_statuses(pilot, app, {waiting: "backordered"})
        before = on_hand(shop_db, "KB-01")

        await pilot.press("3")
        assert app.query_one(TabbedContent).active == "inventory"
        assert table(app, "inventory").has_focus
        await until(
            pilot, lambda: cell(app, SOLD_OUT, "backordered", "inventory") == "1", "the backorder"
        )
        await select(pilot, app, "KB-01", "inventory")
        await pilot.press("r")
        assert isinstance(app.screen, QuantityScreen)
        await pilot.press("0", "enter")  # refused: the question stays
        assert isinstance(app.screen, QuantityScreen)
        hint = text_of(app.screen.query_one("#quantity-hint", Static))
        assert "not a positive whole number" in hint
        app.screen.query_one("#quantity-input", Input).value = ""
        await pilot.press("7", "enter")
        assert len(app.screen_stack) == 1

        await until(pilot, lambda: on_hand(shop_db, "KB-01") == before + 7, "the restock")
        assert "restock of KB-01 +7 queued" in notes(app)
        await until(
            pilot,
            lambda: cell(app, "KB-01", "on_hand", "inventory") == f"{before + 7:,}",
            "the inventory row to show the new stock",
        )

        # stock for the sold-out product wakes the order waiting for it
        await select(pilot, app, SOLD_OUT, "inventory")
        await pilot.press("r", "2", "enter")
        await until(
            pilot,
            lambda: db_status(shop_db, waiting) in (S.RESERVED, *LATER[S.RESERVED]),
            "the backorder to be reserved",
        )
        await until(
            pilot,
            lambda: (
                cell(app, SOLD_OUT, "backordered", "inventory") == "0"
                and cell(app, SOLD_OUT, "reserved", "inventory") == "2"
            ),
            "the inventory row to show the reservation",
        )
        assert on_hand(shop_db, SOLD_OUT) == 2
        # the (hidden) orders table follows too
        await wait_statuses(pilot, app, {waiting: ("reserved", "packed")})

    drive(app, scenario)


# -- pause ------------------------------------------------------------------------------


def test_pause_freezes_the_view(shop_db: Path, engine: EngineProcess) -> None:
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        first = submit(shop_db, "ada")
        await wait_statuses(pilot, app, {first: "reserved"})
        assert "PAUSED" not in kpi(app)

        await pilot.press("p")
        assert app.paused
        assert "PAUSED" in kpi(app)
        frozen = app.frame
        second = submit(shop_db, "bob")
        await until(pilot, lambda: db_status(shop_db, second) is not None, "the engine to take it")
        await pilot.pause(0.5)  # five refresh intervals
        assert second not in shown(app)
        assert app.frame is frozen
        assert "PAUSED" in kpi(app)

        await pilot.press("p")
        assert not app.paused
        await until(pilot, lambda: second in shown(app), "the new order after resuming")
        assert "PAUSED" not in kpi(app)
        assert shown(app) == [second, first]

    drive(app, scenario)


# -- engine state -----------------------------------------------------------------------


def test_engine_not_running_shows_the_backlog(
    shop_db: Path, start_engine: Callable[[], EngineProcess]
) -> None:
    waiting = submit(shop_db, "ada")
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.frame is not None, "a first frame")
        assert app.frame is not None
        assert app.frame.engine is EngineState.STOPPED
        assert app.frame.backlog == 1
        text = kpi(app)
        assert "engine not running" in text
        assert "backlog 1" in text
        assert "start it: realorders run" in text
        assert shown(app) == [waiting]
        assert status_of(app, waiting) == "pending (queued)"

        engine = start_engine()  # the engine comes up: the queue drains
        await wait_statuses(pilot, app, {waiting: ("reserved", "packed")})
        await until(pilot, lambda: "backlog 0" in kpi(app), "the backlog to drain")
        text = kpi(app)
        assert "engine running" in text
        assert f"pid {engine.proc.pid}" in text

        engine.stop()
        await until(pilot, lambda: "engine not running" in kpi(app), "the engine to be gone")

    drive(app, scenario)


# -- help and theme ---------------------------------------------------------------------


def test_help_and_theme(shop_db: Path) -> None:
    thresholds = {**DEFAULT_STUCK_AFTER, S.BACKORDERED: 120.0}
    app = dashboard(shop_db, thresholds)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.frame is not None, "a first frame")
        await pilot.press("question_mark")
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        texts = " ".join(text_of(widget) for widget in screen.query(Static))
        assert "realorders dashboard — keys" in texts
        assert "backordered > 2m00s" in texts
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        assert len(app.screen_stack) == 1

        seen = [app.theme]
        for _ in range(2):
            await pilot.press("t")
            assert app.theme not in seen
            seen.append(app.theme)

    drive(app, scenario)


# -- failing actions ----------------------------------------------------------------------


class LockedSource:
    """Fresh frames of one order and one product; every store action fails like SQLite can.

    A real store cannot be made to fail on cue, so this stands in for one whose
    file stays locked: ``client()`` raises an error that is not a RealordersError.
    """

    ORDER = "ORD-1"

    def __init__(self) -> None:
        self.filter = ViewFilter()
        self.polls = 0

    def poll(self) -> Frame:
        self.polls += 1
        now = time.time()
        return Frame(
            taken_at=now,
            store="/srv/locked.db",
            engine=EngineState.IDLE,
            counts={"reserved": 1},
            orders=(OrderRow(self.ORDER, "ada", S.RESERVED, now - 5.0, 89.0, 1),),
            levels=(StockLevel("KB-01", "Keyboard", 89.0, 10, 1),),
            head=self.polls,
        )

    def client(self) -> Client:
        raise sqlite3.OperationalError("database is locked")

    def close(self) -> None:
        pass


def test_actions_failing_with_any_error_leave_the_dashboard_running() -> None:
    source = LockedSource()
    app = DashboardApp(lambda: source, refresh=0.1)
    app.animation_level = "none"

    def errors() -> list[str]:
        return [note.message for note in app._notifications if note.severity == "error"]

    async def keeps_showing_frames(pilot: Pilot[None]) -> None:
        assert app.frame is not None
        seen = app.frame.head
        await until(pilot, lambda: app.frame is not None and app.frame.head > seen + 2, "frames")
        assert app.is_running

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: shown(app) == [LockedSource.ORDER], "the order")
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        message = f"cancel {LockedSource.ORDER}: database is locked"
        await until(pilot, lambda: message in errors(), "the cancellation's error")
        assert len(app.screen_stack) == 1
        await keeps_showing_frames(pilot)

        await pilot.press("3")
        await until(pilot, lambda: shown(app, "inventory") == ["KB-01"], "the product")
        await pilot.press("r", "5", "enter")
        await until(pilot, lambda: "restock KB-01: database is locked" in errors(), "its error")
        assert len(app.screen_stack) == 1
        await keeps_showing_frames(pilot)

        # a lookup that fails shows its error in the detail, which stays open
        await pilot.press("1", "enter")
        screen = app.screen
        assert isinstance(screen, OrderDetailScreen)
        body = screen.query_one("#detail-body", Static)
        await until(
            pilot,
            lambda: f"order {LockedSource.ORDER}: database is locked" in text_of(body),
            "the lookup's error in the detail",
        )
        await keeps_showing_frames(pilot)
        assert app.screen is screen
        await pilot.press("escape")
        assert len(app.screen_stack) == 1
        await keeps_showing_frames(pilot)
        assert shown(app) == [LockedSource.ORDER]

    drive(app, scenario)


# -- pause and the order detail --------------------------------------------------------


def test_pause_holds_while_an_order_detail_is_open(shop_db: Path, engine: EngineProcess) -> None:
    app = dashboard(shop_db)

    async def frozen_for(pilot: Pilot[None], seconds: float) -> None:
        frame = app.frame
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert app.frame is frame, "a frame arrived while paused"
            await pilot.pause(0.1)

    async def scenario(pilot: Pilot[None]) -> None:
        first = submit(shop_db, "ada")
        await wait_statuses(pilot, app, {first: ("reserved", "packed")})
        await pilot.press("p")
        assert app.paused
        await pilot.pause(0.3)  # a frame gathered just before the pause may still land
        frozen = app.frame
        second = submit(shop_db, "bob")
        await until(pilot, lambda: db_status(shop_db, second) is not None, "the engine to take it")

        # opening a detail while paused looks the order up, and that brings no frame
        await select(pilot, app, first)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, OrderDetailScreen)
        await until(pilot, lambda: screen.view is not None, "the order to load")
        await frozen_for(pilot, 1.0)
        assert app.frame is frozen
        assert second not in shown(app)

        # resuming and pausing with the detail open (the app's "p" binding does not
        # reach past a modal screen: Textual stops the binding chain at it)
        app.action_toggle_pause()
        assert not app.paused
        assert app.screen is screen
        await until(pilot, lambda: second in shown(app), "the new order behind the detail")
        app.action_toggle_pause()
        assert app.paused
        assert "PAUSED" in kpi(app)
        await pilot.pause(0.3)
        frozen = app.frame
        third = submit(shop_db, "cy")
        await until(pilot, lambda: db_status(shop_db, third) is not None, "the engine to take it")
        await frozen_for(pilot, 1.0)
        assert third not in shown(app)

        await pilot.press("escape")
        assert len(app.screen_stack) == 1
        await frozen_for(pilot, 0.3)
        assert app.frame is frozen
        assert "PAUSED" in kpi(app)
        await pilot.press("p")
        await until(pilot, lambda: third in shown(app), "the new order after resuming")
        assert shown(app) == [third, second, first]

    drive(app, scenario)


# -- the stuck tab ---------------------------------------------------------------------


def test_stuck_tab_opens_and_cancels_a_stuck_order(shop_db: Path, engine: EngineProcess) -> None:
    thresholds = {**DEFAULT_STUCK_AFTER, S.BACKORDERED: 0.1}
    app = dashboard(shop_db, thresholds)
    tabs = app.query_one

    def active() -> str:
        return tabs(TabbedContent).active

    def stuck_label() -> str:
        return str(tabs(TabbedContent).get_tab("stuck").label)

    async def scenario(pilot: Pilot[None]) -> None:
        moving = submit(shop_db, "ada")
        late = submit(shop_db, "cy", (SOLD_OUT, 1))
        await until(pilot, lambda: shown(app, "stuck") == [late], "the backorder to be stuck")
        assert cell(app, late, "status", "stuck") == "backordered"
        assert cell(app, late, "customer", "stuck") == "cy"
        assert moving in shown(app)
        assert stuck_label() == "Stuck (1)"

        await pilot.press("2")
        assert active() == "stuck"
        assert table(app, "stuck").has_focus
        await select(pilot, app, late, "stuck")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, OrderDetailScreen)
        assert screen.order_id == late
        await until(pilot, lambda: screen.view is not None, "the order to load")
        body = text_of(screen.query_one("#detail-body", Static))
        assert "customer cy" in body
        assert "backordered" in body
        await pilot.press("escape")
        assert len(app.screen_stack) == 1
        assert active() == "stuck"

        await pilot.press("c")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.question == f"Cancel order {late}?"
        await pilot.press("y")
        await until(pilot, lambda: db_status(shop_db, late) is S.CANCELLED, "the cancellation")
        await until(pilot, lambda: shown(app, "stuck") == [], "the order to leave the stuck tab")
        assert stuck_label() == "Stuck (0)"
        assert status_of(app, late) == "cancelled"
        assert db_status(shop_db, moving) is not S.CANCELLED
        assert active() == "stuck"

        await pilot.press("escape")  # no filter to clear: Esc stays on this tab
        await pilot.pause(0.3)
        assert active() == "stuck"
        assert table(app, "stuck").has_focus

    drive(app, scenario)


# -- command palette and header clicks -------------------------------------------------


def test_command_palette_pauses(shop_db: Path) -> None:
    app = dashboard(shop_db)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.frame is not None, "a first frame")
        await pilot.press("ctrl+p")
        await until(
            pilot,
            lambda: isinstance(app.screen, CommandPalette) and isinstance(app.focused, Input),
            "the command palette",
        )
        palette = app.screen
        await pilot.press(*"Pause")
        results = palette.query_one(CommandList)

        def offered() -> bool:
            option = results.highlighted_option
            return isinstance(option, Command) and option.hit.text == "Pause / resume"

        await until(pilot, offered, "the Pause command to be offered first")
        await pilot.press("enter")
        await until(pilot, lambda: app.paused, "the app to pause")
        assert len(app.screen_stack) == 1
        assert "PAUSED" in kpi(app)

    drive(app, scenario)


def test_clicking_a_column_header_sorts_by_it(shop_db: Path) -> None:
    ids = {name: submit(shop_db, name) for name in ("mia", "ada", "zoe", "bob")}  # queued
    app = dashboard(shop_db)

    def header_x(key: str) -> int:
        """A cell of the column's header, counted from the table's left edge."""
        widget = table(app)
        x = 0
        for column in widget.ordered_columns:
            if column.key.value == key:
                return x + 1
            x += column.get_render_width(widget)
        raise AssertionError(f"no column {key!r}")

    def customers() -> list[str]:
        return [cell(app, oid, "customer") for oid in shown(app)]

    async def click_header(pilot: Pilot[None], key: str) -> None:
        """Click the column's header once the layout holds still (the first frames resize it)."""
        widget = table(app)
        deadline = time.monotonic() + TIMEOUT
        before = None
        while before != (widget.region, header_x(key)):
            assert time.monotonic() < deadline, "the layout never settled"
            before = (widget.region, header_x(key))
            await pilot.pause(0.2)
        x, y = widget.region.x + header_x(key), widget.region.y
        assert app.get_widget_at(x, y)[0] is widget
        assert await pilot.click(widget, offset=(header_x(key), 0))

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: len(shown(app)) == 4, "the orders")
        assert shown(app) == list(ids.values())[::-1]
        await click_header(pilot, "customer")
        await until(pilot, lambda: app.sort_by == "customer", "the sort by customer")
        assert not app.sort_reverse
        assert customers() == ["ada", "bob", "mia", "zoe"]

        await click_header(pilot, "customer")
        await until(pilot, lambda: app.sort_reverse, "the reversed sort")
        assert app.sort_by == "customer"
        assert customers() == ["zoe", "mia", "bob", "ada"]

        await click_header(pilot, "id")
        await until(pilot, lambda: app.sort_by == "id", "the sort by id")
        assert not app.sort_reverse
        assert shown(app) == sorted(ids.values())
        await pilot.pause(0.3)  # and it holds across refreshes
        assert shown(app) == sorted(ids.values())

    drive(app, scenario)


# -- webhooks -------------------------------------------------------------------------------

GONE = "410 Gone from the receiver"


def add_failing_webhooks(client: Client) -> tuple[str, str]:
    """Two endpoints, as the deliverer would leave them without running it: ``crm`` owes
    three deliveries; ``gone`` owes one, gave one up and was disabled by a 410."""
    crm = client.add_webhook("https://crm.example/hooks")[0].endpoint_id
    gone = client.add_webhook("http://10.0.4.17:8080/in", "shipped,delivered")[0].endpoint_id
    now = time.time()
    owed = [new_delivery(crm, f"ORD-{n}", 1, n, now) for n in (1, 2, 3)]
    owed += [new_delivery(gone, "ORD-1", s, 10 + s, now) for s in (4, 5)]
    outbox = client.backend.deliveries
    assert outbox.enqueue(owed, 20) == 5
    assert outbox.record(
        gone, "ORD-1", 4, status=DeliveryStatus.FAILED, attempts=1, next_at=None,
        last_code=410, last_error=None, last_latency_ms=2.0, response_excerpt=None, at=now,
    )  # fmt: skip
    client.disable_webhook(gone, GONE)
    return crm, gone


async def check_webhooks_tab(
    pilot: Pilot[Any],
    app: DashboardApp,
    add: Callable[[], tuple[str, str]],
    idle_timeout: float = TIMEOUT,
) -> None:
    """The tab on an empty registry, then on :func:`add_failing_webhooks`'s endpoints."""
    await until(pilot, lambda: app.frame is not None, "a frame", idle_timeout)
    assert app.frame is not None
    assert app.frame.problem is None, app.frame.problem
    await pilot.press("4")
    tabs = app.query_one(TabbedContent)
    assert tabs.active == "webhooks"
    assert table(app, "webhooks").has_focus
    assert shown(app, "webhooks") == []
    assert str(tabs.get_tab("webhooks").label) == "Webhooks"

    crm, gone = add()
    await until(
        pilot, lambda: shown(app, "webhooks") == [crm, gone], "both endpoints", idle_timeout
    )

    def row(key: str) -> dict[str, str]:
        columns = ("backlog", "failed", "state", "events", "url")
        return {c: cell(app, key, c, "webhooks") for c in columns}

    assert row(crm) == {
        "backlog": "3", "failed": "0", "state": "enabled", "events": "all",
        "url": "https://crm.example/hooks",
    }  # fmt: skip
    assert row(gone) == {
        "backlog": "1", "failed": "1", "state": f"disabled: {GONE}",
        "events": "shipped,delivered", "url": "http://10.0.4.17:8080/in",
    }  # fmt: skip

    def url_style(key: str) -> str:
        url = table(app, "webhooks").get_cell(key, "url")
        return str(url.style) if isinstance(url, Text) else ""

    assert "red" in url_style(gone)  # the failing one in red
    assert "red" not in url_style(crm)
    assert str(tabs.get_tab("webhooks").label) == "Webhooks (1 failing)"


def test_webhooks_tab_shows_backlog_and_failing_endpoints(shop_db: Path) -> None:
    app = dashboard(shop_db)

    def add() -> tuple[str, str]:
        with Client(shop_db, create=False) as client:
            return add_failing_webhooks(client)

    async def scenario(pilot: Pilot[None]) -> None:
        await check_webhooks_tab(pilot, app, add)

    drive(app, scenario)


# -- a store that does not exist yet ---------------------------------------------------


def test_a_database_created_while_the_dashboard_runs(tmp_path: Path) -> None:
    db = tmp_path / "later.db"
    app = dashboard(db)
    rel = shlex.quote(str(db))

    async def scenario(pilot: Pilot[None]) -> None:
        empty = app.query_one("#empty", Static)
        await until(pilot, lambda: app.frame is not None and empty.display, "the empty state")
        text = text_of(empty)
        assert f"no database at {db} yet" in text
        assert "create it with `realorders init`" in text
        assert f"realorders --db {rel} init --inventory inventory.csv" in text
        assert f"realorders --db {rel} run" in text
        assert "store unreachable" in kpi(app)
        assert not app.query_one(FlowPanel).display
        assert shown(app) == []
        await pilot.pause(0.3)
        assert not db.exists()  # looking creates nothing

        with Client(db) as client:
            client.init(inventory=INVENTORY)
        await until(
            pilot, lambda: "No orders yet in this store." in text_of(empty), "the new empty store"
        )
        assert empty.display
        text = text_of(empty)
        assert "no database at" not in text
        assert f"realorders --db {rel} submit --customer c-1 --item SKU=2" in text
        assert app.query_one(FlowPanel).display
        assert "engine not running" in kpi(app)
        with Client(db, create=False) as client:
            products = [level.product_id for level in client.levels()]
        await until(pilot, lambda: shown(app, "inventory") == products, "the inventory")

        order = submit(db, "ada")
        await until(pilot, lambda: shown(app) == [order], "the order")
        assert not empty.display
        assert status_of(app, order) == "pending (queued)"
        assert "backlog 1" in kpi(app)

    drive(app, scenario)


def test_a_file_that_is_not_a_store_says_so(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("shopping list\n")
    app = dashboard(db)

    async def scenario(pilot: Pilot[None]) -> None:
        empty = app.query_one("#empty", Static)
        await until(pilot, lambda: app.frame is not None and empty.display, "the empty state")
        text = text_of(empty)
        assert "This is not a store the dashboard can read." in text
        assert f"{db}: not a realorders database" in text
        assert "init" not in text  # init would refuse this file: no misleading hint
        assert "store unreachable" in kpi(app)
        assert db.read_text() == "shopping list\n"  # untouched

    drive(app, scenario)
