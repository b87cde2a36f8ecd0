"""Live streams: 1,000 SSE subscribers while the engine processes 1,000 orders/s.

    python benchmarks/http_sse.py [--backend sqlite|kafka|both] [--subscribers 1000]
                                  [--rate 1000] [--seconds 30] [--smoke]

For each backend: ``realorders serve`` and ``realorders run`` (no fulfilment
delays) on a fresh store. A separate process opens the subscribers first, each
a raw HTTP/1.1 connection to ``GET /v1/events?order_id=…`` naming the orders
it will follow (one new order per subscriber per second: a "where is my
order" page per customer). Then the harness submits ``--rate`` orders a
second for ``--seconds`` (``Client.submit_many`` every 100 ms), round robin
over the subscribers, while it samples the server's RSS every half second.

Delivery lag is the time from an event's commit (its ``at``) to the moment
the subscriber has read it; every subscriber must see every one of its orders
reach ``delivered``. Prints one JSON line per backend: lag p50/p95/p99/max,
events delivered, subscribers dropped, server RSS at start and at most.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import rss_mb, start_engine, start_server, stop
from _stores import RunningStore, running_store

TICK = 0.1  # seconds between the feeder's submissions


def order_id(subscriber: int, second: int) -> str:
    return f"S{subscriber:05d}-{second:04d}"


# -- the subscribers' process ---------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.lags: list[float] = []
        self.connected = 0
        self.finished_orders = 0
        self.dropped = 0
        self.failed: list[str] = []


async def follow(url: str, token: str, subscriber: int, seconds: int, tally: Tally) -> None:
    parts = urlsplit(url)
    query = urlencode([("order_id", order_id(subscriber, s)) for s in range(seconds)])
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=2**20)
    except OSError as exc:
        tally.failed.append(f"connect: {exc}")
        return
    writer.write(
        f"GET /v1/events?{query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        tally.failed.append(status.decode(errors="replace").strip())
        writer.close()
        return
    while (await reader.readline()).strip():
        pass  # headers
    tally.connected += 1
    try:
        async for line in reader:  # chunk-size lines and SSE lines; one message per chunk
            if line.startswith(b"data: {"):
                event = json.loads(line[6:])
                at = datetime.fromisoformat(event["at"]).timestamp()
                tally.lags.append(time.time() - at)
                if event["status"] == "delivered":
                    tally.finished_orders += 1
            elif line.startswith(b"event: dropped"):
                tally.dropped += 1
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def subscribers_main(url: str, token: str, count: int, seconds: int) -> None:
    tally = Tally()
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(follow(url, token, i, seconds, tally)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # not a connect storm: pages open over a few seconds
    while tally.connected + len(tally.failed) < count:
        await asyncio.sleep(0.1)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # the harness says when to stop
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lags = sorted(tally.lags)

    def pct(p: float) -> float | None:
        return round(lags[min(len(lags) - 1, int(p * len(lags)))] * 1000, 1) if lags else None

    report = {
        "connected": tally.connected,
        "failed": tally.failed[:5],
        "events": len(lags),
        "orders_seen_delivered": tally.finished_orders,
        "dropped": tally.dropped,
        "lag_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
    }
    print(json.dumps(report), flush=True)


# -- the harness ------------------------------------------------------------------


def feed(store: RunningStore, args: argparse.Namespace) -> float:
    """Submit ``rate`` orders a second for ``seconds``, paced by the clock; orders/s achieved."""
    from realorders import Client
    from realorders.domain import LineItem, Order

    per_tick = max(1, round(args.rate * TICK))
    ticks_per_second = round(1 / TICK)
    began = time.monotonic()
    with Client(config=store.config) as shop:
        sent = 0
        for second in range(args.seconds):
            for tick in range(ticks_per_second):
                due = began + (second * ticks_per_second + tick) * TICK
                time.sleep(max(0.0, due - time.monotonic()))
                first = tick * per_tick
                batch = [
                    Order(
                        id=order_id(i, second),
                        customer_id=f"c{i}",
                        items=(LineItem("KB-01", 1),),
                    )
                    for i in range(first, min(first + per_tick, args.subscribers))
                ]
                if batch:
                    shop.submit_many(batch)
                    sent += len(batch)
    return sent / (time.monotonic() - began)


def measure(store: RunningStore, args: argparse.Namespace) -> dict[str, Any]:
    from realorders import Client
    from realorders.tokens import Scope

    with Client(config=store.config) as shop:
        shop.add_product("KB-01", "Keyboard", 89.0, 10**9)
        token = shop.create_token("bench-sse", Scope.READ)[1]
    engine = start_engine(store)
    server, url = start_server(store)
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", url, token, str(args.subscribers), str(args.seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    samples: list[float] = []
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        if child.stdout.readline().strip() != "ready":
            sys.exit("the subscribers did not connect")
        rss_start = rss_mb(server.pid)
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                samples.append(rss_mb(server.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rate = feed(store, args)
        with Client(config=store.config) as shop:  # the last orders through the engine
            deadline = time.monotonic() + 60
            while shop.counts().get("delivered", 0) < args.seconds * args.subscribers:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        time.sleep(1.0)  # the hub's next poll, and the last messages on the wire
        sampling.set()
        sampler.join()
        child.stdin.write("stop\n")
        child.stdin.flush()
        report = json.loads(child.stdout.readline())
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        stop(server)
        stop(engine)
    return {
        "backend": store.backend,
        "subscribers": args.subscribers,
        "orders_per_second_fed": round(rate),
        "orders_expected": args.seconds * args.subscribers,
        **report,
        "server_rss_mb": {"start": round(rss_start, 1), "max": round(max(samples, default=0), 1)},
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, token, count, seconds = sys.argv[2:6]
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(subscribers_main(url, token, int(count), int(seconds)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=["sqlite", "kafka", "both"], default="both")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000, help="orders a second")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="50 subscribers, 50 orders/s, 3 s")
    args = parser.parse_args()
    if args.smoke:
        args.subscribers, args.rate, args.seconds = 50, 50, 3
    if args.rate != args.subscribers:
        parser.error("--rate must equal --subscribers (one order per subscriber per second)")
    for backend in ["sqlite", "kafka"] if args.backend == "both" else [args.backend]:
        directory = Path(tempfile.mkdtemp(prefix=f"realorders-http-sse-{backend}-"))
        try:
            with running_store(backend, directory) as store:
                results = measure(store, args)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        results["machine"] = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
        print(json.dumps(results))


if __name__ == "__main__":
    main()
