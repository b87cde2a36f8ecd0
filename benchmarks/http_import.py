"""POST /v1/orders:import of a big file against ``realorders import`` of the same file.

    python benchmarks/http_import.py [--backend sqlite|kafka|both] [--n 100000]
                                     [--rounds 2] [--smoke]

For each backend and round, two fresh stores with the same catalogue
(``realorders init --inventory``) and an engine running beside each (no
fulfilment delays): the same NDJSON file of N orders (1-3 lines over 50
products, fixed seed) goes in by ``realorders import FILE --json`` and by curl
streaming it to ``POST /v1/orders:import`` of a running ``realorders serve``
(only the upload is timed, not the server's start). Rounds alternate the two,
so drift on the shared machine hits both; the best round of each is the
figure. Every order must be accepted both ways.
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
from _http import start_engine, start_server, stop
from _procs import realorders_cmd
from _stores import RunningStore, running_store
from _workload import make_workload

from realorders import Client
from realorders.tokens import Scope


def prepared(store: RunningStore, inventory: Path) -> None:
    subprocess.run(
        [*realorders_cmd(), "init", "--inventory", str(inventory)],
        env=store.env,
        check=True,
        capture_output=True,
    )


def by_cli(store: RunningStore, orders: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [*realorders_cmd(), "import", str(orders), "--json"],
        env=store.env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started, json.loads(done.stdout)


def by_http(store: RunningStore, orders: Path) -> tuple[float, dict[str, Any]]:
    with Client(config=store.config) as shop:
        token = shop.create_token("bench-import", Scope.WRITE)[1]
    server, url = start_server(store)
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [
                "curl", "--silent", "--show-error", "--fail-with-body", "--no-buffer",
                "-H", f"Authorization: Bearer {token}",
                "-H", "Content-Type: application/x-ndjson",
                "-T", str(orders), "-X", "POST",  # -T streams the file (no whole-file buffer)
                f"{url}/v1/orders:import",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return time.perf_counter() - started, json.loads(done.stdout)
    finally:
        stop(server)


def measure(
    base: RunningStore, inventory: Path, orders: Path, n: int, rounds: int
) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {"cli": [], "http": []}
    for number in range(rounds):
        ways = ("cli", "http") if number % 2 == 0 else ("http", "cli")
        for way in ways:
            store = base.fresh(f"{way}{number}")
            prepared(store, inventory)
            engine = start_engine(store)
            try:
                took, summary = (by_cli if way == "cli" else by_http)(store, orders)
            finally:
                stop(engine)
            if summary.get("accepted") != n:
                sys.exit(f"{way} import accepted {summary.get('accepted')} of {n}: {summary}")
            seconds[way].append(round(took, 2))
    best = {way: min(values) for way, values in seconds.items()}
    return {
        "backend": base.backend,
        "n": n,
        "seconds": seconds,
        "cli_orders_per_second": round(n / best["cli"]),
        "http_orders_per_second": round(n / best["http"]),
        "http_vs_cli": round(best["cli"] / best["http"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=["sqlite", "kafka", "both"], default="both")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="2,000 orders, one round")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.rounds = 2000, 1
    for backend in ["sqlite", "kafka"] if args.backend == "both" else [args.backend]:
        directory = Path(tempfile.mkdtemp(prefix=f"realorders-http-import-{backend}-"))
        try:
            inventory, orders = make_workload(directory, args.n, 50, seed=7)
            with running_store(backend, directory) as store:
                results = measure(store, inventory, orders, args.n, args.rounds)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        results["machine"] = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
        print(json.dumps(results))


if __name__ == "__main__":
    main()
