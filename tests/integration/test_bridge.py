"""``realorders bridge order-events`` against a real broker, on both backends.

The test plays the earlier design's order API: it produces the exact
``OrderCreated`` messages (PascalCase, keyed by order id) onto ``order-events``
with kafka-python, as that API's producer did, and runs the bridge through the
console script. Everything goes over SASL_SSL (PLAIN over TLS, the earlier
design's security) on the project's broker. Every order must be submitted once,
however often a message is redelivered and wherever the bridge is killed; what
is not an order goes to the dead-letter topic with its reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from services import sasl_ssl_kafka_config, untrusted_ca_file
from waiting import wait_for

from realorders import Client, Delays, LineItem, Status
from realorders.bridge import BridgeOptions, OrderEventsBridge
from realorders.config import Config
from realorders.engine.backends.distributed.admin import admin_client
from realorders.engine.backends.distributed.connect import kafka_kwargs


@dataclass
class Shop:
    """The store (its config also names the broker that holds ``order-events``)."""

    config: Config
    client: Client
    topic: str
    group: str

    @property
    def source(self) -> str:
        return f"{self.topic}@{self.group}"

    def env(self) -> dict[str, str]:
        """The ``REALORDERS_*`` variables that give the bridge process this config."""
        env = {**os.environ, "NO_COLOR": "1"}
        env.pop("REALORDERS_DEBUG", None)
        defaults = Config()
        for f in fields(Config):
            value = getattr(self.config, f.name)
            if value is not None and (value != getattr(defaults, f.name) or f.name == "db"):
                env[f"REALORDERS_{f.name.upper()}"] = str(value)
        return env


@pytest.fixture(params=["sqlite", "kafka"])
def shop(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sasl_ssl_kafka_server: Any,
    redis_server: Any,
    kafka_prefix: str,
) -> Iterator[Shop]:
    config = sasl_ssl_kafka_config(sasl_ssl_kafka_server, redis_server, kafka_prefix)
    if request.param == "sqlite":  # orders in SQLite, order-events on the broker
        config = replace(config, backend="sqlite", db=tmp_path / "shop.db")
    topic = f"{kafka_prefix}.order-events"
    admin = admin_client(config)
    try:
        admin.create_topics(
            {topic: {"num_partitions": 3, "replication_factor": 1}},
            timeout_ms=30_000,
            wait_for_metadata=True,
        )
    finally:
        admin.close()
    with Client(config=config, create=True) as client:
        client.add_product("KB-01", "Keyboard", 89.0, 1_000_000)
        client.add_product("MS-02", "Mouse", 25.0, 1_000_000)
        yield Shop(config, client, topic, f"{kafka_prefix}-bridge")


def order_created(order_id: str, customer: str = "c-1", quantity: int = 2) -> dict[str, Any]:
    """The earlier order API's message, field for field."""
    return {
        "EventType": "OrderCreated",
        "OrderId": order_id,
        "CustomerId": customer,
        "Items": [
            {"ProductId": "KB-01", "Quantity": quantity},
            {"ProductId": "MS-02", "Quantity": 1},
        ],
        "Status": "Created",
        "Timestamp": "2026-12-03T10:00:00.1234567Z",
    }


def produce(shop: Shop, messages: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(**kafka_kwargs(shop.config), acks="all")
    try:
        for key, value in messages:
            producer.send(shop.topic, key=key.encode(), value=value)
        producer.flush()
    finally:
        producer.close()


def end_offsets(shop: Shop) -> dict[str, int]:
    reader = KafkaConsumer(**kafka_kwargs(shop.config))
    try:
        tps = [TopicPartition(shop.topic, p) for p in range(3)]
        ends = reader.end_offsets(tps)
        return {f"{tp.topic}:{tp.partition}": end for tp, end in ends.items() if end}
    finally:
        reader.close()


def dead_letters(shop: Shop) -> list[tuple[bytes | None, dict[str, str]]]:
    reader = KafkaConsumer(**kafka_kwargs(shop.config))
    try:
        tp = TopicPartition(shop.config.dlq_topic, 0)
        reader.assign([tp])
        end = reader.end_offsets([tp])[tp]
        reader.seek_to_beginning(tp)
        found: list[tuple[bytes | None, dict[str, str]]] = []
        while reader.position(tp) < end:
            for records in reader.poll(timeout_ms=500).values():
                found += [(r.value, {k: v.decode() for k, v in r.headers}) for r in records]
        return found
    finally:
        reader.close()


@dataclass
class Running:
    """A bridge process; its stdout and stderr go to ``log``."""

    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no cleanup at all
        self.proc.wait(timeout=10)

    def wait(self, timeout: float) -> str:
        self.proc.wait(timeout=timeout)  # a hang fails here
        return self.output()


def bridge(shop: Shop, cwd: Path, *extra: str) -> Running:
    log = cwd / f"bridge-{len(list(cwd.glob('bridge-*.log')))}.log"
    with log.open("wb") as out:  # the child keeps its own handle
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "realorders"),
                *("bridge", "order-events", "--topic", shop.topic, "--group", shop.group),
                *extra,
            ],
            cwd=cwd,
            env=shop.env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    return Running(proc, log)


def stop(running: Running) -> str:
    """SIGTERM, its normal way to stop: exit 0 and its output, no traceback."""
    running.proc.send_signal(signal.SIGTERM)
    err = running.wait(timeout=30)
    assert running.proc.returncode == 0, err
    assert "Traceback" not in err, err
    return err


def caught_up(shop: Shop) -> None:
    ends = end_offsets(shop)
    wait_for(
        lambda: shop.client.source_offsets(shop.source),
        lambda kept: kept == ends,
        what=f"the bridge to reach {ends}",
    )


def test_each_order_created_is_submitted_once_and_bad_records_are_set_aside(
    shop: Shop, tmp_path: Path
) -> None:
    good = [order_created(f"legacy-{i}", f"c-{i % 7}") for i in range(200)]
    messages = [(m["OrderId"], orjson.dumps(m)) for m in good]
    messages += [(m["OrderId"], orjson.dumps(m)) for m in good[:20]]  # redelivered
    messages += [
        ("legacy-bad-1", b"not json"),
        ("legacy-bad-2", orjson.dumps({**good[0], "EventType": "OrderShipped"})),
        ("legacy-bad-3", orjson.dumps({**order_created("legacy-bad-3"), "CustomerId": None})),
        ("legacy-0", orjson.dumps(order_created("legacy-0", "someone-else"))),  # conflict
    ]
    produce(shop, messages)

    proc = bridge(shop, tmp_path)
    try:
        caught_up(shop)
    finally:
        err = stop(proc)
    assert "bridge stopped: 200 orders submitted, 20 duplicates, 4 dead letters" in err, err

    shop.client.run(until_idle=True, delays=Delays(), handle_signals=False)
    views = [shop.client.get(f"legacy-{i}") for i in range(200)]
    assert {v.status for v in views} == {Status.DELIVERED}
    assert views[3].customer_id == "c-3"
    assert views[3].state is not None
    lines = [(i["product_id"], i["quantity"]) for i in views[3].state.items]
    assert lines == [("KB-01", 2), ("MS-02", 1)]
    assert shop.client.counts()["delivered"] == 200

    reasons = sorted(headers["reason"] for _, headers in dead_letters(shop))
    assert reasons == sorted(
        [
            "not JSON: invalid literal, expected 'null': line 1 column 1 (char 0)",
            "EventType 'OrderShipped' is not 'OrderCreated'",
            "CustomerId is missing",
            "OrderId 'legacy-0' was taken in before with other content; the stored order is kept",
        ]
    ), reasons


def test_kill_9_of_the_bridge_mid_stream_loses_and_doubles_nothing(
    shop: Shop, tmp_path: Path
) -> None:
    count = int(os.environ.get("REALORDERS_BRIDGE_ORDERS", "4000"))
    produce(
        shop,
        [(f"k-{i}", orjson.dumps(order_created(f"k-{i}", f"c-{i % 11}"))) for i in range(count)],
    )
    first = bridge(shop, tmp_path)
    try:
        wait_for(
            lambda: sum(shop.client.source_offsets(shop.source).values()),
            lambda n: n > 0,
            what="the first pages",
        )
    finally:
        first.kill()
    at_kill = sum(shop.client.source_offsets(shop.source).values())
    assert at_kill < count, "killed too late to test anything"

    second = bridge(shop, tmp_path)
    try:
        caught_up(shop)
    finally:
        err = stop(second)
    assert ", 0 dead letters" in err, err

    shop.client.run(until_idle=True, delays=Delays(), handle_signals=False)
    counts = shop.client.counts()
    assert counts["delivered"] == count, counts
    assert sum(counts.values()) == count, counts  # no order twice, none missing
    assert shop.client.check().ok


@pytest.mark.parametrize("fault", ["wrong password", "untrusted certificate"])
def test_a_wrong_password_or_an_untrusted_certificate_is_one_line_at_once(
    shop: Shop, tmp_path: Path, fault: str
) -> None:
    if fault == "wrong password":
        shop.config = replace(shop.config, kafka_password="not-the-password")
        expected = "password"
    else:
        shop.config = replace(shop.config, kafka_ca_file=untrusted_ca_file(tmp_path))
        expected = "certificate not trusted"
    running = bridge(shop, tmp_path)
    err = running.wait(timeout=60)
    assert running.proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert expected in lines[0].lower(), err


def read_topic(shop: Shop) -> list[tuple[bytes, dict[str, Any], dict[str, bytes]]]:
    """Every record of order-events: key, value, headers."""
    reader = KafkaConsumer(**kafka_kwargs(shop.config))
    try:
        tps = [TopicPartition(shop.topic, p) for p in range(3)]
        reader.assign(tps)
        ends = reader.end_offsets(tps)
        reader.seek_to_beginning(*tps)
        found = []
        while any(reader.position(tp) < ends[tp] for tp in tps):
            for records in reader.poll(timeout_ms=500).values():
                found += [(r.key, orjson.loads(r.value), dict(r.headers)) for r in records]
        return found
    finally:
        reader.close()


def test_publish_writes_order_created_for_realorders_own_orders_only(
    shop: Shop, tmp_path: Path
) -> None:
    produce(shop, [("from-topic-1", orjson.dumps(order_created("from-topic-1")))])
    proc = bridge(shop, tmp_path, "--publish")
    try:
        wait_for(
            lambda: shop.client.taken_from_source(["from-topic-1"]),
            bool,
            what="the topic's order to be taken in",
        )
        shop.client.submit(
            customer_id="ada", items=[LineItem("KB-01", 3)], order_id="own-1", notes="gift"
        )
        shop.client.run(until_idle=True, delays=Delays(), handle_signals=False)
        wait_for(
            lambda: [key for key, _, _ in read_topic(shop)],
            lambda keys: b"own-1" in keys,
            progress=lambda keys: (keys, proc.output()),
            what="own-1 published",
        )
    finally:
        err = stop(proc)
    assert "1 orders submitted, 0 duplicates, 0 dead letters, 1 published" in err, err
    records = read_topic(shop)
    assert [key for key, _, _ in records].count(b"from-topic-1") == 1  # not echoed back
    ((_, value, headers),) = [r for r in records if r[0] == b"own-1"]
    assert set(headers) == {"realorders-origin"}
    stamp = value.pop("Timestamp")
    assert stamp.endswith("Z")
    assert value == {
        "EventType": "OrderCreated",
        "OrderId": "own-1",
        "CustomerId": "ada",
        "Items": [{"ProductId": "KB-01", "Quantity": 3}],
        "Status": "Created",
    }


def test_publish_starts_when_the_bridge_says_it_has_started(shop: Shop) -> None:
    """An order processed while the bridge joins its group is published, not skipped."""
    done = threading.Event()

    def process_an_order_at_once() -> None:  # before the bridge's first poll, let alone join
        shop.client.submit(customer_id="ada", items=[LineItem("KB-01", 1)], order_id="own-2")
        shop.client.run(until_idle=True, delays=Delays(), handle_signals=False)
        done.set()

    options = BridgeOptions(topic=shop.topic, group=shop.group, publish=True)
    stop = threading.Event()
    with Client(config=shop.config) as client:
        bridging = OrderEventsBridge(client, shop.config, options)
        thread = threading.Thread(
            target=bridging.run, args=(stop,), kwargs={"started": process_an_order_at_once}
        )
        thread.start()
        try:
            wait_for(done.is_set, bool, what="own-2 processed")
            wait_for(
                lambda: [key for key, _, _ in read_topic(shop)],
                lambda keys: b"own-2" in keys,
                what="own-2 published",
            )
        finally:
            stop.set()
            thread.join(timeout=60)
    assert bridging.stats.published == 1


def test_a_missing_topic_is_one_line_not_a_silent_wait(shop: Shop, tmp_path: Path) -> None:
    running = bridge(replace(shop, topic=f"{shop.topic}-absent"), tmp_path)
    err = running.wait(timeout=60)
    assert running.proc.returncode == 2, err
    assert err.strip().splitlines() == [
        f"error: topic '{shop.topic}-absent' does not exist at {shop.config.kafka_bootstrap} "
        "(the earlier order API creates it; check --topic and --kafka-bootstrap)"
    ]
