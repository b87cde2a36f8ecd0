#!/usr/bin/env python3
"""End-to-end throughput, latency and memory of the embedded engine.

Imports N orders with the real console script and runs the engine to idle,
then reports orders/s, submit→terminal latency and peak RSS, next to the
ceiling measured in the same run: SQLite ``executemany`` of the same number
of event rows into a table shaped like ``events``. Two modes:

- sequential: ``import`` the whole file, then ``run --until-idle``;
- pipelined: ``run`` is already up while ``import`` streams the file in
  (how a CI job feeds a live engine); latency is meaningful only here.

Usage: python benchmarks/engine.py --n 100000 [--mode both] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from _procs import realorders_cmd
from _workload import make_workload

from realorders import Client
from realorders.engine.backends.sqlite.schema import connect
from realorders.ids import new_id

EVENTS_PER_ORDER = 5  # pending, reserved, packed, shipped, delivered


def ceiling(directory: Path, n: int) -> dict[str, float]:
    """executemany of N*5 event rows in one transaction, same columns and index as ``events``."""
    path = directory / "ceiling.db"
    conn = connect(path)
    conn.execute(
        "CREATE TABLE events (cursor INTEGER PRIMARY KEY, order_id TEXT NOT NULL, "
        "seq INTEGER NOT NULL, status TEXT NOT NULL, at REAL NOT NULL, data BLOB)"
    )
    conn.execute("CREATE UNIQUE INDEX events_order_seq ON events(order_id, seq)")
    now = time.time()
    statuses = ("pending", "reserved", "packed", "shipped", "delivered")
    rows = [
        (new_id(), seq + 1, statuses[seq], now, None)
        for _ in range(n)
        for seq in range(EVENTS_PER_ORDER)
    ]
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO events (order_id, seq, status, at, data) VALUES (?, ?, ?, ?, ?)", rows
    )
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return {
        "rows": len(rows),
        "seconds": seconds,
        "rows_per_second": len(rows) / seconds,
        "orders_per_second": n / seconds,
    }


class Child:
    """A realorders subprocess whose own peak RSS we sample.

    ``wait4``'s ru_maxrss also counts the parent's pages the child had before
    ``exec``, so this reads VmHWM (the exec'd image's high-water mark) from
    /proc every 20 ms instead; the last reading before exit is the peak.
    """

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.peak_kb = 0
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        # never poll()/wait here: reaping is reap()'s job (it needs wait4's rusage)
        status = Path(f"/proc/{self.proc.pid}/status")
        while True:
            try:
                text = status.read_text()
            except OSError:
                return
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if fields.get("State", "").strip().startswith("Z"):
                return
            hwm = fields.get("VmHWM")
            if hwm is not None:
                self.peak_kb = max(self.peak_kb, int(hwm.split()[0]))
            time.sleep(0.02)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def reap(self) -> dict[str, float]:
        """Wait for exit; the child's own CPU seconds (wait4) and peak RSS (VmHWM)."""
        proc = self.proc
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self._sampler.join()
        if proc.returncode not in (0, -signal.SIGTERM):
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"{proc.args} failed ({proc.returncode}): {err}")
        return {"cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": self.peak_kb / 1024}


def measure(directory: Path, mode: str, inventory: Path, orders: Path, n: int) -> dict[str, Any]:
    db = directory / f"{mode}.db"
    env = {**os.environ, "REALORDERS_DB": str(db)}
    cmd = realorders_cmd()
    subprocess.run(
        [*cmd, "init", "--inventory", str(inventory)], env=env, check=True, capture_output=True
    )
    started = time.perf_counter()
    wall_start = time.time()
    if mode == "sequential":
        import_usage = Child([*cmd, "import", str(orders)], env).reap()
        import_seconds = time.perf_counter() - started
        engine_usage = Child([*cmd, "run", "--until-idle"], env).reap()
        total = time.perf_counter() - started
    else:
        engine = Child([*cmd, "run"], env)
        time.sleep(0.5)  # let the engine claim the database before the clock matters
        started = time.perf_counter()
        wall_start = time.time()
        import_usage = Child([*cmd, "import", str(orders)], env).reap()
        import_seconds = time.perf_counter() - started
        with Client(db) as client:
            while client.engine_info().backlog or client.backend.orders.counts()["delivered"] < n:
                time.sleep(0.02)
        total = time.perf_counter() - started
        engine.send_signal(signal.SIGTERM)
        engine_usage = engine.reap()
    with Client(db) as client:
        stats = client.stats()
        report = client.check()
        last_terminal = (
            client.backend.connection().execute("SELECT max(terminal_at) FROM orders").fetchone()[0]
        )
    if mode == "pipelined":
        total = max(total, last_terminal - wall_start)
    delivered = stats["by_status"]["delivered"]
    if delivered != n or not report.ok:
        raise SystemExit(f"{mode}: {delivered}/{n} delivered, check ok={report.ok}")
    return {
        "mode": mode,
        "orders": n,
        "seconds": total,
        "import_seconds": import_seconds,
        "orders_per_second": n / total,
        "latency_p50": stats["latency_seconds"]["p50"],
        "latency_p99": stats["latency_seconds"]["p99"],
        "import": import_usage,
        "engine": engine_usage,
        "engine_cpu_per_1000": engine_usage["cpu_seconds"] / n * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="orders (default 100000)")
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=["sequential", "pipelined", "both"], default="both")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="realorders-bench-"))
    try:
        inventory, orders = make_workload(directory, args.n, args.products, args.seed)
        results: dict[str, Any] = {
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
            "n": args.n,
            "ceiling": ceiling(directory, args.n),
            "runs": [],
        }
        modes = ["sequential", "pipelined"] if args.mode == "both" else [args.mode]
        for mode in modes:
            results["runs"].append(measure(directory, mode, inventory, orders, args.n))
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    print_table(results)
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


def print_table(results: dict[str, Any]) -> None:
    ceil = results["ceiling"]
    print(f"# {results['machine']}")
    print(
        f"ceiling: executemany {ceil['rows']:,} event rows in {ceil['seconds']:.2f}s = "
        f"{ceil['rows_per_second']:,.0f} rows/s ({ceil['orders_per_second']:,.0f} orders/s)"
    )
    print(
        "| mode | orders | seconds | orders/s | × ceiling time | p50 s | p99 s | "
        "engine CPU s/1k | engine RSS MB | import RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in results["runs"]:
        print(
            f"| {run['mode']} | {run['orders']:,} | {run['seconds']:.2f} | "
            f"{run['orders_per_second']:,.0f} | {run['seconds'] / ceil['seconds']:.2f} | "
            f"{run['latency_p50']:.3f} | {run['latency_p99']:.3f} | "
            f"{run['engine_cpu_per_1000']:.3f} | {run['engine']['peak_rss_mb']:.0f} | "
            f"{run['import']['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
