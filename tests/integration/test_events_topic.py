"""The events topic is readable without realorders, and topics written before stay readable.

Real broker and Redis (tests/services.py); the engine is the real console script
or the Client's own. ``kcat`` is Debian's package, a consumer that knows nothing
of realorders: every record it reads, read_committed, must validate against
docs/events.schema.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from kafka import KafkaProducer

from realorders import Client, Delays, LineItem, Status
from realorders.config import Config, load_config
from realorders.engine.backends.distributed.read import RedisEventLog

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def kcat() -> str:
    found = shutil.which("kcat")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kcat is missing: .ci/run installs it from Debian's packages")
        pytest.skip("kcat is not installed (apt-get install kcat)")
    return found


def validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads((ROOT / "docs" / "events.schema.json").read_text()))


def test_kcat_reads_every_record_and_each_validates_against_the_schema(
    cli: Any, kafka_server: Any, redis_server: Any, kafka_prefix: str, tmp_path: Path
) -> None:
    kcat_bin = kcat()
    env = {
        "REALORDERS_BACKEND": "kafka",
        "REALORDERS_KAFKA_BOOTSTRAP": kafka_server.bootstrap,
        "REALORDERS_REDIS_URL": redis_server.url,
        "REALORDERS_KAFKA_TOPIC_PREFIX": kafka_prefix,
        "REALORDERS_REDIS_PREFIX": kafka_prefix,
        "REALORDERS_KAFKA_GROUP": f"{kafka_prefix}-engine",
        "REALORDERS_KAFKA_PARTITIONS": "3",
    }

    def run(*args: str) -> str:
        return str(cli(*args, env=env, check=True).stdout)

    inventory = tmp_path / "inv.csv"
    inventory.write_text("product_id,name,price,stock\nKB-01,Keyboard,89.00,50\nSP-07,Spk,69,0\n")
    lines = [("KB-01", 1 + i % 3) for i in range(12)] + [("SP-07", 1), ("NOPE", 1)]
    ids = [f"D-{i}" for i in range(12)] + ["B-1", "R-1"]  # B-1 backordered, R-1 rejected
    orders: list[dict[str, Any]] = [
        {"id": i, "customer_id": "ada", "items": [{"product_id": p, "quantity": q}]}
        for i, (p, q) in zip(ids, lines, strict=True)
    ]
    orders[0]["notes"] = "gift wrap"
    (tmp_path / "orders.ndjson").write_text("".join(json.dumps(o) + "\n" for o in orders))
    run("init", "--inventory", str(inventory))
    run("import", str(tmp_path / "orders.ndjson"))
    run("run", "--until-idle")
    run("cancel", "B-1", "--reason", "changed my mind")  # backordered, then cancelled
    run("run", "--until-idle")

    topic = ["-b", kafka_server.bootstrap, "-t", f"{kafka_prefix}.events"]
    consumed = subprocess.run(
        [kcat_bin, "-C", *topic, "-X", "isolation.level=read_committed", "-e", "-q", "-J"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    envelopes = [json.loads(line) for line in consumed.stdout.splitlines() if line.strip()]
    schema = validator()
    seen: dict[str, list[tuple[int, str, float]]] = {}
    for envelope in envelopes:
        record = json.loads(envelope["payload"])
        errors = [e.message for e in schema.iter_errors(record)]
        assert not errors, (errors, envelope)
        assert envelope["key"] == record["order_id"]
        headers = dict(zip(envelope["headers"][::2], envelope["headers"][1::2], strict=True))
        types = ",".join(f"order.{e['status']}" for e in record["events"])
        assert headers == {"content-type": "application/json", "event-types": types}
        seen.setdefault(record["order_id"], []).extend(
            (e["seq"], e["status"], e["at"]) for e in record["events"]
        )
    statuses = {status for events in seen.values() for _, status, _ in events}
    assert statuses == {s.value for s in Status}  # every kind of data the schema describes
    # kcat saw exactly what realorders committed: every event once, times to the bit
    with Client(config=load_config({}, env), create=False) as client:
        assert client.check().ok
        assert sorted(seen) == sorted(o["id"] for o in orders)
        for order_id, events in seen.items():
            history = client.backend.events.history(order_id)
            assert events == [(e.seq, e.status.value, e.at) for e in history], order_id


#: records as realorders wrote them before issue 16: positional arrays, no headers
OLD_RECORDS = [
    (
        "OLD-1",
        b'[["OLD-1",1,"pending",1764694800.5,{"customer_id":"ada","items":[{"product_id":'
        b'"SP-07","quantity":1,"price":69.0}],"created_at":1764694800.25,"arrival":1}],'
        b'["OLD-1",2,"backordered",1764694800.75,{"reason":"out of stock: SP-07 needs 1, '
        b'0 available"}]]',
    ),
    (
        "OLD-2",
        b'[["OLD-2",1,"pending",1764694801.5,{"customer_id":"bob","items":[{"product_id":'
        b'"NOPE","quantity":2,"price":null}],"created_at":1764694801.25,"arrival":2,'
        b'"notes":"x"}]]',
    ),
    ("OLD-2", b'[["OLD-2",2,"rejected",1764694801.75,{"reason":"unknown product \'NOPE\'"}]]'),
]


def test_a_topic_written_before_issue_16_stays_readable(kafka_store_config: Config) -> None:
    with Client(config=kafka_store_config, create=True) as shop:
        shop.add_product("SP-07", "Speakers", 69.0, 0)
        shop.add_product("KB-01", "Keyboard", 89.0, 10)
        backend: Any = shop.backend
        producer = KafkaProducer(bootstrap_servers=kafka_store_config.kafka_bootstrap, acks="all")
        try:
            for order_id, value in OLD_RECORDS:
                partition = backend.partition_of(order_id)
                producer.send(
                    kafka_store_config.events_topic,
                    key=order_id.encode(),
                    value=value,
                    partition=partition,
                )
        finally:
            producer.close()
        # the engine's take-over replays them into Redis before any command
        shop.run(until_idle=True, delays=Delays(), handle_signals=False)
        assert shop.get("OLD-1").status is Status.BACKORDERED
        assert shop.get("OLD-2").status is Status.REJECTED
        shop.cancel("OLD-1", "upgraded")  # its third event is written in the new form
        shop.submit(customer_id="cy", items=[LineItem("KB-01", 1)], order_id="NEW-1")
        shop.run(until_idle=True, delays=Delays(), handle_signals=False)

        report = shop.check()  # reads the topic itself: both forms
        assert report.ok, report.problems
        assert (report.orders, report.events) == (3, 3 + 2 + 5)
        old = shop.get("OLD-1")
        assert [(e.seq, e.status, e.reason) for e in old.events] == [
            (1, Status.PENDING, None),
            (2, Status.BACKORDERED, "out of stock: SP-07 needs 1, 0 available"),
            (3, Status.CANCELLED, "upgraded"),
        ]
        watched = list(shop.watch(from_start=True, until_done=True, timeout=30))
        assert sorted((e.order_id, e.seq) for _, e in watched) == sorted(
            [("OLD-1", s) for s in (1, 2, 3)]
            + [("OLD-2", s) for s in (1, 2)]
            + [("NEW-1", s) for s in range(1, 6)]
        )


def test_a_projection_written_before_issue_16_stays_readable(
    redis_server: Any, redis_prefix: str
) -> None:
    p = f"{redis_prefix}:"
    new = b'{"seq":2,"status":"rejected","at":1764694801.75,"data":{"reason":"no"}}'
    with redis.Redis.from_url(redis_server.url) as r:
        r.rpush(f"{p}ev:OLD-2", OLD_RECORDS[1][1][1:-1], new)
        # entry 1: one event (before chunks); 3: a chunk of two arrays; 4: objects and ids
        r.xadd(f"{p}tail", {"e": OLD_RECORDS[1][1][1:-1]}, id="1-1")
        r.xadd(f"{p}tail", {"e": OLD_RECORDS[0][1]}, id="3-1")
        r.xadd(f"{p}tail", {"e": b"[" + new + b"]", "o": b'["OLD-2"]'}, id="4-1")
        events = RedisEventLog(r, p, scan=lambda: iter(())).history("OLD-2")
        assert [(e.order_id, e.seq, e.status, e.reason) for e in events] == [
            ("OLD-2", 1, Status.PENDING, None),
            ("OLD-2", 2, Status.REJECTED, "no"),
        ]
        tail = RedisEventLog(r, p, scan=lambda: iter(())).tail(0, 10)
    assert [(c, e.order_id, e.seq) for c, e in tail] == [
        (1, "OLD-2", 1),
        (2, "OLD-1", 1),
        (3, "OLD-1", 2),
        (4, "OLD-2", 2),
    ]
