"""GET /v1/orders/{id} with a million orders in the store, against the same server's ceiling.

    python benchmarks/http_get.py [--backend sqlite|kafka|both] [--n 1000000]
                                  [--seconds 10] [--connections 64] [--smoke]

For each backend: ``realorders init --inventory`` and ``realorders import`` of
N orders (1-3 lines over 50 products, fixed seed) with the engine running (no
fulfilment delays) until every order is terminal; then, the engine still
running beside the server, wrk asks ``GET /v1/orders/{id}`` of a random one of
the N orders per request (each answer is the whole order: items, totals,
event timeline), and ``GET /healthz`` (constant JSON, no store) for the
ceiling, in the same run. Prints one JSON line per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import start_engine, start_server, stop, wrk
from _procs import realorders_cmd
from _stores import RunningStore, running_store
from _workload import make_workload

from realorders import Client
from realorders.domain import TERMINAL
from realorders.tokens import Scope


def realorders(store: RunningStore, *args: str) -> None:
    subprocess.run([*realorders_cmd(), *args], env=store.env, check=True, capture_output=True)


def load(store: RunningStore, engine: subprocess.Popen[bytes], orders: Path, n: int) -> float:
    """Import the orders and wait until the engine has finished them all; seconds taken."""
    started = time.perf_counter()
    realorders(store, "import", str(orders))
    with Client(config=store.config) as shop:
        while sum(v for k, v in shop.counts().items() if k in TERMINAL) < n:
            if engine.poll() is not None:
                sys.exit(f"the engine exited {engine.returncode} while loading")
            time.sleep(1)
    return time.perf_counter() - started


def measure(store: RunningStore, args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    inventory, orders = make_workload(directory, args.n, 50, seed=11)
    realorders(store, "init", "--inventory", str(inventory))  # the store, before its engine
    engine = start_engine(store)
    try:
        loaded = load(store, engine, orders, args.n)
        with Client(config=store.config) as shop:
            token = shop.create_token("bench-get", Scope.READ)[1]
        server, url = start_server(store)
        env = {"REALORDERS_BENCH_TOKEN": token, "REALORDERS_BENCH_N": str(args.n)}
        try:
            wrk(url, "get_orders.lua", args.warmup, args.connections, **env)  # warm-up
            ceiling = wrk(f"{url}/healthz", "get.lua", args.seconds, args.connections, **env)
            gets = wrk(url, "get_orders.lua", args.seconds, args.connections, **env)
        finally:
            stop(server)
    finally:
        stop(engine)
    if gets["non2xx"] or gets["errors"]:
        sys.exit(f"{store.backend}: {gets['non2xx']} non-2xx answers, {gets['errors']} errors")
    return {
        "backend": store.backend,
        "orders_in_store": args.n,
        "load_seconds": round(loaded, 1),
        "healthz_ceiling": ceiling,
        "get_order": gets,
        "get_vs_ceiling": round(gets["per_second"] / ceiling["per_second"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=["sqlite", "kafka", "both"], default="both")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of GETs first, uncounted")
    parser.add_argument("--smoke", action="store_true", help="2,000 orders, 2 s, 8 connections")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.seconds, args.connections, args.warmup = 2000, 2, 8, 1
    for backend in ["sqlite", "kafka"] if args.backend == "both" else [args.backend]:
        directory = Path(tempfile.mkdtemp(prefix=f"realorders-http-get-{backend}-"))
        try:
            with running_store(backend, directory) as store:
                results = measure(store, args, directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        results["machine"] = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
        print(json.dumps(results))


if __name__ == "__main__":
    main()
