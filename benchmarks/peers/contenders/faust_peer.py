#!/usr/bin/env python3
"""faust-streaming: one agent reserves against a stock Table, then walks each order to the end.

What a faust user would write for this flow. Stock is shared by every order
and a reservation must take all of an order's lines or none, so the stock
Table and the agent that reserves live on one partition: one ``orders``
partition, consumed by one agent (concurrency 1) that checks and decrements
every line of an order with no ``await`` in between (atomic in asyncio) and
backorders the order otherwise. A Table keyed by sku over several partitions
would put an order's lines in different agents and need a saga with
compensations to stay all-or-nothing; repartitioning by sku cannot make a
multi-line reservation atomic. With zero delays, pack → ship → deliver follow
in the same agent, each change an event on the ``events`` topic (key: order
id) and the order's status in a second Table (``orders``).

Durability: ``processing_guarantee="exactly_once"``, ``acks=all``: events,
both Tables' changelog records and the consumed offsets go in one Kafka
transaction per commit (every ``COMMIT_INTERVAL`` s); Tables in memory
(``memory://``), rebuilt from their changelogs on restart. faust 0.15.3's
exactly_once commit does not flush faust's own producer buffer (its
at_least_once commit does), so a commit could carry an order's offset ahead of
its output: the agent takes orders in batches (``take``) and flushes the
producer before the batch is acked. Without it (a plain ``async for``), runs
ended with the last few orders' output missing, their offsets committed. What remains: the
commit runs on a timer in its own task, so part of a batch's output can commit
before the batch's offsets; a crash then would re-apply that part on replay.

The worker is ``faust -A … worker`` (this file with ``worker``), a child
process stopped with SIGTERM; its CPU in the window is read from /proc, its
whole life comes with wait4. The submitter is kafka-python (acks=all,
idempotent), one JSON record per order, key = order id. The clock stops when
the app's committed offset on ``orders`` reaches N (one admin call per poll):
under exactly_once that commit carries every effect of those orders. Counts,
stock, events and latency are read back afterwards from the changelog and
events topics (read_committed), never from the worker's memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import kafka_services
import workload

try:
    import faust  # noqa: F401  (the worker imports it again; here: is it installed?)
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError
except ImportError as missing:
    common.skip(f"not installed: {missing.name}")

MAX_N = 100_000
GROUP = "kafka"
APP = "faust-peer"
COMMIT_INTERVAL = float(os.environ.get("FAUST_PEER_COMMIT_INTERVAL", "0.1"))  # faust: 2.8 s
POLL_SECONDS = 0.05
START_TIMEOUT = 120.0
TERMINAL = ("delivered", "backordered")
DELIVERED = ("pending", "reserved", "packed", "shipped", "delivered")
BACKORDERED = ("pending", "backordered")
TAKE, TAKE_WITHIN = 1000, 0.01  # orders per batch, seconds to wait for a batch to fill
DURABILITY = (
    "Kafka acks=all, faust exactly_once (one transaction per commit, every "
    f"{COMMIT_INTERVAL:g} s: events, Table changelogs, offsets); Tables in memory, "
    "rebuilt from their changelogs"
)


def make_app(bootstrap: str, datadir: str) -> Any:
    """The faust app: topics, Tables and the one agent (run in the worker process only)."""
    import faust

    app = faust.App(
        APP,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        processing_guarantee="exactly_once",
        broker_commit_interval=COMMIT_INTERVAL,
        producer_acks=-1,
        topic_partitions=1,
        topic_replication_factor=1,
        web_enabled=False,
    )

    class OrderIn(faust.Record, serializer="json"):
        order_id: str
        customer: str
        lines: list[list[Any]]  # [[sku, quantity], ...]
        submitted_at: float

    class Event(faust.Record, serializer="json"):
        order_id: str
        seq: int
        status: str
        at: float
        submitted_at: float

    orders_topic = app.topic("orders", key_type=str, value_type=OrderIn)
    stock_topic = app.topic("stock-set", key_type=str, value_type=int)
    events_topic = app.topic("events", key_type=str, value_type=Event)
    # use_partitioner: take() yields batches, outside any one event's partition context
    tables = {"partitions": 1, "use_partitioner": True, "key_type": str}
    stock = app.Table("stock", value_type=int, default=int, **tables)
    status = app.Table("orders", value_type=str, default=str, **tables)

    @app.agent(stock_topic)
    async def set_stock(levels: Any) -> None:
        async for sku, level in levels.items():
            stock[sku] = level

    @app.agent(orders_topic)
    async def fulfil(orders: Any) -> None:
        async for batch in orders.take(TAKE, within=TAKE_WITHIN):
            for order in batch:
                lines = order.lines
                # check and take every line with no await in between: all or nothing
                if all(stock[sku] >= qty for sku, qty in lines):
                    for sku, qty in lines:
                        stock[sku] -= qty
                    steps: tuple[str, ...] = DELIVERED
                else:
                    steps = BACKORDERED
                for seq, step in enumerate(steps, 1):
                    status[order.order_id] = step
                    event = Event(order.order_id, seq, step, time.time(), order.submitted_at)
                    await events_topic.send(key=order.order_id, value=event)
            # hand the batch's changelog records and events to the transaction before
            # take() acks the batch: faust's exactly_once commit does not flush its own
            # buffer, so without this a commit could carry offsets ahead of their output
            await app.producer.flush()

    return app


def worker() -> None:
    """``faust -A faust_peer worker``: run the app until SIGTERM."""
    app = make_app(os.environ["FAUST_PEER_BOOTSTRAP"], os.environ["FAUST_PEER_DATADIR"])
    sys.argv = [sys.argv[0], "worker", "--loglevel", "error", "--without-web"]
    app.main()


# -- the submitter and the read-back (this process) ---------------------------


def committed(admin: KafkaAdminClient, topic: str) -> int:
    """The app's committed offset on partition 0 of ``topic`` (0 before any commit)."""
    tp = TopicPartition(topic, 0)
    try:
        meta = admin.list_group_offsets({APP: [tp]}).get(APP, {}).get(tp)
    except KafkaError:  # no coordinator yet: the app has not joined
        return 0
    return meta.offset if meta is not None and meta.offset >= 0 else 0


def wait_committed(
    admin: KafkaAdminClient, topic: str, count: int, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while committed(admin, topic) < count:
        if proc.poll() is not None:
            raise SystemExit(f"the faust worker exited {proc.returncode} (see worker.log)")
        if time.monotonic() > deadline:
            raise SystemExit(f"{topic}: not all {count} records committed after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def read_topic(bootstrap: str, topic: str) -> Any:
    """Every committed record of ``topic`` (partition 0), as (key, value) bytes."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5000,
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]  # the last stable offset (read_committed)
        while consumer.position(tp) < end:
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                for record in batch:
                    yield record.key, record.value
    finally:
        consumer.close()


def read_back(bootstrap: str, pacer: common.Pacer) -> dict[str, Any]:
    """Counts and stock from the Tables' changelogs; events and latency from the events topic."""
    stock = {
        json.loads(key): json.loads(value)
        for key, value in read_topic(bootstrap, f"{APP}-stock-changelog")
    }
    last: dict[str, str] = {}
    for key, value in read_topic(bootstrap, f"{APP}-orders-changelog"):
        last[json.loads(key)] = json.loads(value)
    counts: dict[str, int] = {}
    for status in last.values():
        counts[status] = counts.get(status, 0) + 1
    events = 0
    latencies = array("d")
    due = None if pacer.rate <= 0 else (pacer.wall_start, pacer.rate)
    for _, value in read_topic(bootstrap, "events"):
        events += 1
        event = json.loads(value)
        if event["status"] in TERMINAL:
            start = event["submitted_at"]
            if due is not None:  # open loop: from the order's due time
                start = due[0] + int(event["order_id"][1:]) / due[1]
            latencies.append(event["at"] - start)
    return {
        "counts": counts,
        "stock": stock,
        "events": events,
        "latency": common.percentiles(latencies),
    }


def start_worker(directory: Path, bootstrap: str) -> subprocess.Popen[bytes]:
    """``faust -A faust_peer worker`` as our child, its output in worker.log."""
    env = {**os.environ, "FAUST_PEER_BOOTSTRAP": bootstrap}
    env["FAUST_PEER_DATADIR"] = str(directory / "faust-data")
    with (directory / "worker.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, __file__, "worker"],
            env=env,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_worker(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM (faust commits and leaves the group), reaped; an agent crash is an error."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if b"Crashed reason=" in log.read_bytes():  # faust acks a crashed take() batch
        raise SystemExit(f"a faust agent crashed: see {log}")


def encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    kafka_services.stop_on_signals()
    with kafka_services.Services(args.dir, redis=False) as services:
        bootstrap = services.bootstrap
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(t, 1, 1) for t in ("orders", "stock-set", "events")])
        proc = start_worker(args.dir, bootstrap)
        try:
            producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                batch_size=256 * 1024,
            )
            stock = args.stock()
            for sku, level in stock.items():  # untimed, and proof that the worker is up
                producer.send("stock-set", key=sku.encode(), value=str(level).encode())
            producer.flush()
            wait_committed(admin, "stock-set", len(stock), proc, START_TIMEOUT)

            clock = common.Clock()
            pacer = common.Pacer(args.rate, batch=1000)

            def submit(batch: list[workload.Order]) -> None:
                now = time.time()
                for order in batch:
                    value = {
                        "order_id": order.order_id,
                        "customer": order.customer,
                        "lines": order.lines,
                        "submitted_at": now,
                    }
                    producer.send("orders", key=order.order_id.encode(), value=encode(value))
                if args.rate > 0:
                    producer.flush()  # at a rate, each order is acked when it is due

            worker_cpu = common.proc_cpu(proc.pid)
            services.mark_cpu()
            pacer.run(args.orders(), submit, clock)
            producer.flush()
            wait_committed(admin, "orders", args.n, proc, max(600.0, args.n / 50))
            clock.stop()
            service_cpu = services.cpu()
            worker_cpu = common.proc_cpu(proc.pid) - worker_cpu
            clock.stop_cpu()  # this process only: the worker is still running
            producer.close()
        finally:
            stop_worker(proc, args.dir / "worker.log")
            admin.close()
        assert clock.cpu_seconds is not None
        own_cpu = clock.cpu_seconds
        clock.cpu_seconds = own_cpu + worker_cpu
        result = read_back(bootstrap, pacer)
        versions = common.versions("faust-streaming", "aiokafka", "kafka-python")
        versions.update(services.versions())
        service_rss = services.rss_mb()
    services_total = sum(service_cpu.values())
    common.write_result(
        args,
        contender="faust_peer",
        durability=DURABILITY,
        versions=versions,
        clock=clock,
        pacer=pacer,
        notes=(
            f"one faust worker (child; {worker_cpu:.2f} s CPU in the window, from /proc), "
            f"submitter {own_cpu:.2f} s; the broker used {services_total:.2f} s more "
            "(not in wait4 nor in cpu_seconds_window); 1 partition: the stock Table and the "
            "agent that reserves share it; latency = terminal event's `at` - "
            + ("the order's due time" if args.rate > 0 else "the submit time")
        ),
        service_cpu_s=service_cpu,
        cpu_seconds_with_services=clock.cpu_seconds + services_total,
        worker_cpu_s=worker_cpu,
        service_peak_rss_mb=service_rss,
        **result,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker()
    else:
        main()
