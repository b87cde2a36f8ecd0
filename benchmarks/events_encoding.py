#!/usr/bin/env python3
"""The events topic's encoding alone, per order: positional arrays (before issue 16) vs now.

End to end (``distributed_ab.py``) the difference drowns in a shared machine's
noise; this times only what changed, in one process: encoding a batch's events
and building kafka-python's record batch from the records (key, value, headers),
as ``KafkaProducer.send`` does for each. The positional encoder is reproduced
here as it was (``read.encode_event`` and the concatenation in
``KafkaBackend.commit``). Workload: 2,000 orders of 1-3 lines, 5 events each (all
in one batch, as with zero delays), the best of ``--repeat`` rounds of 10, the
two forms alternating.

Usage: python benchmarks/events_encoding.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from kafka.record.default_records import DefaultRecordBatchBuilder

from realorders.domain import Event, Status
from realorders.engine.backends.distributed.records import EventRecord, encode_batch

ORDERS = 2000
LIFECYCLE = [Status.PENDING, Status.RESERVED, Status.PACKED, Status.SHIPPED, Status.DELIVERED]


def workload() -> list[Event]:
    now = time.time()
    events = []
    for i in range(ORDERS):
        items = [
            {"product_id": f"P{j:04d}", "quantity": 2, "price": 9.99} for j in range(1 + i % 3)
        ]
        data = {"customer_id": f"c{i % 5000}", "items": items, "created_at": now, "arrival": i + 1}
        for seq, status in enumerate(LIFECYCLE, 1):
            at = now + i * 1e-4 + seq * 1e-6
            events.append(Event(f"B{i:09d}", seq, status, at, data if seq == 1 else None))
    return events


def positional(events: list[Event]) -> tuple[list[bytes], list[EventRecord]]:
    encoded = [orjson.dumps([e.order_id, e.seq, e.status, e.at, e.data]) for e in events]
    by_order: dict[str, list[bytes]] = {}
    for event, raw in zip(events, encoded, strict=True):
        by_order.setdefault(event.order_id, []).append(raw)
    return encoded, [(o, b"[" + b",".join(r) + b"]", []) for o, r in by_order.items()]


def build(records: list[EventRecord]) -> None:
    """What ``send`` and the accumulator do per record: check headers, size it, append it."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=1,
        producer_id=1,
        producer_epoch=0,
        base_sequence=0,
        batch_size=1 << 30,
    )
    for offset, (key, value, headers) in enumerate(records):
        raw_key = key.encode()
        assert all(isinstance(h, tuple) and isinstance(h[1], bytes) for h in headers)
        DefaultRecordBatchBuilder.estimate_size_in_bytes(raw_key, value, headers)
        builder.append(offset, None, raw_key, value, headers)
    builder.build()


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    for _ in range(10):
        call()
    return (time.perf_counter() - started) / 10 / ORDERS * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    events = workload()
    forms = {"positional": positional, "readable": encode_batch}
    made = {name: encode(events) for name, encode in forms.items()}
    rounds: dict[str, list[list[float]]] = {name: [[], []] for name in forms}
    for _ in range(args.repeat):  # the forms alternate: a busy spell hits both
        for name, encode in forms.items():
            rounds[name][0].append(timed(lambda encode=encode: encode(events)))
            rounds[name][1].append(timed(lambda records=made[name][1]: build(records)))
    print("| form | encode µs/order | record batch µs/order | total | value B | event B in Redis |")
    print("|---|---|---|---|---|---|")
    totals = {}
    for name, (encoded, records) in made.items():
        enc, rec = min(rounds[name][0]), min(rounds[name][1])
        totals[name] = enc + rec
        value = statistics.mean(len(v) for _, v, _ in records)
        stored = statistics.mean(map(len, encoded))
        print(f"| {name} | {enc:.2f} | {rec:.2f} | {enc + rec:.2f} | {value:.0f} | {stored:.0f} |")
    print(f"readable - positional: {totals['readable'] - totals['positional']:+.2f} µs per order")


if __name__ == "__main__":
    main()
