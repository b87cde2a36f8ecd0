"""The hand-rolled loop most teams write first: sqlite3, one transaction per state change.

Tables ``orders``, ``stock`` and ``events``. A submitter thread inserts each
order as ``pending`` (with its first event) on its own connection; the worker
(main thread, second connection) polls for new orders in arrival order and
walks each one through reserve-or-backorder → packed → shipped → delivered,
each step one ``BEGIN IMMEDIATE`` … ``COMMIT`` with its event row. The
reservation reads and decrements every line's stock inside the write
transaction, so it is all-or-nothing. ``synchronous=FULL`` in WAL: each commit
is fsynced, durable even against power loss.

The two threads take turns at writing through one ``threading.Lock``: left to
SQLite's busy handler, a writer that finds the database locked sleeps 1, 2,
5, … up to 100 ms before retrying, and at 1,000 orders/s that alone made the
loop's p99 latency 0.3-0.5 s (measured): the first thing a team would fix.

Restocks (``--workload restock``), the wake a team would hand-roll: the
submitter records each restock when it falls due (a ``restocks`` row, one
transaction through the same lock, ``after_seq`` = the last order submitted
before it); the worker applies it at that point of the arrival order, after
order ``after_seq`` and before the next: it adds the stock, then retries the
orders waiting for that product (``waiting(sku, seq)``, filled when an order is
backordered: the products it is short of; only in this workload, so the others
run the loop as lean as a team would write it without restocks), in arrival order, all-or-nothing; a
woken order goes on backordered → reserved → packed → shipped → delivered,
its event numbers continuing (6 events). One transaction for the stock, then
one per state change of each woken order (or all inside the open group
transaction, grouping). Adding the stock in the submitter's own transaction
would be simpler, but orders that arrived before the restock and that the
worker has not reached yet would take it without ever being backordered: the
same final state by fewer state changes than realorders makes, which follows
its log. The worker is done when it has processed every order and applied
every restock; the orders a restock wakes are delivered while it is applied.

``run_loop`` is shared with ``sqlite_group.py`` (commit every 1,000 orders) and
``sqlite_loop_normal.py`` (``synchronous=NORMAL``, realorders' setting).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import workload

SCHEMA = """
CREATE TABLE orders (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    customer TEXT NOT NULL,
    lines TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE UNIQUE INDEX events_order_seq ON events(order_id, seq);
CREATE TABLE restocks (
    id INTEGER PRIMARY KEY,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    after_seq INTEGER NOT NULL,
    submitted_at REAL NOT NULL,
    applied_at REAL
);
CREATE TABLE waiting (
    sku TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (sku, seq)
) WITHOUT ROWID;
"""
# ~800-1,400 orders/s here: 1M orders would take 15-20 min; 10k and 100k show its per-order
# cost is flat (one fsync per state change).
MAX_N = 100_000
WORKLOADS = ("standard", "backorder", "restock")
IDLE_SLEEP = 0.002  # the worker's poll interval when it has caught up with the submitter
PAGE = 1000  # orders read per poll
WRITE_LOCK = threading.Lock()  # one writer at a time, without the busy handler's sleeps
STAGES = ("packed", "shipped", "delivered")


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA busy_timeout = 60000")
    return conn


class Worker:
    """Processes orders and restocks in arrival order; commits every ``commit_every`` orders.

    ``commit_every`` 1 is one transaction per state change (a restock's stock is
    one, each woken order's reservation one, each of its stages one);
    otherwise every change of up to that many orders, with the restocks and
    wakes among them, is one transaction.
    """

    def __init__(self, conn: sqlite3.Connection, commit_every: int, wakes: bool) -> None:
        self.conn = conn
        self.commit_every = commit_every
        # Only a workload with restocks pays for remembering who waits for what: without
        # them the loop is as lean as a team would write it (the peer at its strongest).
        self.wakes = wakes
        self.per_change = commit_every == 1
        self.after = 0  # the last order (seq) processed
        self.processed = 0
        self.restocked = 0  # the last restock (id) applied
        self.restocks = 0  # restocks applied
        self.woken = 0  # backordered orders a restock woke and delivered
        self._open = False  # a group transaction is open
        self._in_group = 0  # orders in it

    def step(self) -> int:
        """Process what arrived since the last step, in arrival order; how many items."""
        conn = self.conn
        rows = conn.execute(
            "SELECT seq, id, lines FROM orders WHERE seq > ? ORDER BY seq LIMIT ?",
            (self.after, PAGE),
        ).fetchall()
        # Read after the orders: a restock recorded since then follows every order read.
        upto = rows[-1][0] if rows else self.after
        restocks = deque(
            conn.execute(
                "SELECT id, sku, quantity, after_seq FROM restocks "
                "WHERE id > ? AND after_seq <= ? ORDER BY id",
                (self.restocked, upto),
            ).fetchall()
        )
        items = len(rows) + len(restocks)
        if not items:
            return 0
        for seq, order_id, lines in rows:
            while restocks and restocks[0][3] < seq:
                self._restock(*restocks.popleft()[:3])
            self._begin_group()
            self._process(seq, order_id, json.loads(lines))
            self.after = seq
            self.processed += 1
            self._in_group += 1
            if self._in_group >= self.commit_every:
                self._commit_group()
        while restocks:
            self._restock(*restocks.popleft()[:3])
        self._commit_group()  # caught up: commit what is open
        return items

    # -- transactions: per change, or one per group of orders -----------------

    def _begin(self) -> None:
        WRITE_LOCK.acquire()
        self.conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")
        WRITE_LOCK.release()

    def _begin_change(self) -> None:
        if self.per_change:
            self._begin()

    def _commit_change(self) -> None:
        if self.per_change:
            self._commit()

    def _begin_group(self) -> None:
        if not self.per_change and not self._open:
            self._begin()
            self._open = True

    def _commit_group(self) -> None:
        if self._open:
            self._commit()
            self._open = False
        self._in_group = 0

    # -- the lifecycle ---------------------------------------------------------

    def _process(self, seq: int, order_id: str, lines: list[list]) -> None:
        self._begin_change()
        ok = self._reserve(seq, order_id, lines, woken=False)
        self._commit_change()
        if ok:
            self._stages(seq, order_id, first=3)

    def _reserve(self, seq: int, order_id: str, lines: list[list], woken: bool) -> bool:
        """Reserve every line or none (inside a write transaction); backorder a new order.

        A backordered order is remembered under each product it is short of
        (``waiting``); a woken one that is still short changes nothing but that.
        """
        conn = self.conn
        short = [
            sku
            for sku, qty in lines
            if conn.execute("SELECT available FROM stock WHERE sku = ?", (sku,)).fetchone()[0] < qty
        ]
        if short:
            if self.wakes:
                conn.executemany(
                    "INSERT OR IGNORE INTO waiting (sku, seq) VALUES (?, ?)",
                    [(sku, seq) for sku in short],
                )
            if not woken:
                self._change(seq, order_id, "backordered", 2)
            return False
        conn.executemany(
            "UPDATE stock SET available = available - ? WHERE sku = ?",
            [(qty, sku) for sku, qty in lines],
        )
        if woken:
            conn.executemany(
                "DELETE FROM waiting WHERE sku = ? AND seq = ?", [(sku, seq) for sku, _ in lines]
            )
        self._change(seq, order_id, "reserved", 3 if woken else 2)
        return True

    def _stages(self, seq: int, order_id: str, first: int) -> None:
        for number, status in enumerate(STAGES, first):
            self._begin_change()
            self._change(seq, order_id, status, number)
            self._commit_change()

    def _restock(self, restock_id: int, sku: str, quantity: int) -> None:
        """Add the stock, then retry the orders waiting for it, in arrival order."""
        conn = self.conn
        self._begin_change()
        self._begin_group()
        conn.execute("UPDATE stock SET available = available + ? WHERE sku = ?", (quantity, sku))
        conn.execute("UPDATE restocks SET applied_at = ? WHERE id = ?", (time.time(), restock_id))
        waiting = conn.execute(
            "SELECT o.seq, o.id, o.lines FROM waiting w JOIN orders o ON o.seq = w.seq "
            "WHERE w.sku = ? ORDER BY w.seq",
            (sku,),
        ).fetchall()
        self._commit_change()
        self.restocked = restock_id
        self.restocks += 1
        for seq, order_id, lines in waiting:  # backordered -> reserved -> … -> delivered
            self._begin_change()
            ok = self._reserve(seq, order_id, json.loads(lines), woken=True)
            self._commit_change()
            if ok:
                self._stages(seq, order_id, first=4)
                self.woken += 1

    def _change(self, seq: int, order_id: str, status: str, number: int) -> None:
        now = time.time()
        self.conn.execute(
            "UPDATE orders SET status = ?, updated_at = ? WHERE seq = ?", (status, now, seq)
        )
        self.conn.execute(
            "INSERT INTO events (order_id, seq, status, at) VALUES (?, ?, ?, ?)",
            (order_id, number, status, now),
        )


def create(path: Path, synchronous: str, stock: dict[str, int]) -> None:
    setup = connect(path, synchronous)
    setup.executescript(SCHEMA)
    setup.execute("BEGIN")
    setup.executemany("INSERT INTO stock VALUES (?, ?)", stock.items())
    setup.execute("COMMIT")
    setup.close()


def read_back(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    out = {
        "counts": dict(conn.execute("SELECT status, count(*) FROM orders GROUP BY status")),
        "stock": dict(conn.execute("SELECT sku, available FROM stock")),
        "events": conn.execute("SELECT count(*) FROM events").fetchone()[0],
        "latency": common.percentiles_sql(conn, "updated_at - submitted_at", "orders"),
    }
    conn.close()
    return out


def run_loop(name: str, commit_every: int, synchronous: str, durability: str) -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    path = args.dir / f"{name}.db"
    create(path, synchronous, args.stock())
    restocks = args.restocks()

    submit_conn = connect(path, synchronous)

    def submit(batch: list[workload.Order]) -> None:
        # One transaction per submit call: per order, or per 1,000 when grouping.
        now = time.time()
        WRITE_LOCK.acquire()
        submit_conn.execute("BEGIN IMMEDIATE")
        for order in batch:
            submit_conn.execute(
                "INSERT INTO orders (id, customer, lines, status, submitted_at, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?, ?)",
                (order.order_id, order.customer, json.dumps(order.lines), now, now),
            )
            submit_conn.execute(
                "INSERT INTO events (order_id, seq, status, at) VALUES (?, 1, 'pending', ?)",
                (order.order_id, now),
            )
        submit_conn.execute("COMMIT")
        WRITE_LOCK.release()

    def restock(r: workload.Restock) -> None:
        # One transaction: the worker applies it after the orders submitted before it.
        WRITE_LOCK.acquire()
        submit_conn.execute("BEGIN IMMEDIATE")
        submit_conn.execute(
            "INSERT INTO restocks (sku, quantity, after_seq, submitted_at) "
            "VALUES (?, ?, (SELECT coalesce(max(seq), 0) FROM orders), ?)",
            (r.sku, r.quantity, time.time()),
        )
        submit_conn.execute("COMMIT")
        WRITE_LOCK.release()

    clock = common.Clock()
    pacer = common.Pacer(args.rate, batch=commit_every)
    failure: list[BaseException] = []

    def submitter() -> None:
        try:
            pacer.run(args.orders(), submit, restocks=restocks, restock=restock)
        except BaseException as exc:  # surfaced by the main thread
            failure.append(exc)

    worker = Worker(connect(path, synchronous), commit_every, wakes=bool(restocks))
    clock.start()
    thread = threading.Thread(target=submitter, name="submitter")
    thread.start()
    # done: every order processed, every restock applied (and the orders it woke with it)
    while (worker.processed < args.n or worker.restocks < len(restocks)) and not failure:
        if not worker.step():
            time.sleep(IDLE_SLEEP)
    clock.stop()
    thread.join()
    clock.stop_cpu()
    if failure:
        raise failure[0]
    submit_conn.close()
    worker.conn.close()

    write = read_back(path)
    common.write_result(
        args,
        contender=name,
        durability=durability,
        versions=common.versions(),
        clock=clock,
        pacer=pacer,
        notes=(
            f"submitter thread + worker thread on two connections, writing in turns (a lock); "
            f"worker polls every "
            f"{IDLE_SLEEP * 1000:g} ms when idle; latency = terminal updated_at - submitted_at"
            + (
                f"; {len(restocks)} restocks applied by the worker in arrival order, "
                f"{worker.woken:,} backordered orders woken and delivered"
                if restocks
                else ""
            )
        ),
        **write,
    )


if __name__ == "__main__":
    run_loop(
        "sqlite_loop",
        commit_every=1,
        synchronous="FULL",
        durability="SQLite synchronous=FULL, WAL, one transaction per state change",
    )
