#!/usr/bin/env python3
"""How long back-to-back Kafka transactions take: one transactional producer, or two in turn.

The engine commits each batch in a transaction (its events, then the consumed
offsets). Right after a commit, the coordinator is still writing that
transaction's markers, and the same producer's next ``AddPartitionsToTxn`` or
``AddOffsetsToTxn`` is refused with ``CONCURRENT_TRANSACTIONS``; kafka-python
retries it ``retry_backoff_ms`` later (20 ms, the engine's setting). This
measures that cost in isolation, on the project's own broker (started in a
scratch directory, stopped by PID): ``--transactions`` transactions of
``--records`` records (the size of an event record) to a 12-partition topic,
each committing the offsets of 12 partitions for a consumer group, as an engine
batch does. Phases: sends (``send`` calls), offsets
(``send_offsets_to_transaction``: the AddOffsets and TxnOffsetCommit round
trips, and the retries), commit (``commit_transaction``).

Usage: python benchmarks/kafka_transactions.py [--transactions 300] [--records 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import kafka_services  # benchmarks/peers: a broker of the run's own, stopped by PID

PARTITIONS = 12
RETRY_BACKOFF_MS = 20  # the engine's transactional producers' setting
PHASES = ("sends", "offsets", "commit", "total")


def measure(bootstrap: str, producers: int, transactions: int, records: int, tag: str) -> None:
    """``transactions`` back-to-back transactions, the producers taken in turn."""
    pool = [
        KafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=f"{tag}-{i}",
            acks="all",
            linger_ms=2,
            retry_backoff_ms=RETRY_BACKOFF_MS,
        )
        for i in range(producers)
    ]
    for producer in pool:
        producer.init_transactions()
    consumer = KafkaConsumer(
        f"{tag}-commands",
        bootstrap_servers=bootstrap,
        group_id=f"{tag}-engines",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    while not consumer.assignment():
        consumer.poll(500)
    value = b"x" * 420  # an event record's size (5 events of an order)
    phases: list[tuple[float, ...]] = []
    for n in range(transactions):
        producer = pool[n % producers]
        started = time.perf_counter()
        producer.begin_transaction()
        for i in range(records):
            producer.send(f"{tag}-events", key=f"O{i}".encode(), value=value, partition=i % 12)
        sent = time.perf_counter()
        offsets = {
            TopicPartition(f"{tag}-commands", p): OffsetAndMetadata(n, "", -1)
            for p in range(PARTITIONS)
        }
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        offsets_done = time.perf_counter()
        producer.commit_transaction()
        done = time.perf_counter()
        phases.append((sent - started, offsets_done - sent, done - offsets_done, done - started))
    consumer.close()
    for producer in pool:
        producer.close()
    warm = phases[len(phases) // 10 :]  # the first tenth: connections, JIT
    cells = []
    for i, name in enumerate(PHASES):
        values = sorted(p[i] * 1000 for p in warm)
        p90 = values[int(len(values) * 0.9)]
        cells.append(f"{name} {statistics.median(values):.1f} / {p90:.1f}")
    print(f"| {producers} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=300)
    parser.add_argument("--records", type=int, default=30, help="records per transaction")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="realorders-txn-") as scratch,
        kafka_services.Services(Path(scratch)) as services,
    ):
        admin = KafkaAdminClient(bootstrap_servers=services.bootstrap)
        for tag in ("one", "two"):
            admin.create_topics(
                [
                    NewTopic(f"{tag}-events", PARTITIONS, 1),
                    NewTopic(f"{tag}-commands", PARTITIONS, 1),
                ]
            )
        admin.close()
        print(
            f"# {args.transactions} transactions of {args.records} records, back to back; "
            "ms, p50 / p90 (first tenth left out)"
        )
        print("| producers | sends | offsets | commit | total |")
        print("|---|---|---|---|---|")
        measure(services.bootstrap, 1, args.transactions, args.records, "one")
        measure(services.bootstrap, 2, args.transactions, args.records, "two")


if __name__ == "__main__":
    main()
