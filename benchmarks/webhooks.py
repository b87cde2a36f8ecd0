"""Webhook deliveries (``realorders notify``) against a receiver's own rate, measured in one run.

    python benchmarks/webhooks.py [--backend sqlite|kafka|both] [--orders 4000]
                                  [--backlog 100000] [--lag-seconds 20] [--smoke]

The receiver is uvicorn with a no-op ASGI app (``noop_receiver.py``), in its own
process. Per backend, each scenario on a fresh store, the deliverer as shipped
(``realorders notify``, 16 requests at a time per endpoint, its default):

- ``ceiling``: wrk POSTing a webhook-sized body to the receiver with 16
  connections, the receiver's own rate on this machine;
- ``one_endpoint`` / ``ten_endpoints``: ``--orders`` orders already processed
  (five events each), then ``notify`` started: deliveries/s until the outbox is
  empty, and the deliverer's CPU per delivery; ``one_endpoint_two_deliverers``:
  the same with two ``notify`` processes sharing the work;
- ``slow_receiver``: each answer 20 ms late; the bound is 16 / 0.02 = 800/s;
- ``lag``: the engine running, 100 orders/s submitted (500 events/s) for
  ``--lag-seconds``: p50/p99 from an event to its delivery being recorded;
- ``backlog``: ``--backlog`` deliveries owed to a receiver down for maintenance
  (each order's first attempt answered ``503`` with ``Retry-After: 120``), then
  back: the wait for the retries it asked for, how long the drain takes after
  that, and the deliverer's peak RSS meanwhile.

Prints one JSON line per scenario, then a summary with the ratios.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import free_port, start_engine, stop, wrk
from _procs import proc_cpu, realorders_cmd
from _stores import RunningStore, running_store

from realorders import Client, Delays, LineItem, Order

HERE = Path(__file__).resolve().parent
CONCURRENCY = 16
SLOW_DELAY = 0.02
SCENARIOS = (
    *("ceiling", "one_endpoint", "one_endpoint_two_deliverers", "ten_endpoints"),
    *("slow_receiver", "lag", "backlog"),
)


@contextmanager
def receiver(delay: float = 0.0, unavailable: int = 0, retry_after: float = 30) -> Iterator[str]:
    """The no-op receiver on a free port (``noop_receiver.py`` says what the options
    do); yields its base URL."""
    port = free_port()
    env = {"RECEIVER_DELAY": str(delay), "RECEIVER_UNAVAILABLE": str(unavailable)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "noop_receiver:app"),
            *("--port", str(port), "--log-level", "warning", "--no-access-log"),
        ],
        env={**env, "RECEIVER_RETRY_AFTER": f"{retry_after:g}", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"the receiver exited {proc.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit("the receiver did not listen within 15 s")


class Notify:
    """``realorders notify`` in the background; its stderr read all along (a full pipe
    would stop it), failed attempts counted."""

    def __init__(self, store: RunningStore, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*realorders_cmd(), "notify", "--concurrency", str(CONCURRENCY), *args],
            env=store.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.failures = 0
        self._started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._started.wait(60):
            sys.exit("notify did not start within 60 s")
        self.started = time.perf_counter()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "notify delivering" in line:
                self._started.set()
            self.failures += "failed:" in line

    def stop(self) -> None:
        stop(self.proc)


def processed(store: RunningStore, count: int, prefix: str) -> None:
    """``count`` orders through the lifecycle (five events each), before any endpoint."""
    with Client(config=store.config, create=True) as shop:
        shop.add_product("KB-01", "Keyboard", 89.0, 10**9)
        for start in range(0, count, 5000):
            chunk = range(start, min(count, start + 5000))
            shop.submit_many(
                [Order(f"{prefix}-{i}", f"c{i % 97}", (LineItem("KB-01", 1),)) for i in chunk]
            )
        shop.run(until_idle=True, delays=Delays(), handle_signals=False)


def drained(shop: Client, timeout: float) -> float:
    """Until every event is scanned and nothing is owed; the moment it was so."""
    deadline = time.perf_counter() + timeout
    deliveries = shop.backend.deliveries
    while time.perf_counter() < deadline:
        if deliveries.scan_cursor() >= shop.head() and deliveries.pending_count() == 0:
            return time.perf_counter()
        time.sleep(0.05)
    sys.exit(f"the outbox did not empty within {timeout:.0f} s")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ceiling(seconds: int) -> dict[str, Any]:
    with receiver() as url:
        wrk(url, "post_webhook.lua", 1, CONCURRENCY)  # warm
        run = wrk(url + "/hooks", "post_webhook.lua", seconds, CONCURRENCY)
    return {"scenario": "ceiling", "per_second": run["per_second"], "p99_ms": run["p99_ms"]}


def throughput(
    store: RunningStore,
    name: str,
    orders: int,
    endpoints: int,
    delay: float = 0.0,
    deliverers: int = 1,
) -> dict[str, Any]:
    processed(store, orders, name)
    with receiver(delay=delay) as url, Client(config=store.config) as shop:
        for e in range(endpoints):
            shop.add_webhook(f"{url}/e{e}")
        notifies = [Notify(store) for _ in range(deliverers)]
        try:
            done = drained(shop, 600)
            cpu = sum(proc_cpu(n.proc.pid) for n in notifies)
            failed = shop.backend.deliveries.failed_count()
        finally:
            for notify in notifies:
                notify.stop()
    count = 5 * orders * endpoints
    seconds = done - notifies[0].started
    return {
        "scenario": name,
        "deliveries": count,
        "endpoints": endpoints,
        "deliverers": deliverers,
        "seconds": round(seconds, 2),
        "per_second": round(count / seconds, 1),
        "notify_cpu_ms_per_delivery": round(cpu * 1000 / count, 3),
        "failed": failed,
    }


def lag(store: RunningStore, seconds: float) -> dict[str, Any]:
    """100 orders/s (500 events/s) with the engine and the deliverer running."""
    with Client(config=store.config, create=True) as shop, receiver() as url:
        shop.add_product("KB-01", "Keyboard", 89.0, 10**9)
        endpoint, _ = shop.add_webhook(f"{url}/hooks")
        engine = start_engine(store)
        notify = Notify(store)
        try:
            sent = 0
            begin = time.perf_counter()
            while time.perf_counter() - begin < seconds:
                batch = [Order(f"L-{sent + i}", "c", (LineItem("KB-01", 1),)) for i in range(10)]
                shop.submit_many(batch)
                sent += 10
                time.sleep(max(0.0, begin + sent / 100 - time.perf_counter()))
            drained_at = drained(shop, 300)
        finally:
            notify.stop()
            stop(engine)
        when = {(e.order_id, e.seq): e.at for _, e in shop.events(0, 10 * sent + 10)}
        history = shop.webhook_deliveries(endpoint.endpoint_id, limit=10_000)
        lags = sorted(d.updated_at - when[(d.order_id, d.seq)] for d in history)
    return {
        "scenario": "lag",
        "events_per_second": round(5 * sent / (drained_at - begin), 1),
        "deliveries_measured": len(lags),
        "p50_s": round(statistics.median(lags), 3),
        "p99_s": round(lags[int(0.99 * (len(lags) - 1))], 3),
        "max_s": round(lags[-1], 3),
    }


def backlog(store: RunningStore, deliveries: int, retry_after: float) -> dict[str, Any]:
    """A receiver down for maintenance (``503``, ``Retry-After``) for each order's first
    attempt, then back: how long from then until the outbox is empty.

    The retries come ``retry_after`` seconds after each ``503`` (the receiver's wish
    outweighs the schedule's 5 s); the drain is timed from the first delivery after
    the receiver's return (the deliverer's part) as well as from the return itself.
    """
    orders = deliveries // 5
    processed(store, orders, "B")
    with (
        Client(config=store.config) as shop,
        receiver(unavailable=orders, retry_after=retry_after) as url,
    ):
        shop.add_webhook(f"{url}/hooks")
        pending = shop.backend.deliveries.pending_count
        notify = Notify(store)
        try:
            deadline = time.perf_counter() + 900
            while notify.failures < orders and time.perf_counter() < deadline:
                time.sleep(0.05)
            back = time.perf_counter()  # its last 503 is answered: it takes everything now
            while pending() >= 5 * orders and time.perf_counter() < back + 900:
                time.sleep(0.05)
            first = time.perf_counter()
            done = drained(shop, 900)
            rss = peak_rss_mb(notify.proc.pid)
        finally:
            notify.stop()
    return {
        "scenario": "backlog",
        "deliveries": 5 * orders,
        "unavailable_answers": notify.failures,
        "wait_for_retries_s": round(first - back, 2),
        "drain_seconds": round(done - first, 2),
        "per_second_draining": round(5 * orders / (done - first), 1),
        "notify_peak_rss_mb": round(rss, 1),
    }


def run_backend(backend: str, args: argparse.Namespace, directory: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    (directory / backend).mkdir()
    with running_store(backend, directory / backend) as base:
        scenarios: dict[str, Callable[[], dict[str, Any]]] = {
            "ceiling": lambda: ceiling(args.seconds),
            "one_endpoint": lambda: throughput(base.fresh("one"), "one_endpoint", args.orders, 1),
            "one_endpoint_two_deliverers": lambda: throughput(
                base.fresh("two"), "one_endpoint_two_deliverers", args.orders, 1, deliverers=2
            ),
            "ten_endpoints": lambda: throughput(
                base.fresh("ten"), "ten_endpoints", args.orders // 10, 10
            ),
            "slow_receiver": lambda: throughput(
                base.fresh("slow"), "slow_receiver", args.orders // 4, 1, delay=SLOW_DELAY
            ),
            "lag": lambda: lag(base.fresh("lag"), args.lag_seconds),
            "backlog": lambda: backlog(base.fresh("backlog"), args.backlog, args.retry_after),
        }
        for name in args.scenarios.split(","):
            result = {"backend": backend, **scenarios[name]()}
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratios to the receiver's own rate (and the bound of the slow one), per backend."""
    by = {(r["backend"], r["scenario"]): r for r in results}
    out: dict[str, Any] = {}
    for backend in sorted({r["backend"] for r in results}):
        got = {scenario: r for (b, scenario), r in by.items() if b == backend}
        peer = got.get("ceiling", {}).get("per_second")
        line: dict[str, Any] = {"receiver_per_second": peer}
        for name in ("one_endpoint", "one_endpoint_two_deliverers", "ten_endpoints"):
            if name in got and peer:
                line[f"{name}_ratio"] = round(got[name]["per_second"] / peer, 3)
        if "slow_receiver" in got:
            bound = CONCURRENCY / SLOW_DELAY
            line["slow_receiver_ratio_to_bound"] = round(
                got["slow_receiver"]["per_second"] / bound, 2
            )
        if "lag" in got:
            line["lag_p99_s"] = got["lag"]["p99_s"]
        if "backlog" in got:
            line["backlog_drain_s"] = got["backlog"]["drain_seconds"]
            line["notify_peak_rss_mb"] = got["backlog"]["notify_peak_rss_mb"]
        out[backend] = line
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "kafka", "both"], default="both")
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    parser.add_argument("--seconds", type=int, default=10, help="of the wrk ceiling")
    parser.add_argument(
        "--retry-after",
        type=float,
        default=120.0,
        help="the backlog's Retry-After: longer than the deliverer takes to be refused once "
        "per order, so that no order is refused twice (then due again 5 min later)",
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="a comma list")
    parser.add_argument("--smoke", action="store_true", help="tiny figures: it runs, no more")
    args = parser.parse_args()
    if args.smoke:
        args.orders, args.backlog, args.lag_seconds, args.seconds = 200, 1000, 2.0, 1
        args.retry_after = 2.0
    backends = ["sqlite", "kafka"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="realorders-webhooks-") as tmp:
        results = [r for b in backends for r in run_backend(b, args, Path(tmp))]
    print(json.dumps({"summary": summary(results)}), flush=True)


if __name__ == "__main__":
    main()
