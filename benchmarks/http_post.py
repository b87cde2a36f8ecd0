"""POST /v1/orders under wrk, against the same server's ceiling and against no group commit.

    python benchmarks/http_post.py [--backend sqlite|kafka|both] [--seconds 10]
                                   [--connections 64] [--smoke]

For each backend, one run on one store with the engine running beside the
server (``realorders run``, no fulfilment delays), three wrk measurements:

- ``GET /healthz``: the framework's trivial endpoint (constant JSON, no store),
  the ceiling for this server on this machine;
- ``POST /v1/orders``: one order per request, a new id each, group commit
  (the server as shipped);
- the same with one append per request (``ServerOptions(intake_batch=1)``):
  what the server gives without group commit.

Each server first takes ``--warmup`` seconds of POSTs, not counted (the
broker's JIT, caches, connections).
Prints one JSON line per measurement and the ratios, then checks that the
store holds every order wrk counted as answered (requests still in flight
when wrk stopped may land too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import start_engine, start_server, stop, wrk
from _stores import RunningStore, running_store

from realorders import Client
from realorders.tokens import Scope


def measure(store: RunningStore, args: argparse.Namespace) -> dict[str, Any]:
    with Client(config=store.config) as shop:
        shop.add_product("KB-01", "Keyboard", 89.0, 10**9)
        token = shop.create_token("bench", Scope.ADMIN)[1]
    results: dict[str, Any] = {"backend": store.backend}
    engine = start_engine(store)
    try:
        for name in ("group_commit", "one_commit_per_request"):
            server, url = start_server(store, one_commit=name != "group_commit")
            try:
                env = {
                    "REALORDERS_BENCH_TOKEN": token,
                    "REALORDERS_BENCH_RUN": uuid.uuid4().hex[:8],
                }
                # warm-up, not counted: the broker's JIT, SQLite's cache, the first connections
                wrk(url, "post_orders.lua", args.warmup, args.connections, **env)
                env["REALORDERS_BENCH_RUN"] = uuid.uuid4().hex[:8]
                if name == "group_commit":
                    results["healthz_ceiling"] = wrk(
                        f"{url}/healthz", "get.lua", args.seconds, args.connections, **env
                    )
                results[name] = wrk(url, "post_orders.lua", args.seconds, args.connections, **env)
            finally:
                stop(server)
        with Client(config=store.config) as shop:
            stored = sum(shop.counts().values()) + len(shop.queued(limit=10**9))
    finally:
        stop(engine)
    group, one = results["group_commit"], results["one_commit_per_request"]
    results["post_vs_ceiling"] = round(
        group["per_second"] / results["healthz_ceiling"]["per_second"], 2
    )
    results["group_vs_one_commit"] = round(group["per_second"] / one["per_second"], 2)
    # the most any group commit could give here: the ceiling over one commit per request
    results["ceiling_vs_one_commit"] = round(
        results["healthz_ceiling"]["per_second"] / one["per_second"], 2
    )
    results["orders_stored"] = stored
    results["orders_answered"] = group["requests"] + one["requests"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=["sqlite", "kafka", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=5, help="seconds of POSTs first, uncounted")
    parser.add_argument("--smoke", action="store_true", help="2 s each, 8 connections")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.connections, args.warmup = 2, 8, 1
    backends = ["sqlite", "kafka"] if args.backend == "both" else [args.backend]
    failed = []
    for backend in backends:
        directory = Path(tempfile.mkdtemp(prefix=f"realorders-http-post-{backend}-"))
        try:
            with running_store(backend, directory) as store:
                results = measure(store, args)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        results["machine"] = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
        print(json.dumps(results))
        if results["orders_stored"] < results["orders_answered"]:
            failed.append(f"{backend}: {results['orders_stored']} stored for "
                          f"{results['orders_answered']} answered")  # fmt: skip
    if failed:
        sys.exit("; ".join(failed))


if __name__ == "__main__":
    main()
