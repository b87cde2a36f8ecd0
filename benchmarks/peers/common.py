"""What every contender shares: arguments, the clock, the paced submitter, the result.

Stdlib only, so that a contender's only third-party imports are its own peer.
A contender is a script run as::

    python contenders/NAME.py --n N --seed S --dir SCRATCH --rate R --out RESULT.json \
        [--workload standard|backorder|restock]

It sets up its store in SCRATCH (untimed), starts the :class:`Clock` just
before its first submit, stops it when its last order is terminal (delivered
or backordered), reads its final state back from the store and calls
:func:`write_result`. See README.md for the whole protocol.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import platform
import resource
import sqlite3
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _procs

import workload
from _procs import proc_cpu, realorders_cmd

__all__ = [
    "SKIP_EXIT",
    "Args",
    "Clock",
    "Pacer",
    "delivery",
    "parse_args",
    "percentiles",
    "percentiles_sql",
    "proc_cpu",
    "realorders_cmd",
    "segments",
    "skip",
    "versions",
    "write_result",
]

SKIP_EXIT = 3  # "cannot run here" (a peer not installed, a service missing): not a failure
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Args:
    n: int
    seed: int
    dir: Path
    rate: float  # orders/s; 0 = saturation
    out: Path
    products: int
    workload: str = "standard"  # a key of workload.SHAPES

    @property
    def mode(self) -> str:
        return "saturation" if self.rate <= 0 else "rate"

    def orders(self) -> Iterator[workload.Order]:
        """This run's orders in submission order, generated as they are consumed."""
        return workload.iter_orders(self.n, self.seed, self.products, self.workload)

    def stock(self) -> dict[str, int]:
        """Initial stock per sku."""
        return workload.stock_for(self.n, self.seed, self.products, self.workload)

    def restocks(self) -> list[workload.Restock]:
        """The restocks to interleave with the orders (:meth:`Pacer.run` does it)."""
        return workload.restocks_for(self.n, self.seed, self.products, self.workload)


def parse_args(description: str | None = None, argv: Sequence[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, required=True, help="orders")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, required=True, help="scratch directory (created)")
    parser.add_argument("--rate", type=float, default=0.0, help="orders/s, open loop; 0 = max")
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--workload", choices=sorted(workload.SHAPES), default="standard")
    ns = parser.parse_args(argv)
    ns.dir.mkdir(parents=True, exist_ok=True)
    return Args(ns.n, ns.seed, ns.dir, ns.rate, ns.out, ns.products, ns.workload)


def skip(reason: str) -> NoReturn:
    """Exit with :data:`SKIP_EXIT`: the harness shows ``not run: REASON`` instead of a failure."""
    print(f"skip: {reason}", file=sys.stderr)
    raise SystemExit(SKIP_EXIT)


def cpu_now() -> float:
    """CPU seconds of this process and of the children it has reaped so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(slots=True)
class Clock:
    """Wall time from the first submit to the last terminal order, and the CPU spent in it.

    ``stop()`` when the last order is terminal; ``stop_cpu()`` once any child
    processes that worked in the window are reaped (their CPU counts only then).
    """

    started: float = 0.0  # perf_counter
    wall_started: float = 0.0  # time.time(), to compare with timestamps in stores
    seconds: float = 0.0
    cpu_started: float = 0.0
    cpu_seconds: float | None = None

    def start(self) -> None:
        self.cpu_started = cpu_now()
        self.wall_started = time.time()
        self.started = time.perf_counter()

    def stop(self) -> float:
        self.seconds = time.perf_counter() - self.started
        return self.seconds

    def stop_cpu(self) -> None:
        self.cpu_seconds = cpu_now() - self.cpu_started


@dataclass(slots=True)
class Pacer:
    """Hands orders to ``submit`` in batches: as fast as possible, or at ``rate`` per second.

    Open loop: order ``i`` is due at ``start + i / rate`` by the wall clock and
    is submitted then (with any others due), whether or not earlier orders are
    processed. If the submitter itself falls behind (a busy core), the lag of
    each order behind its due time is recorded: a contender whose submitter
    lags is slower than its latency says, and the result shows it.
    """

    rate: float
    batch: int = 1  # at saturation: orders per submit call
    lags: array[float] = field(default_factory=lambda: array("d"))
    submitted: int = 0
    wall_start: float = 0.0  # time.time() when order 0 was due

    def run(
        self,
        orders: Iterable[T],
        submit: Callable[[list[T]], None],
        clock: Clock | None = None,
        restocks: Sequence[workload.Restock] = (),
        restock: Callable[[workload.Restock], None] | None = None,
    ) -> None:
        """Submit every order; starts ``clock`` (if given) just before the first submit.

        Each of ``restocks`` is handed to ``restock`` once ``after`` orders are
        submitted, never inside a batch: a chunk ends where a restock is due.
        """
        if restocks and restock is None:
            raise ValueError("this workload has restocks: pass restock=")
        queued = deque(sorted(restocks))
        it = iter(orders)
        if clock is not None:
            clock.start()

        def restock_due() -> int:
            """Hand over the restocks due now; how many orders may go before the next."""
            while queued and queued[0].after <= self.submitted:
                assert restock is not None
                restock(queued.popleft())
            return queued[0].after - self.submitted if queued else 1 << 62

        if self.rate <= 0:
            while chunk := _take(it, min(self.batch, restock_due())):
                submit(chunk)
                self.submitted += len(chunk)
            restock_due()
            return
        self.wall_start = time.time()
        start = time.perf_counter()
        interval = 1.0 / self.rate
        pending: T | None = next(it, None)
        i = 0
        while pending is not None:
            now = time.perf_counter()
            due = int((now - start) * self.rate) + 1  # orders 0..due-1 are due by now
            due = min(due, i + restock_due())
            chunk = []
            while pending is not None and i < due:
                chunk.append(pending)
                self.lags.append(now - (start + i * interval))
                i += 1
                pending = next(it, None)
            if chunk:
                submit(chunk)
                self.submitted += len(chunk)
            if pending is not None:
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        restock_due()

    def lag(self) -> dict[str, float] | None:
        """Submit time minus due time (seconds): p50, p99, max; None at saturation."""
        if not self.lags:
            return None
        ranked = percentiles(self.lags)
        return {**ranked, "max": max(self.lags)}


def _take(it: Iterator[T], n: int) -> list[T]:
    chunk = []
    for item in it:
        chunk.append(item)
        if len(chunk) >= n:
            break
    return chunk


def percentiles(values: Iterable[float], points: Sequence[float] = (50, 99)) -> dict[str, float]:
    """Nearest-rank percentiles, ``{"p50": .., "p99": ..}`` (0.0 for no values)."""
    ranked = sorted(values)
    out = {}
    for p in points:
        if not ranked:
            out[f"p{p:g}"] = 0.0
            continue
        index = max(0, min(len(ranked) - 1, -(-len(ranked) * p // 100) - 1))
        out[f"p{p:g}"] = float(ranked[int(index)])
    return out


def percentiles_sql(
    conn: sqlite3.Connection, expr: str, table: str, points: Sequence[float] = (50, 99)
) -> dict[str, float]:
    """The same nearest-rank percentiles of ``expr`` over ``table``, sorted inside SQLite.

    Keeps a million latencies out of Python's memory (the contender's peak RSS
    is part of what is measured).
    """
    count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    out = {}
    for p in points:
        if not count:
            out[f"p{p:g}"] = 0.0
            continue
        index = max(0, min(count - 1, -(-count * p // 100) - 1))
        (value,) = conn.execute(
            f"SELECT {expr} AS x FROM {table} ORDER BY x LIMIT 1 OFFSET ?", (int(index),)
        ).fetchone()
        out[f"p{p:g}"] = float(value)
    return out


def segments(
    args: Args, restocks: list[workload.Restock]
) -> list[tuple[Path | None, list[workload.Restock]]]:
    """The orders in NDJSON files split where restocks fall due: ``[(file, restocks after it)]``.

    Without restocks, one ``orders.ndjson`` with every order (what
    ``workload.write_files_for`` writes). A segment with no orders (a restock
    due before the first order, or after the last) has no file.
    """
    waves: dict[int, list[workload.Restock]] = {}
    for r in restocks:
        waves.setdefault(r.after, []).append(r)
    orders = args.orders()
    steps: list[tuple[Path | None, list[workload.Restock]]] = []
    done = 0
    for end in sorted({*waves, args.n}):
        path = args.dir / (f"orders-{len(steps)}.ndjson" if waves else "orders.ndjson")
        with path.open("w") as f:
            for order in itertools.islice(orders, max(0, end - done)):
                f.write(json.dumps(workload.order_json(order), separators=(",", ":")) + "\n")
        steps.append((path if end > done else None, waves.get(end, [])))
        done = max(done, end)
    return steps


def delivery(restocks: list[workload.Restock]) -> list[str]:
    """``SKU QTY SKU QTY …``: the arguments of one ``inventory restock``."""
    return [arg for r in restocks for arg in (r.sku, str(r.quantity))]


def versions(*packages: str) -> dict[str, str]:
    """Python, SQLite and each named distribution's version."""
    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def write_result(
    args: Args,
    *,
    contender: str,
    durability: str,
    versions: dict[str, str],
    clock: Clock,
    events: int,
    counts: dict[str, int],
    stock: dict[str, int],
    latency: dict[str, float],
    notes: str = "",
    pacer: Pacer | None = None,
    **extra: Any,
) -> None:
    """RESULT.json as the harness reads it (keys documented in README.md)."""
    result: dict[str, Any] = {
        "contender": contender,
        "durability": durability,
        "versions": versions,
        "n": args.n,
        "workload": args.workload,
        "rate": args.rate,
        "seconds": clock.seconds,
        "events": events,
        "counts": {status: count for status, count in counts.items() if count},
        "stock": stock,
        "latency": latency,
        "notes": notes,
    }
    if clock.cpu_seconds is not None:
        result["cpu_seconds_window"] = clock.cpu_seconds
    if pacer is not None and (lag := pacer.lag()) is not None:
        result["submit_lag"] = lag
    result.update(extra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
