"""``realorders demo``: the whole product in one command.

A scratch database gets the bundled example catalogue; orders from the
examples trickle in while the engine runs with visible fulfilment delays;
half-way a scarce product is restocked (waking its backorders) and one order
is cancelled. A live Rich view shows counts, the event stream and stock; with
``--dashboard`` the flow runs on a thread behind the Textual dashboard.
Everything goes through the public :class:`realorders.Client` API.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from realorders.client import Client
from realorders.domain import Event, Order, Status
from realorders.engine import Delays
from realorders.errors import RealordersError
from realorders.intake import ParsedOrder, read_orders
from realorders.ui.style import STATUS_STYLE, clock, status_text

from .app import err, out

# (after how many submitted orders, product, units): backorders wake in arrival order
_RESTOCKS = ((24, "DK-05", 6), (36, "HD-03", 4))


def examples_dir() -> Path:
    return Path(str(files("realorders") / "examples"))


def run_demo(path: str | None, speed: float, dashboard: bool = False, serve: bool = False) -> None:
    directory = Path(path) if path else Path(tempfile.mkdtemp(prefix="realorders-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    examples = examples_dir()
    with Client(db) as client:
        client.init(examples / "inventory.csv")
        with (examples / "orders.ndjson").open("rb") as stream:
            parsed = [
                o.order
                for o in read_orders(stream, "ndjson", "orders.ndjson")
                if isinstance(o, ParsedOrder)
            ]
        err.print(
            f"demo database: {db}  ({len(parsed)} example orders, "
            f"{len(client.products())} products)",
            highlight=False,
        )
        delays = Delays(pack=0.8 / speed, ship=1.0 / speed, deliver=1.2 / speed)
        with _server(db, parsed[len(parsed) // 2].id) if serve else contextlib.nullcontext():
            if dashboard:
                _play_under_dashboard(db, parsed, delays, speed)
            else:
                asyncio.run(_play(client, parsed, delays, speed))
            report = client.check()
            counts = client.counts()
            if serve:
                _closing_summary(db, report.ok, counts)
                _serve_until_interrupted()
                return
    _closing_summary(db, report.ok, counts)


def _closing_summary(db: Path, ok: bool, counts: dict[str, int]) -> None:
    out.print(Text("finished: ") + Text(", ".join(f"{n} {s}" for s, n in counts.items() if n)))
    out.print(f"check: {'every invariant holds' if ok else 'a problem: run realorders check'}")
    out.print("explore it:")
    for command in ("list", "show ORD-0001", "inventory list", "stats"):
        out.print(Text.assemble("  ", (f"realorders --db {db} {command}", "bold")))


@contextlib.contextmanager
def _server(db: Path, follow: str) -> Iterator[str]:
    """``realorders serve`` on the demo's file (loopback, no tokens) for as long as the demo."""
    args = [sys.executable, "-m", "realorders", "--db", str(db), "serve", "--port", "0"]
    server = subprocess.Popen(
        [*args, "--no-auth", "--no-access-log"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)  # kill PID stops the server too
    try:
        url = _served_at(server)
        err.print(f"HTTP API at {url} (API docs: {url}/docs; no token needed on loopback)")
        err.print("follow an order live from another terminal:", highlight=False)
        err.print(
            Text.assemble(
                "  ", (f"curl -N '{url}/v1/events?order_id={follow}&until_done=1'", "bold")
            )
        )
        yield url
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _served_at(server: subprocess.Popen[str]) -> str:
    assert server.stderr is not None
    for line in server.stderr:
        if line.startswith("serving ") and " at " in line:
            threading.Thread(target=server.stderr.read, daemon=True).start()  # keep it drained
            return line.split(" at ", 1)[1].split()[0]
    raise RealordersError(f"the demo's HTTP server did not start (exit {server.wait()})")


def _serve_until_interrupted() -> None:
    err.print("the HTTP server keeps running for you to explore; Ctrl-C stops it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        err.print("stopped")


def _play_under_dashboard(db: Path, orders: list[Order], delays: Delays, speed: float) -> None:
    """The same flow on a thread, the dashboard in front; the engine runs until it closes."""
    from realorders.tui import run_dashboard
    from realorders.tui.feed import parse_stuck_after

    closed = threading.Event()

    def play() -> None:
        with Client(db) as client:
            asyncio.run(_play(client, orders, delays, speed, quiet=True, until=closed))

    player = threading.Thread(target=play, name="demo-flow", daemon=True)
    player.start()
    try:
        run_dashboard(db, refresh=0.25, stuck_after=parse_stuck_after("backordered=5s"))
    finally:
        closed.set()
        player.join(timeout=10)


async def _play(
    client: Client,
    orders: list[Order],
    delays: Delays,
    speed: float,
    *,
    quiet: bool = False,
    until: threading.Event | None = None,
) -> None:
    """Submit the examples in threes, cancel one, restock twice; ``until`` keeps the engine on."""
    engine = client.engine(delays=delays, poll_interval=0.02, report_interval=3600)
    engine_task = asyncio.create_task(engine.run())
    recent: deque[Event] = deque(maxlen=12)
    cursor = client.head()
    start = time.monotonic()
    live_view = out.is_terminal or quiet
    cancelled = False
    actions: list[str] = []
    restocks = list(_RESTOCKS)

    def frame() -> Group:
        return _frame(client, recent, actions, time.monotonic() - start)

    def closing() -> bool:
        """The dashboard in front was closed: stop the flow early too."""
        return until is not None and until.is_set()

    with (
        Live(frame(), console=out, refresh_per_second=8, transient=False)
        if live_view and not quiet
        else _NoLive() as live
    ):
        for index in range(0, len(orders), 3):
            if closing():
                break
            for order in orders[index : index + 3]:
                client.submit(order)
            cursor = _drain(client, cursor, recent, live_view)
            if not cancelled and index >= 12:
                cancelled = _cancel_one(client, actions)
            if restocks and index >= restocks[0][0]:
                _, product_id, units = restocks.pop(0)
                client.restock(product_id, units)
                actions.append(f"restocked {product_id} +{units}")
            live.update(frame())
            await asyncio.sleep(0.35 / speed)
        deadline = time.monotonic() + 30 / speed
        while time.monotonic() < deadline and not closing():
            cursor = _drain(client, cursor, recent, live_view)
            live.update(frame())
            if client.quiet():
                break
            await asyncio.sleep(0.1)
    while until is not None and not until.is_set():
        await asyncio.sleep(0.1)
    engine.stop()
    await engine_task


def _drain(client: Client, after: int, recent: deque[Event], live_view: bool) -> int:
    for cursor, event in client.events(after, 500):
        after = cursor
        recent.append(event)
        if not live_view:
            line = Text.assemble(
                clock(event.at), "  ", event.order_id, "  ", status_text(event.status)
            )
            if event.reason:
                line.append(f"  {event.reason}", style="dim")
            out.print(line)
    return after


def _cancel_one(client: Client, actions: list[str]) -> bool:
    for state in client.orders(status=Status.RESERVED, limit=1) or client.orders(
        status=Status.BACKORDERED, limit=1
    ):
        client.cancel(state.id, "customer changed their mind (demo)")
        actions.append(f"cancelled {state.id}")
        return True
    return False


def _frame(client: Client, recent: deque[Event], actions: list[str], elapsed: float) -> Group:
    counts = client.counts()
    flow = Text()
    for status in Status:
        flow.append(status.value, style=f"bold {STATUS_STYLE[status]}")
        flow.append(f" {counts[status.value]}   ")
    if actions:
        flow.append("\n" + " · ".join(actions), style="dim")
    events = Table(show_edge=False, header_style="bold", expand=True)
    for header in ("AT", "ORDER", "STATUS", "REASON"):
        events.add_column(header, no_wrap=header != "REASON")
    for event in reversed(recent):
        events.add_row(
            clock(event.at), event.order_id, status_text(event.status), event.reason or ""
        )
    stock = Table(show_edge=False, header_style="bold")
    for header in ("PRODUCT", "ON HAND", "RESERVED", "AVAILABLE", "WAITING"):
        stock.add_column(header, justify="left" if header == "PRODUCT" else "right")
    for level in client.levels():
        style = "yellow" if level.backordered else ("red" if level.available == 0 else "")
        stock.add_row(
            level.product_id,
            str(level.on_hand),
            str(level.reserved),
            str(level.available),
            str(level.backordered),
            style=style,
        )
    return Group(
        Panel(flow, title=f"realorders demo · {elapsed:4.1f}s", title_align="left"),
        Panel(events, title="latest events", title_align="left"),
        Panel(stock, title="inventory", title_align="left"),
    )


class _NoLive:
    """Stands in for rich.live.Live when stdout is not a terminal (events print as lines)."""

    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, renderable: object) -> None:
        return None
