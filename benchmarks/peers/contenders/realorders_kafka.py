#!/usr/bin/env python3
"""realorders in its distributed mode: one engine on the project's own Kafka broker and Redis.

Untimed: a broker and a Redis of its own in SCRATCH (``scripts/services``),
the workload's files, ``realorders init --inventory`` (creates the topics,
``PARTITIONS`` partitions, and the stock in Redis), then one ``realorders run
--delays pack=0,ship=0,deliver=0`` (a child process this script waits for, so
its CPU is in the harness's wait4) until it has logged that it owns every
partition. Timed:

- saturation: ``realorders import orders.ndjson`` (a child, 1,000 orders per
  intake batch) while the engine runs;
- ``--rate R``: a paced submitter in this process appends each tick's due
  orders with the Client's intake (``backend.commands.append_orders``, what
  ``Client.submit`` does for one order): each order is in Kafka (acks=all)
  when its submit returns. Latency runs from each order's due time.

Restocks (``--workload restock``) are queued with ``Client.restock_many``, one
delivery (the restocks due at one point of the workload) at a time, from this
process: at saturation the orders file is split where deliveries fall due
(untimed, ``common.segments``) and each ``import`` of a segment is followed by
its delivery; at a rate the pacer queues each restock once the orders before
it are appended. A restock is keyed by its product, so it may reach the engine
before orders appended ahead of it on other partitions: those that need the
product are backordered, then woken by it (more events, the same final state:
the workload's outcome does not depend on the processing order).

The clock stops when Redis counts every order delivered or backordered (one
HGETALL every ``POLL_SECONDS``), as benchmarks/distributed.py does, and, with
restocks, the engines' group has committed every command in the topic (its
lag is 0: the restocks and the wakes they sent are processed). Counts and
stock come back through the Client API once the engine has stopped (a stop
writes every batch it handed over), events from the order rows in Redis.
Latency ends when the order's settled state (delivered or backordered) can be
read: a thread follows the projection's tail stream in Redis (``XREAD``, which
the engine writes only after Kafka committed the batch) and notes when each
order's last event arrives. The order row's ``terminal_at`` is when the engine
decided, before its commit: that latency is kept beside (``latency_decided``). The
engine's CPU in the window is read from /proc (its start-up and group join are
outside it); broker and Redis CPU are reported beside, since wait4 cannot see
them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import kafka_services
import workload

try:
    import orjson
    import redis

    from realorders import Client
    from realorders.config import load_config
    from realorders.domain import LineItem, Order
except ImportError as missing:
    common.skip(f"not installed: {missing.name}")

MAX_N = 100_000
GROUP = "kafka"
PREFIX = "peers"
PARTITIONS = 12  # realorders' default
POLL_SECONDS = 0.05
JOIN_TIMEOUT = 60.0
OWNS = re.compile(rb"now owns partitions \[([0-9, ]*)\]")
ZERO_DELAYS = "pack=0,ship=0,deliver=0"
WORKLOADS = ("standard", "backorder", "restock")
DURABILITY = (
    "Kafka acks=all, transactions (events + consumed offsets, one per engine batch of up to "
    "2,000 commands); Redis read model and stock written after each commit, "
    "Redis persistence off (as scripts/services starts it): rebuilt from the events topic"
)


def store_env(services: kafka_services.Services) -> dict[str, str]:
    """Only this run's store: no REALORDERS_* settings from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALORDERS_")}
    env.update(
        {
            "REALORDERS_CONFIG": os.devnull,
            "REALORDERS_BACKEND": "kafka",
            "REALORDERS_KAFKA_BOOTSTRAP": services.bootstrap,
            "REALORDERS_REDIS_URL": services.redis_url,
            "REALORDERS_KAFKA_TOPIC_PREFIX": PREFIX,
            "REALORDERS_REDIS_PREFIX": PREFIX,
            "REALORDERS_KAFKA_GROUP": f"{PREFIX}-engines",
            "REALORDERS_KAFKA_PARTITIONS": str(PARTITIONS),
        }
    )
    return env


def run(cmd: list[str], env: dict[str, str], cwd: Path, *args: str) -> None:
    proc = subprocess.run(
        [*cmd, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"realorders {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")


class Engine:
    """``realorders run`` as a child: its stderr kept in a log and scanned for its partitions."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self.log = cwd / "engine.log"
        self.proc = subprocess.Popen(
            [*cmd, "run", "--delays", ZERO_DELAYS],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.owns = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.log.open("wb") as out:
            for line in self.proc.stderr:
                out.write(line)
                out.flush()
                found = OWNS.search(line)
                if found and len(found.group(1).split(b",")) == PARTITIONS:
                    self.owns = True

    def wait_owner(self) -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT
        while not self.owns:
            if self.proc.poll() is not None:
                raise SystemExit(f"realorders run exited {self.proc.returncode}: see {self.log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"realorders run did not own every partition: see {self.log}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM (it commits and leaves the group), reaped: its CPU joins ours."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=5)
        return code


def wait_settled(client: Client, engine: Engine, n: int, *, every_command: bool) -> None:
    """Until Redis counts ``n`` orders delivered or backordered (the projection is committed).

    ``every_command``: then also until the group's lag is 0. A backordered order
    counts as settled, but a restock still in the topic, or the wakes it sent,
    would deliver some of them.
    """
    read_model = client.backend.orders
    deadline = time.monotonic() + max(600.0, n / 50)
    while True:
        counts = read_model.counts()
        if counts.get("delivered", 0) + counts.get("backordered", 0) >= n and (
            not every_command or client.backend.backlog() == 0
        ):
            return
        if not engine.alive():
            raise SystemExit(f"realorders run exited {engine.proc.returncode}: see {engine.log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"not settled: {counts}")
        time.sleep(POLL_SECONDS)


class Settled:
    """When each order's settled state became readable, from the projection's tail stream."""

    def __init__(self, url: str, n: int) -> None:
        self.at = array("d", bytes(8 * n))  # time.time() per order index, 0.0 until seen
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        key, last = f"{PREFIX}:tail", "0-0"
        with redis.Redis.from_url(self._url) as r:
            while not self._stop.is_set():
                for _stream, entries in r.xread({key: last}, block=50, count=1000) or []:
                    now = time.time()
                    for entry_id, fields in entries:
                        last = entry_id
                        ids = orjson.loads(fields[b"o"])
                        # chunk entries keep the events' raw JSON, joined: split by order
                        for oid, raw in zip(ids, orjson.loads(fields[b"e"]), strict=True):
                            if raw["status"] in ("delivered", "backordered"):
                                index = int(oid[1:])
                                if not self.at[index]:
                                    self.at[index] = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def row_stats(
    url: str, n: int, due: tuple[float, float] | None, settled: Settled | None = None
) -> dict[str, Any]:
    """Event rows (each row's version) and latency, from every order row in Redis."""
    latencies = array("d")
    readable = array("d")
    events = 0
    with redis.Redis.from_url(url) as r:
        for start in range(0, n, 2000):
            ids = [f"O{i:08d}" for i in range(start, min(n, start + 2000))]
            for raw in r.mget([f"{PREFIX}:o:{oid}" for oid in ids]):
                if raw is None:
                    continue
                row = orjson.loads(raw)
                events += row["version"]  # seq of its last event: events are 1..version
                end = row["terminal_at"] or row["updated_at"]
                begin = row["created_at"]
                if due is not None:  # open loop: from the order's due time
                    begin = due[0] + int(row["id"][1:]) / due[1]
                latencies.append(end - begin)
                if settled is not None and settled.at[int(row["id"][1:])]:
                    readable.append(settled.at[int(row["id"][1:])] - begin)
    if settled is None:
        return {"events": events, "latency": common.percentiles(latencies)}
    if len(readable) != len(latencies):
        raise SystemExit(f"the tail showed {len(readable)} of {len(latencies)} orders settle")
    return {
        "events": events,
        "latency": common.percentiles(readable),
        "latency_decided": common.percentiles(latencies),
    }


def submit_all(
    args: common.Args,
    client: Client,
    clock: common.Clock,
    pacer: common.Pacer,
    restocks: list[workload.Restock],
    steps: list[tuple[Path | None, list[workload.Restock]]],
    env: dict[str, str],
) -> str:
    """The timed intake: ``import`` at saturation, else a paced submitter; says which.

    ``steps``: at saturation, the orders files and the delivery due after each.
    """
    deliveries = f"; {len(restocks)} restocks queued by Client.restock_many" if restocks else ""
    if args.rate <= 0:
        clock.start()
        for orders_file, due in steps:
            if orders_file is not None:
                run(common.realorders_cmd(), env, args.dir, "import", str(orders_file))
            if due:
                client.restock_many([(r.sku, r.quantity) for r in due])
        segments = f" ({len(steps)} segments, each followed by its delivery)" if restocks else ""
        return f"import FILE{segments} (1,000 orders per intake batch) while run works{deliveries}"
    intake = client.backend.commands

    def submit(batch: list[workload.Order]) -> None:
        intake.append_orders(
            [Order(o.order_id, o.customer, tuple(LineItem(*x) for x in o.lines)) for o in batch]
        )

    def restock(r: workload.Restock) -> None:
        client.restock(r.sku, r.quantity)

    pacer.run(args.orders(), submit, clock, restocks=restocks, restock=restock)
    return f"a paced submitter appends each tick's due orders (Client intake){deliveries}"


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    kafka_services.stop_on_signals()
    inventory = workload.write_inventory(args.stock(), args.dir)
    restocks = args.restocks()  # untimed: a pass over every order
    steps = common.segments(args, restocks) if args.rate <= 0 else []
    cmd = common.realorders_cmd()
    with kafka_services.Services(args.dir) as services:
        env = store_env(services)
        run(cmd, env, args.dir, "--backend", "kafka", "init", "--inventory", str(inventory))
        config = load_config({}, env)
        clock = common.Clock()
        pacer = common.Pacer(args.rate)
        engine = Engine(cmd, env, args.dir)
        # at a rate, latency ends when the settled state is readable (at saturation the
        # follower's parsing would take CPU from the engine: there it is the row's time)
        settled = Settled(services.redis_url, args.n) if args.rate > 0 else None
        try:
            engine.wait_owner()
            with Client(config=config, create=False) as client:
                engine_cpu = common.proc_cpu(engine.proc.pid)
                services.mark_cpu()
                how = submit_all(args, client, clock, pacer, restocks, steps, env)
                wait_settled(client, engine, args.n, every_command=bool(restocks))
                clock.stop()
                service_cpu = services.cpu()
                engine_cpu = common.proc_cpu(engine.proc.pid) - engine_cpu
                clock.stop_cpu()  # this process and the import child, not the engine yet
                engine.stop()  # it writes every batch it handed over: reads see them
                counts = client.backend.orders.counts()
                stock = {level.product_id: level.available for level in client.levels()}
                service_rss = services.rss_mb()
        finally:
            code = engine.stop()
            if settled is not None:
                settled.stop()
        if code != 0:
            raise SystemExit(f"realorders run exited {code}: see {engine.log}")
        due = None if args.rate <= 0 else (pacer.wall_start, args.rate)
        stats = row_stats(services.redis_url, args.n, due, settled)
        versions = common.versions("realorders", "kafka-python", "redis")
        versions.update(services.versions())
    assert clock.cpu_seconds is not None
    own_cpu = clock.cpu_seconds
    clock.cpu_seconds = own_cpu + engine_cpu
    services_total = sum(service_cpu.values())
    common.write_result(
        args,
        contender="realorders_kafka",
        durability=DURABILITY,
        versions=versions,
        clock=clock,
        pacer=pacer,
        counts=counts,
        stock=stock,
        notes=(
            f"one engine (realorders run, child, {PARTITIONS} partitions; {engine_cpu:.2f} s CPU "
            f"in the window, from /proc), {how}: {own_cpu:.2f} s; broker + Redis used "
            f"{services_total:.2f} s more (not in wait4 nor in cpu_seconds_window); latency = "
            + (
                "when the settled state was readable in Redis (tail stream) - the order's due "
                "time (latency_decided: terminal_at, before the commit)"
                if args.rate > 0
                else "terminal_at (updated_at for a backorder) - created_at (its append)"
            )
        ),
        service_cpu_s=service_cpu,
        cpu_seconds_with_services=clock.cpu_seconds + services_total,
        engine_cpu_s=engine_cpu,
        service_peak_rss_mb=service_rss,
        **stats,
    )


if __name__ == "__main__":
    main()
