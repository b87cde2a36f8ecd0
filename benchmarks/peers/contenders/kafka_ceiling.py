#!/usr/bin/env python3
"""The Kafka ceiling: the broker's raw produce and consume rate for one record per order.

Not a contender: no stock, no events, no Redis. On a broker of its own
(``scripts/services``), N records, byte for byte the submit commands that
``realorders import`` produces for this workload (same keys, same values,
built before the clock; with ``--workload restock`` the restock commands too, at
their places, keyed by product), go to a topic with realorders' partition count through
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
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/: distributed.py

import common
import kafka_services
import workload

try:
    import distributed  # the same produce/consume ceiling as benchmarks/distributed.py

    from realorders.engine.backends.distributed.commands import encode_command
    from realorders.engine.ports import CommandKind
except ImportError as missing:
    common.skip(f"not installed: {missing.name}")

MODES = ("saturation",)
WORKLOADS = ("standard", "backorder", "restock")
KIND = "ceiling"
GROUP = "kafka"
MAX_N = 100_000  # as the group; it holds every record (532 MB peak RSS at 100k)
PARTITIONS = 12  # as realorders_kafka's topics


def records(args: common.Args) -> list[tuple[bytes, bytes]]:
    """Each order's submit command, and each restock's where it falls due (keyed by product)."""
    now = time.time()
    due = sorted(args.restocks(), reverse=True)
    out: list[tuple[bytes, bytes]] = []

    def restocks_up_to(submitted: int) -> None:
        while due and due[-1].after <= submitted:
            r = due.pop()
            body = {"product_id": r.sku, "quantity": r.quantity}
            value = encode_command(CommandKind.RESTOCK, None, body, len(out) + 1, now)
            out.append((r.sku.encode(), value))

    for i, order in enumerate(args.orders()):
        restocks_up_to(i)
        body = workload.order_json(order)
        value = encode_command(CommandKind.SUBMIT, order.order_id, body, len(out) + 1, now)
        out.append((order.order_id.encode(), value))
    restocks_up_to(args.n)
    return out


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    kafka_services.stop_on_signals()
    batch = records(args)
    with kafka_services.Services(args.dir, redis=False) as services:
        clock = common.Clock()
        clock.start()
        services.mark_cpu()
        rates = distributed.ceiling(services.bootstrap, batch, PARTITIONS)  # creates its topic
        clock.stop()
        clock.stop_cpu()
        service_cpu = services.cpu()
        produce_seconds, consume_seconds = rates["produce_seconds"], rates["consume_seconds"]
        extra: dict[str, Any] = {
            **rates,
            "service_cpu_s": service_cpu,
            "service_peak_rss_mb": services.rss_mb(),
        }
        versions = common.versions("kafka-python")
        versions.update(services.versions())
    assert clock.cpu_seconds is not None
    extra["cpu_seconds_with_services"] = clock.cpu_seconds + sum(service_cpu.values())
    out = workload.outcome(args.stock(), args.orders(), args.restocks())
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
            f"a ceiling, not a contender: {len(batch):,} command records (submits, restocks) "
            f"({extra['record_bytes_mean']:.0f} B) on {PARTITIONS} partitions, produced in "
            f"{produce_seconds:.2f} s ({extra['produce_records_per_second']:,.0f}/s) then "
            f"consumed in {consume_seconds:.2f} s ({extra['consume_records_per_second']:,.0f}/s); "
            f"the broker used {sum(service_cpu.values()):.2f} s CPU more (not in wait4)"
        ),
        **extra,
    )


if __name__ == "__main__":
    main()
