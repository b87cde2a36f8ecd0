"""The ceiling: raw ``executemany`` of the event rows realorders writes, in one transaction.

Not a contender: no orders, no stock, no reads, no commands, no read model,
only the event rows (as many as realorders writes for this workload: 5 per
delivered order, 2 per backordered one, 6 per order a restock wakes: pending,
backordered, reserved, packed, shipped, delivered) into a table shaped like realorders'
``events`` (same columns, same ``(order_id, seq)`` index) with the connection
settings of realorders' own store (its ``connect``: WAL, ``synchronous=NORMAL``,
16 MiB cache). Rows are built outside the clock in chunks of 100,000 so that
memory stays bounded at any N; only the inserts and the ``COMMIT`` are timed.
Counts and stock are ``expected()``'s, not read from a store. Restocks are no
rows of realorders' ``events`` (its ledger holds them): they change only which
orders get the sixth row.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import workload

from realorders.engine.backends.sqlite.schema import connect

MODES = ("saturation",)
KIND = "ceiling"
WORKLOADS = ("standard", "backorder", "restock")
CHUNK = 100_000
DELIVERED = ("pending", "reserved", "packed", "shipped", "delivered")
BACKORDERED = ("pending", "backordered")
WOKEN = ("pending", "backordered", "reserved", "packed", "shipped", "delivered")


def rows(
    args: common.Args, stock: dict[str, int], restocks: list[workload.Restock], at: float
) -> Iterator[tuple]:
    """Each order's events: delivered, backordered, or backordered until a restock woke it.

    An order is delivered when every product it asks for has stock or gets
    some; it waited when one of them had none and its first restock came after
    the order (the workload's classes make that the whole rule).
    """
    first: dict[str, int] = {}  # sku -> orders submitted before its first restock
    for r in restocks:
        first[r.sku] = min(first.get(r.sku, r.after), r.after)
    for i, order in enumerate(args.orders()):
        skus = [sku for sku, _ in order.lines]
        if not all(stock[sku] > 0 or sku in first for sku in skus):
            statuses = BACKORDERED
        elif any(stock[sku] <= 0 and first[sku] > i for sku in skus):
            statuses = WOKEN
        else:
            statuses = DELIVERED
        for seq, status in enumerate(statuses, 1):
            yield (order.order_id, seq, status, at, None)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    conn = connect(args.dir / "ceiling.db")
    conn.execute(
        "CREATE TABLE events (cursor INTEGER PRIMARY KEY, order_id TEXT NOT NULL, "
        "seq INTEGER NOT NULL, status TEXT NOT NULL, at REAL NOT NULL, data BLOB)"
    )
    conn.execute("CREATE UNIQUE INDEX events_order_seq ON events(order_id, seq)")
    stock = args.stock()
    restocks = args.restocks()
    source = rows(args, stock, restocks, time.time())
    clock = common.Clock()
    chunk = [row for _, row in zip(range(CHUNK), source, strict=False)]
    clock.start()
    building = 0.0
    conn.execute("BEGIN IMMEDIATE")
    while chunk:
        conn.executemany(
            "INSERT INTO events (order_id, seq, status, at, data) VALUES (?, ?, ?, ?, ?)", chunk
        )
        paused = time.perf_counter()
        chunk = [row for _, row in zip(range(CHUNK), source, strict=False)]
        building += time.perf_counter() - paused
    conn.execute("COMMIT")
    clock.stop()
    clock.stop_cpu()
    clock.seconds -= building
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    out = workload.outcome(stock, args.orders(), restocks)
    common.write_result(
        args,
        contender="ceiling",
        durability="SQLite synchronous=NORMAL, WAL (realorders' connect), one transaction",
        versions=common.versions("realorders"),
        clock=clock,
        events=events,
        counts=out.counts,
        stock=out.stock,
        latency={"p50": 0.0, "p99": 0.0},
        notes=(
            f"a ceiling, not a contender: executemany of {events:,} event rows only; counts "
            "and stock are expected()'s, not read from a store; its CPU includes building "
            "the rows"
        ),
    )


if __name__ == "__main__":
    main()
