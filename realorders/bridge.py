"""Intake from the earlier design's ``order-events`` topic (``realorders bridge order-events``).

The bridge reads the topic as a consumer group (a new group starts from the
earliest offset, as the earlier consumer did) and turns each ``OrderCreated``
into a submission under the message's own ``OrderId``. Where it has read to is
kept by the store with the submissions of each page
(:meth:`realorders.Client.submit_from_source`): in one SQLite transaction, or on
Kafka + Redis once the page's orders are durable. A restarted or rebalanced
bridge seeks to those offsets, so a crash at any moment neither loses an order
nor doubles one: a page read twice comes back as duplicates. The group's own
committed offsets follow, for lag tools; they are never what the bridge trusts.

A record that is not an ``OrderCreated`` realorders can take in, or that reuses
an ``OrderId`` with other content, goes to the dead-letter topic with headers
saying why and where it came from (the same headers as the engine's dead
letters), and the bridge goes on. Dead letters are produced before the page's
offsets are kept, so a crash can repeat one, never lose one.

With ``publish`` the same process also writes ``OrderCreated`` for the orders
realorders takes in itself (:mod:`realorders.bridge_publish`) and skips them
when it reads them back.

Works whichever backend realorders runs on: the topic is read with the
distributed mode's Kafka settings (bootstrap, SASL, TLS), the store is the
configured one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from realorders.bridge_publish import ORIGIN_HEADER, CreatedPublisher, store_origin
from realorders.client import Client
from realorders.config import Config
from realorders.domain import Order
from realorders.earlier_events import MalformedMessage, parse_order_created
from realorders.engine.backends.distributed.admin import admin_client
from realorders.engine.backends.distributed.connect import kafka_kwargs, probe_kafka
from realorders.engine.ports import IntakeOutcome
from realorders.errors import UsageError

__all__ = ["BridgeOptions", "BridgeStats", "OrderEventsBridge"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    topic: str = "order-events"
    group: str = "real-orders"
    dead_letter_topic: str | None = None  # None: the distributed mode's PREFIX.dlq
    page: int = 1000  # records per poll, at most: one store write each
    poll_seconds: float = 0.5
    publish: bool = False  # also OrderCreated for the orders realorders takes in itself


@dataclass(slots=True)
class BridgeStats:
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    own: int = 0  # this store's own published messages, read back and skipped
    published: int = 0
    pages: int = 0
    partitions: list[int] = field(default_factory=list)


DeadLetterHook = Callable[[str, str], None]  # (where "topic:partition:offset", reason)


class _Resume(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """On each assignment, seek to what the store kept (else the group's offset or earliest)."""

    def __init__(self, bridge: OrderEventsBridge) -> None:
        self._bridge = bridge

    def on_partitions_revoked(self, revoked: Any) -> None:
        return None  # offsets are kept with every page: nothing is pending here

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._bridge.resume(list(assigned))


class OrderEventsBridge:
    """One bridge process's loop; several may run in one group and share the partitions."""

    def __init__(
        self,
        client: Client,
        config: Config,
        options: BridgeOptions | None = None,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.options = options or BridgeOptions()
        self.source = f"{self.options.topic}@{self.options.group}"
        self.dead_letter_topic = self.options.dead_letter_topic or config.dlq_topic
        self.stats = BridgeStats()
        self._on_dead_letter = on_dead_letter
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._publisher: CreatedPublisher | None = None
        self._origin = store_origin(client)

    # -- lifecycle ------------------------------------------------------------------

    def open(self) -> None:
        """Connect (a wrong password or an untrusted certificate fails here, in one line)."""
        probe_kafka(self.config)
        self._check_topics()
        kwargs = kafka_kwargs(self.config)
        self._producer = KafkaProducer(**kwargs, acks="all", linger_ms=5)
        self._consumer = KafkaConsumer(
            **kwargs,
            group_id=self.options.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.options.page,
            session_timeout_ms=10_000,  # as the engines: a killed bridge's share moves in 10 s
        )
        self._consumer.subscribe([self.options.topic], listener=_Resume(self))
        if self.options.publish:
            producer = self._producer
            self._publisher = CreatedPublisher(
                self.client,
                self.options.topic,
                lambda topic, key, value, headers: producer.send(
                    topic, key=key, value=value, headers=headers
                ),
                producer.flush,
            )

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None

    def run(self, stop: threading.Event, started: Callable[[], None] | None = None) -> None:
        """Take in pages until ``stop`` is set (a page in hand is finished first)."""
        self.open()
        try:
            if self._publisher is not None:
                self._publisher.start()
            if started is not None:
                started()
            while not stop.is_set():
                self.step()
                if self._publisher is not None:
                    self._publisher.step()
                    self.stats.published = self._publisher.published
        finally:
            self.close()

    # -- one page ---------------------------------------------------------------------

    def step(self) -> int:
        """Poll one page and take it in; returns the number of records read."""
        assert self._consumer is not None, "open() first"
        polled = self._consumer.poll(
            timeout_ms=int(self.options.poll_seconds * 1000), max_records=self.options.page
        )
        records = [rec for batch in polled.values() for rec in batch]
        if records:
            self.take(records)
        return len(records)

    def take(self, records: Sequence[Any]) -> None:
        """Submit a page's orders and keep its offsets; dead-letter what cannot be taken in."""
        orders: list[Order] = []
        origin: dict[str, Any] = {}
        dead: list[tuple[Any, str]] = []
        ends: dict[TopicPartition, int] = {}
        for rec in records:
            ends[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
            if (ORIGIN_HEADER, self._origin) in (rec.headers or ()):
                self.stats.own += 1  # published by this store: already an order here
                continue
            try:
                order = parse_order_created(rec.value)
            except MalformedMessage as exc:
                dead.append((rec, str(exc)))
                continue
            orders.append(order)
            origin.setdefault(order.id, rec)
        offsets = {f"{tp.topic}:{tp.partition}": end for tp, end in ends.items()}
        self._send_dead(dead)
        results = self.client.submit_from_source(orders, self.source, offsets)
        conflicts = []
        for order, result in zip(orders, results, strict=True):
            if result.outcome is IntakeOutcome.ACCEPTED:
                self.stats.accepted += 1
            elif result.outcome is IntakeOutcome.DUPLICATE:
                self.stats.duplicates += 1
            else:
                reason = (
                    f"OrderId {order.id!r} was taken in before with other content; "
                    "the stored order is kept"
                )
                conflicts.append((origin[order.id], reason))
        self._send_dead(conflicts)
        self.stats.pages += 1
        self._commit_group(ends)

    def resume(self, assigned: list[TopicPartition]) -> None:
        """Seek the assigned partitions to the offsets the store kept with the orders."""
        assert self._consumer is not None
        kept = self.client.source_offsets(self.source)
        for tp in assigned:
            offset = kept.get(f"{tp.topic}:{tp.partition}")
            if offset is not None:
                self._consumer.seek(tp, offset)
        self.stats.partitions = sorted(tp.partition for tp in assigned)
        log.info("bridge reads %s partitions %s", self.options.topic, self.stats.partitions)

    # -- helpers ------------------------------------------------------------------------

    def _send_dead(self, dead: list[tuple[Any, str]]) -> None:
        if not dead:
            return
        assert self._producer is not None
        for rec, reason in dead:
            where = f"{rec.topic}:{rec.partition}:{rec.offset}"
            headers = [
                ("reason", reason.encode()),
                ("source", where.encode()),
                ("at", str(time.time()).encode()),
            ]
            self._producer.send(
                self.dead_letter_topic, key=rec.key, value=rec.value, headers=headers
            )
            self.stats.dead_letters += 1
            if self._on_dead_letter is not None:
                self._on_dead_letter(where, reason)
        self._producer.flush()

    def _commit_group(self, ends: dict[TopicPartition, int]) -> None:
        """The group's offsets, for lag tools (the store's are the ones that count)."""
        assert self._consumer is not None
        try:
            self._consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in ends.items()})
        except KafkaError as exc:  # a rebalance under way: the next page commits again
            log.info("bridge: group commit skipped (%s)", exc)

    def _check_topics(self) -> None:
        """The topic must exist (a group on a missing one would wait in silence); the
        dead-letter topic is made with one partition, as ``realorders dlq`` reads it."""
        admin = admin_client(self.config)
        try:
            topics = set(admin.list_topics())
            if self.options.topic not in topics:
                raise UsageError(
                    f"topic {self.options.topic!r} does not exist at {self.config.kafka_bootstrap}"
                    " (the earlier order API creates it; check --topic and --kafka-bootstrap)"
                )
            if self.dead_letter_topic in topics:
                return
            brokers = max(1, len(admin.describe_cluster().get("brokers", [])))
            replication = self.config.kafka_replication_factor or min(3, brokers)
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    {
                        self.dead_letter_topic: {
                            "num_partitions": 1,
                            "replication_factor": replication,
                        }
                    },
                    timeout_ms=30_000,
                    wait_for_metadata=True,
                )
        finally:
            admin.close()
