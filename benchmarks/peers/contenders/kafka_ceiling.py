#!/usr/bin/env python3
"""The Kafka ceiling: the broker's raw produce and consume rate for one record per order.

Not a contender: no stock, no events, no Redis. On a broker of its own
(``scripts/services``), N records, byte for byte the submit commands that
``realorders import`` produces for this workload (same keys, same values,
built before the clock), go to a topic with realorders' partition count through
kafka-python's KafkaProducer with the intake's settings (acks=all, idempotent,
linger 5 ms, 256 KB batches), then a KafkaConsumer reads them all back (5,000
records per poll, as the engine's consumer). ``seconds`` is produce + consume
(a pipeline must at least write and read each order once); both rates are in
the result. Counts and stock are expected()'s, not read from a store.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import kafka_services
import workload

try:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    from realorders.engine.backends.kafka_log import encode_command
    from realorders.engine.ports import CommandKind
except ImportError as missing:
    common.skip(f"not installed: {missing.name}")

MODES = ("saturation",)
KIND = "ceiling"
GROUP = "kafka"
MAX_N = 100_000  # as the group; it holds every record (532 MB peak RSS at 100k)
PARTITIONS = 12  # as realorders_kafka's topics
TOPIC = "ceiling.records"


def records(args: common.Args) -> list[tuple[bytes, bytes]]:
    now = time.time()
    return [
        (
            order.order_id.encode(),
            encode_command(CommandKind.SUBMIT, order.order_id, workload.order_json(order), i, now),
        )
        for i, order in enumerate(workload.iter_orders(args.n, args.seed, args.products), 1)
    ]


def produce(bootstrap: str, batch: list[tuple[bytes, bytes]]) -> float:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
    )
    try:
        producer.partitions_for(TOPIC)  # metadata before the clock starts
        started = time.perf_counter()
        futures = [producer.send(TOPIC, key=key, value=value) for key, value in batch]
        producer.flush(timeout=600)
        seconds = time.perf_counter() - started
    finally:
        producer.close()
    failed = sum(1 for future in futures if future.failed())
    if failed:
        raise SystemExit(f"{failed} of {len(batch)} records were not produced")
    return seconds


def consume(bootstrap: str, count: int) -> float:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5000,
    )
    try:
        consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        got = 0
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while got < count:
            got += sum(map(len, consumer.poll(timeout_ms=200, max_records=5000).values()))
            if time.monotonic() > deadline:
                raise SystemExit(f"consumed {got} of {count} records in 600 s")
        return time.perf_counter() - started
    finally:
        consumer.close()


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    kafka_services.stop_on_signals()
    batch = records(args)
    with kafka_services.Services(args.dir, redis=False) as services:
        admin = KafkaAdminClient(bootstrap_servers=services.bootstrap)
        try:
            admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        finally:
            admin.close()
        clock = common.Clock()
        clock.start()
        services.mark_cpu()
        produce_seconds = produce(services.bootstrap, batch)
        consume_seconds = consume(services.bootstrap, len(batch))
        clock.stop()
        clock.stop_cpu()
        service_cpu = services.cpu()
        extra: dict[str, Any] = {
            "produce_seconds": produce_seconds,
            "produce_records_per_second": args.n / produce_seconds,
            "consume_seconds": consume_seconds,
            "consume_records_per_second": args.n / consume_seconds,
            "record_bytes_mean": sum(len(v) for _, v in batch) / len(batch),
            "service_cpu_s": service_cpu,
            "service_peak_rss_mb": services.rss_mb(),
        }
        versions = common.versions("kafka-python")
        versions.update(services.versions())
    assert clock.cpu_seconds is not None
    extra["cpu_seconds_with_services"] = clock.cpu_seconds + sum(service_cpu.values())
    out = workload.outcome(
        workload.stock_for(args.n, args.seed, args.products),
        workload.iter_orders(args.n, args.seed, args.products),
    )
    common.write_result(
        args,
        contender="kafka_ceiling",
        durability="Kafka acks=all, idempotent producer (no transactions), 1 broker",
        versions=versions,
        clock=clock,
        events=0,
        counts=out.counts,
        stock=out.stock,
        latency={"p50": 0.0, "p99": 0.0},
        notes=(
            f"a ceiling, not a contender: {args.n:,} submit-command records "
            f"({extra['record_bytes_mean']:.0f} B) on {PARTITIONS} partitions, produced in "
            f"{produce_seconds:.2f} s ({extra['produce_records_per_second']:,.0f}/s) then "
            f"consumed in {consume_seconds:.2f} s ({extra['consume_records_per_second']:,.0f}/s); "
            f"the broker used {sum(service_cpu.values()):.2f} s CPU more (not in wait4)"
        ),
        **extra,
    )


if __name__ == "__main__":
    main()
