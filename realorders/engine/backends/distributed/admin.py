"""Topic set-up and consumer-group progress for the distributed mode.

Topics: ``<prefix>.commands`` and ``<prefix>.events`` (keyed by order id,
same partition count, so an order's commands and events share a partition
number) and ``<prefix>.dlq``. Events are kept forever (``retention.ms=-1``):
they are the source of truth ``check`` and a new partition owner replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import InvalidReplicationFactorError, KafkaError, TopicAlreadyExistsError

from realorders.config import Config
from realorders.engine.backends.distributed.connect import kafka_kwargs
from realorders.errors import RealordersError, UsageError

__all__ = ["admin_client", "ensure_topics", "group_lag", "partition_count"]


def admin_client(config: Config) -> Any:
    return KafkaAdminClient(**kafka_kwargs(config), request_timeout_ms=15_000)


def _brokers(admin: Any) -> int:
    return max(1, len(admin.describe_cluster().get("brokers", [])))


def ensure_topics(config: Config) -> dict[str, str]:
    """Create the three topics when missing; returns topic -> "created" | "exists"."""
    admin = admin_client(config)
    try:
        replication = config.kafka_replication_factor or min(3, _brokers(admin))
        wanted = {
            config.commands_topic: {},
            config.events_topic: {"retention.ms": "-1"},
            config.dlq_topic: {},
        }
        existing = set(admin.list_topics())
        outcome: dict[str, str] = {}
        for topic, configs in wanted.items():
            if topic in existing:
                outcome[topic] = "exists"
                continue
            partitions = 1 if topic == config.dlq_topic else config.kafka_partitions
            try:
                admin.create_topics(
                    {
                        topic: {
                            "num_partitions": partitions,
                            "replication_factor": replication,
                            "configs": configs,
                        }
                    },
                    timeout_ms=30_000,
                    wait_for_metadata=True,
                )
                outcome[topic] = "created"
            except TopicAlreadyExistsError:
                outcome[topic] = "exists"  # another init won the race
            except InvalidReplicationFactorError:
                source = config.source_of("kafka_replication_factor")
                raise UsageError(
                    f"cannot create {topic} with replication factor {replication}: the cluster "
                    f"at {config.kafka_bootstrap} has {_brokers(admin)} broker(s) "
                    f"(kafka_replication_factor from {source})"
                ) from None
        counts = {t: _partitions(admin, t) for t in (config.commands_topic, config.events_topic)}
        if len(set(counts.values())) != 1:
            raise RealordersError(
                f"{config.commands_topic} has {counts[config.commands_topic]} partitions but "
                f"{config.events_topic} has {counts[config.events_topic]}: they must match "
                "(an order's commands and events share a partition number)"
            )
        return outcome
    finally:
        admin.close()


def _partitions(admin: Any, topic: str) -> int:
    (described,) = admin.describe_topics([topic])
    return len(described["partitions"])


def partition_count(config: Config, topic: str) -> int:
    admin = admin_client(config)
    try:
        return _partitions(admin, topic)
    finally:
        admin.close()


def _retrying(call: Callable[[], Any], seconds: float = 15.0) -> Any:
    """Retry while the broker is still electing a coordinator (a fresh cluster does that)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def group_lag(config: Config, reader: KafkaConsumer, admin: Any, patience: float = 15.0) -> int:
    """Records on the commands topic past the engines' committed offsets.

    ``patience``: seconds each lookup retries retriable errors before giving up.
    """
    topic = config.commands_topic
    parts = reader.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    if not tps:
        return 0
    timeout_ms = int(min(5.0, patience) * 1000)
    ends = _retrying(lambda: reader.end_offsets(tps, timeout_ms=timeout_ms), patience)
    result = _retrying(lambda: admin.list_group_offsets(config.kafka_group), patience)
    committed = result.get(config.kafka_group, result) if isinstance(result, dict) else {}
    lag = 0
    for tp in tps:
        done = committed.get(tp)
        offset = 0 if done is None or done.offset < 0 else done.offset
        lag += max(0, ends[tp] - offset)
    return lag
