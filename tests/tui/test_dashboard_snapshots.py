"""Snapshot tests of the dashboard's screens, at 80x24 and 160x48.

Every screen renders one hand-made :class:`Frame` of a small shop, served by a
:class:`FixedSource`, so the SVGs depend on nothing but the code under test:
fixed ``taken_at`` and store path, fixed event times, and local time pinned to
UTC (the order timeline prints wall-clock times).

Update after an intended change of the dashboard's look with::

    .venv/bin/pytest tests/tui/test_dashboard_snapshots.py --snapshot-update
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from realorders.client import Client, OrderView
from realorders.domain import Event, LineItem, Order, OrderState, Status, fold, pending_data
from realorders.engine.ports import StockLevel
from realorders.errors import RealordersError
from realorders.tui.app import DashboardApp
from realorders.tui.feed import (
    DEFAULT_STUCK_AFTER,
    EngineState,
    Frame,
    OrderRow,
    StuckOrder,
    ViewFilter,
)
from realorders.tui.screens import OrderDetailScreen
from realorders.webhooks import WebhookEndpoint, WebhookFigures

NOW = 1_764_000_000.0  # 2025-11-24 16:00:00 UTC
STORE = "/srv/shop/realorders.db"
SIZES = pytest.mark.parametrize(
    "size", [(80, 24), (160, 48)], ids=lambda size: f"{size[0]}x{size[1]}"
)

S = Status

# -- the shop -------------------------------------------------------------------

PRODUCTS: dict[str, tuple[str, float]] = {
    "KB-01": ("Mechanical keyboard", 89.00),
    "MS-02": ("Wireless mouse", 24.50),
    "MN-27": ("27-inch monitor", 249.00),
    "HD-03": ("Noise-cancelling headphones", 179.00),
    "CB-10": ("USB-C cable 1m", 9.90),
    "DK-05": ("Docking station", 139.00),
    "WC-04": ("Webcam 1080p", 59.00),
    "CH-01": ("Office chair", 319.00),
}
#: product -> (on hand, reserved, orders waiting for it)
STOCK: dict[str, tuple[int, int, int]] = {
    "KB-01": (40, 6, 0),
    "MS-02": (58, 3, 0),
    "MN-27": (2, 2, 2),  # all reserved, two orders waiting: available 0
    "HD-03": (0, 0, 1),  # sold out, one order waiting
    "CB-10": (196, 9, 0),
    "DK-05": (5, 1, 0),  # low: 4 available
    "WC-04": (25, 1, 0),
    "CH-01": (6, 1, 0),  # low: 5 available
}

#: newest first: (id, customer, status, seconds in state, total, queued)
ORDERS: list[tuple[str, str, Status, float, float | None, bool]] = [
    ("ORD-1325", "ada", S.PENDING, 0.8, None, True),
    ("ORD-1324", "grace", S.PENDING, 1.2, None, True),
    ("ORD-1323", "alan", S.PENDING, 1.9, None, True),
    ("ORD-1322", "frances", S.PENDING, 2.6, 338.00, False),
    ("ORD-1321", "margaret", S.RESERVED, 3.4, 89.00, False),
    ("ORD-1320", "edsger", S.REJECTED, 4.1, None, False),
    ("ORD-1319", "barbara", S.RESERVED, 6.7, 24.50, False),
    ("ORD-1318", "ken", S.BACKORDERED, 9.3, 249.00, False),
    ("ORD-1317", "hedy", S.PACKED, 12.0, 148.00, False),
    ("ORD-1316", "ada", S.RESERVED, 15.5, 19.80, False),
    ("ORD-1315", "dennis", S.CANCELLED, 21.2, 139.00, False),
    ("ORD-1314", "katherine", S.PACKED, 26.0, 358.00, False),
    ("ORD-1313", "donald", S.SHIPPED, 34.4, 59.00, False),
    ("ORD-1312", "grace", S.DELIVERED, 41.0, 113.50, False),
    ("ORD-1311", "frances", S.SHIPPED, 52.3, 1_165.70, False),
    ("ORD-1310", "alan", S.DELIVERED, 63.0, 34.00, False),
    ("ORD-1309", "margaret", S.BACKORDERED, 78.0, 537.00, False),
    ("ORD-1308", "ada", S.DELIVERED, 95.0, 89.00, False),
    ("ORD-1307", "barbara", S.REJECTED, 121.0, 179.00, False),
    ("ORD-1306", "edsger", S.DELIVERED, 150.0, 59.00, False),
    ("ORD-1305", "hedy", S.SHIPPED, 183.0, 249.00, False),
    ("ORD-1304", "ken", S.CANCELLED, 244.0, 9.90, False),
    ("ORD-1303", "donald", S.DELIVERED, 301.0, 178.00, False),
    ("ORD-1302", "katherine", S.DELIVERED, 422.0, 319.00, False),
    ("ORD-1301", "dennis", S.DELIVERED, 545.0, 24.50, False),
]

#: (id, customer, status, seconds in state, total): oldest first, as the feed sorts them
STUCK: list[tuple[str, str, Status, float, float]] = [
    ("ORD-1187", "frances", S.BACKORDERED, 8_052.0, 498.00),  # 2h14m, limit 15m: red
    ("ORD-1290", "grace", S.RESERVED, 185.0, 89.00),  # 3m05s, limit 1m: red
    ("ORD-1296", "hedy", S.PACKED, 160.0, 318.00),  # 2m40s, limit 2m: yellow
]


def throughput() -> tuple[float, ...]:
    """Finished orders per second over 120 s: a busy wave, a stall, then a catch-up burst."""
    points = []
    for second in range(120):
        if 70 <= second < 78:
            value = 0.0  # the engine stalled on a long checkpoint
        elif 78 <= second < 84:
            value = 14.0 - (second - 78) * 1.5  # catching up
        else:
            value = 6.0 + 3.0 * math.sin(second / 7.0) + second / 60.0
        points.append(round(value, 1))
    return tuple(points)


def shop_frame() -> Frame:
    arrival = 40_000
    orders = tuple(
        OrderRow(oid, customer, status, NOW - age, total, arrival - index, queued=queued)
        for index, (oid, customer, status, age, total, queued) in enumerate(ORDERS)
    )
    stuck = tuple(
        StuckOrder(
            OrderRow(oid, customer, status, NOW - age, total, 38_000 + index),
            DEFAULT_STUCK_AFTER[status],
        )
        for index, (oid, customer, status, age, total) in enumerate(STUCK)
    )
    levels = tuple(
        StockLevel(pid, name, price, *STOCK[pid]) for pid, (name, price) in PRODUCTS.items()
    )
    counts = {
        "pending": 14,
        "reserved": 37,
        "backordered": 3,
        "packed": 21,
        "shipped": 48,
        "delivered": 12_873,
        "rejected": 214,
        "cancelled": 389,
    }
    return Frame(
        taken_at=NOW,
        store=STORE,
        engine=EngineState.RUNNING,
        engine_pid=48_213,
        backlog=3,
        counts=counts,
        orders_per_second=6.4,
        events_per_second=31.0,
        latency_p50=0.84,
        latency_p95=3.2,
        throughput=throughput(),
        orders=orders,
        levels=levels,
        stuck=stuck,
        head=96_412,
        newest_event_at=NOW - 0.2,
    )


def stopped_frame() -> Frame:
    """The engine went away 40 s ago; submissions keep queueing behind it."""
    frame = shop_frame()
    history = frame.throughput[40:] + (0.0,) * 40
    return dataclasses.replace(
        frame,
        engine=EngineState.STOPPED,
        engine_pid=None,
        backlog=1_234,
        orders_per_second=0.0,
        events_per_second=0.0,
        latency_p50=None,
        latency_p95=None,
        throughput=history,
        newest_event_at=NOW - 40.0,
    )


#: (id, url, events, disabled reason, backlog, failed): healthy, failing, disabled by a 410
WEBHOOKS: list[tuple[str, str, frozenset[Status] | None, str | None, int, int]] = [
    ("we_3f9a0c1d2e4b", "https://crm.example/hooks/realorders", None, None, 42, 0),
    (
        "we_8b1e77a0c5d2",
        "https://warehouse.example/api/v2/webhooks/orders?source=realorders&region=eu-west-1",
        frozenset({S.SHIPPED, S.DELIVERED}),
        None,
        1_207,
        3,
    ),
    ("we_c04d19e6f7a8", "http://10.0.4.17:8080/in", None, "410 Gone from the receiver", 0, 12),
]


def webhooks_frame() -> Frame:
    """The shop with three endpoints: one keeping up, one failing, one disabled."""
    figures = tuple(
        WebhookFigures(
            WebhookEndpoint(
                endpoint_id=eid,
                url=url,
                events=events,
                customer_id=None,
                description=None,
                enabled=reason is None,
                disabled_reason=reason,
                created_at=NOW - 86_400 + index,
                updated_at=NOW - 3_600,
            ),
            backlog=backlog,
            failed=failed,
        )
        for index, (eid, url, events, reason, backlog, failed) in enumerate(WEBHOOKS)
    )
    return dataclasses.replace(shop_frame(), webhooks=figures)


def empty_frame() -> Frame:
    problem = f"no database at {STORE} yet — create it with `realorders init`"
    return Frame(NOW, STORE, EngineState.UNREACHABLE, problem=problem)


def detail_view() -> OrderView:
    """ORD-1311: backordered for a monitor, reserved after a restock, now on its way."""
    created = NOW - 3_905.25
    lines = (LineItem("MN-27", 2), LineItem("CH-01", 2), LineItem("CB-10", 3))
    prices = {line.product_id: PRODUCTS[line.product_id][1] for line in lines}
    submitted = pending_data(Order("ORD-1311", "frances", lines), prices, created, 39_986)
    events = [
        Event("ORD-1311", 1, S.PENDING, created + 0.012, submitted),
        Event(
            "ORD-1311",
            2,
            S.BACKORDERED,
            created + 0.031,
            {"reason": "out of stock: MN-27 needs 2, 1 available"},
        ),
        Event("ORD-1311", 3, S.RESERVED, NOW - 1_322.5),
        Event("ORD-1311", 4, S.PACKED, NOW - 1_262.5),
        Event("ORD-1311", 5, S.SHIPPED, NOW - 52.3),
    ]
    state = fold(events)
    assert isinstance(state, OrderState)
    assert state.total == 1_165.70  # the same figure as its row in the orders table
    return OrderView(state, None, events)


# -- the app ----------------------------------------------------------------------


class FixedSource:
    """Serves the same frame on every poll (a fresh copy, to tell polls apart); no store."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.filter = ViewFilter()
        self.polls = 0
        self.last: Frame | None = None

    def poll(self) -> Frame:
        self.polls += 1
        self.last = dataclasses.replace(self.frame)
        return self.last

    def client(self) -> Client:
        raise RealordersError("fixed frames: no store behind this source")

    def close(self) -> None:
        pass


def dashboard(frame: Frame) -> tuple[DashboardApp, FixedSource]:
    """The app on ``frame``, polling only when asked.

    The refresh is an hour: a live refresh repaints the frame while the pilot
    waits for the screen to settle, and every repaint relabels the Stuck tab,
    which restarts the tab underline's animation: with a refresh under its
    0.3 s, waiting for animations after a tab switch never ends.
    """
    source = FixedSource(frame)
    app = DashboardApp(lambda: source, refresh=3600.0, stuck_after=dict(DEFAULT_STUCK_AFTER))
    return app, source


def shown(source: FixedSource) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Wait until the app has shown the frame, then have it shown once more.

    The KPI bar decides what fits (the engine pid) from its width when a frame
    arrives, so a first frame that beat the first layout would render narrow;
    the second showing, after layout, makes the snapshot independent of that race.
    """

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, DashboardApp)
        await _until(pilot, lambda: app.frame is not None)
        await pilot.pause()
        app.refresh_now()
        await _until(pilot, lambda: source.polls >= 2 and app.frame is source.last)
        await pilot.pause()

    return run_before


async def _until(pilot: Pilot[Any], condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10.0
    while not condition():
        assert time.monotonic() < deadline, "the dashboard never showed the frame"
        await pilot.pause(0.01)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The order timeline prints local wall-clock times: make them the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- the screens ------------------------------------------------------------------


@SIZES
def test_orders_tab(snap_compare: Any, size: tuple[int, int]) -> None:
    app, source = dashboard(shop_frame())
    assert snap_compare(app, terminal_size=size, run_before=shown(source))


@SIZES
def test_stuck_tab(snap_compare: Any, size: tuple[int, int]) -> None:
    app, source = dashboard(shop_frame())
    assert snap_compare(app, press=["2"], terminal_size=size, run_before=shown(source))


@SIZES
def test_inventory_tab(snap_compare: Any, size: tuple[int, int]) -> None:
    app, source = dashboard(shop_frame())
    assert snap_compare(app, press=["3"], terminal_size=size, run_before=shown(source))


@SIZES
def test_webhooks_tab(snap_compare: Any, size: tuple[int, int]) -> None:
    """Endpoints, their backlog and failures; the failing and the disabled one in red."""
    app, source = dashboard(webhooks_frame())
    assert snap_compare(app, press=["4"], terminal_size=size, run_before=shown(source))


@SIZES
def test_order_detail(snap_compare: Any, size: tuple[int, int]) -> None:
    """What ``enter`` opens, filled in directly: the app would fetch through a real client."""
    app, source = dashboard(shop_frame())
    wait = shown(source)

    async def run_before(pilot: Pilot[Any]) -> None:
        await wait(pilot)
        screen = OrderDetailScreen("ORD-1311")
        await pilot.app.push_screen(screen)
        await pilot.pause()
        screen.show(detail_view(), NOW)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_help(snap_compare: Any, size: tuple[int, int]) -> None:
    app, source = dashboard(shop_frame())
    assert snap_compare(app, press=["question_mark"], terminal_size=size, run_before=shown(source))


@SIZES
def test_empty_state(snap_compare: Any, size: tuple[int, int]) -> None:
    app, source = dashboard(empty_frame())
    assert snap_compare(app, terminal_size=size, run_before=shown(source))


@SIZES
def test_engine_stopped_with_backlog(snap_compare: Any, size: tuple[int, int]) -> None:
    app, source = dashboard(stopped_frame())
    assert snap_compare(app, terminal_size=size, run_before=shown(source))


@SIZES
def test_paused(snap_compare: Any, size: tuple[int, int]) -> None:
    app, source = dashboard(shop_frame())
    assert snap_compare(app, press=["p"], terminal_size=size, run_before=shown(source))
