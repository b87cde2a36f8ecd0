"""The distributed backend: commands and events on Kafka, stock and read model in Redis.

Effectively once, with Kafka transactions (see docs/architecture.md):

1. an engine reserves stock in Redis (provisional holds, idempotent per order);
2. it produces the batch's events, any wake-ups and dead letters, and the
   consumed command offsets in ONE Kafka transaction (fenced per KIP-447 by
   the consumer group's generation, so a deposed engine cannot commit);
3. only then it projects the batch into Redis (order rows, history, holds
   made definitive) with one Lua script that skips what it already has.

Steps 2 and 3 (and the batch's settlements before them) run on a commit thread
while the engine works on the next batch: one batch in flight, two
transactional producers in turn, and the engine's reads of what is in flight
wait for it ("The batch pipeline on Kafka" in docs/architecture.md).

A crash between 2 and 3 leaves Redis behind Kafka: whoever owns the partition
next replays the events topic from the projected offset before processing a
single command. A crash before 2 leaves provisional holds: the next owner puts
them back in line with the committed state. Commands of an uncommitted batch
are redelivered; the engine looks every order up, so nothing happens twice.

The events topic's side (projection, take-over, ``check``, ``watch``) is in
``projection.py``, what the commit thread sends in ``batch.py``; this module
keeps what shares the group consumer and the transactional producers:
ownership, intake produce, the batch commit. Which engines run and whether the
broker answers is ``liveness.py``.

Longer than 400 lines on purpose: ownership, the transactional commit and the
rebalance callbacks share one group consumer and the transactional producers,
and splitting them would spread that shared state across modules.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import orjson
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from realorders.config import Config
from realorders.engine.backends.distributed import admin
from realorders.engine.backends.distributed.batch import CommitBatch
from realorders.engine.backends.distributed.catalogue import RedisCatalogue
from realorders.engine.backends.distributed.commands import (
    Entry,
    KafkaCommandLog,
    Poison,
    decode_command,
)
from realorders.engine.backends.distributed.compat import install_join_fix
from realorders.engine.backends.distributed.connect import kafka_kwargs, open_redis, probe_kafka
from realorders.engine.backends.distributed.deliveries import RedisDeliveries
from realorders.engine.backends.distributed.dlq import read_dead_letters
from realorders.engine.backends.distributed.inventory import RedisInventory
from realorders.engine.backends.distributed.liveness import BrokerWatch, EngineRegistry
from realorders.engine.backends.distributed.projection import OFFSETS_TIMEOUT_MS, EventsTopic
from realorders.engine.backends.distributed.read import RedisEventLog, RedisReadModel
from realorders.engine.backends.distributed.records import encode_batch
from realorders.engine.backends.distributed.tail import TopicTail
from realorders.engine.backends.distributed.tokens import RedisTokens
from realorders.engine.backends.distributed.webhooks import RedisWebhooks
from realorders.engine.capabilities import DeadLetter
from realorders.engine.pipeline import InOrderCommits
from realorders.engine.ports import Changes, Command, CommandKind, EngineInfo
from realorders.errors import InputError, RealordersError, ServiceUnavailableError

__all__ = ["KafkaBackend"]

install_join_fix()

log = logging.getLogger("realorders.kafka")

_TXN_TIMEOUT_MS = 10_000  # a killed engine's open transaction blocks readers at most this long
#: Right after a commit the coordinator is still writing its markers, so the next batch's
#: AddOffsetsToTxn gets CONCURRENT_TRANSACTIONS; kafka-python retries that after
#: retry_backoff_ms (100 ms by default, sometimes twice: 200-250 ms stalls, the p99 at
#: 1,000 orders/s). The Java client retries its AddPartitions case after 20 ms; so do we.
#: Measured on this VM, back-to-back transactions of one producer took 31 ms (p50) of
#: which 27 were that retry; two producers taking turns, 9 ms: the engine has two.
_TXN_RETRY_BACKOFF_MS = 20
#: Seconds between the starts of two transactions (so at most 100 a second). Each costs
#: the broker ~8 ms of CPU here whatever it holds; the engine meanwhile gathers what
#: comes into its next batch. Measured at 1,000 orders/s, steady state: 20 ms gave p50
#: 45 ms and 0.42 ms engine CPU per order, none 32-37 ms and 0.47 ms.
_COMMIT_INTERVAL = 0.01
_COMMIT_WAIT = 0.5  # seconds the next read waits at most for the commit in flight
#: A fetch waits for 64 KiB or 5 ms: at 1,000 orders/s a fetch per record arriving (the
#: default, 1 byte) kept the consumer's I/O thread at 19% of a core, 9% with these.
_FETCH_MIN_BYTES = 64 * 1024
_FETCH_MAX_WAIT_MS = 5
_REBALANCE_POLL_MS = 15_000
_LAG_PATIENCE_FIRST = 15.0  # seconds: a fresh cluster may still be electing the coordinator
_LAG_PATIENCE_AFTER_FIRST = 2.0


def _finish_join(consumer: KafkaConsumer) -> None:
    """Let a group (re)join run to its end inside one call.

    kafka-python 3.0.12 drops a join that completes between two polls: the next
    poll starts another join instead of applying the assignment it got (seen
    here as "SyncGroup answered, assignment never applied, member expelled 10 s
    later"). Its coordinator's own ``poll`` returns as soon as the member is in
    the group, so it is given the time a join may need (internals: pinned <4).
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        return
    if getattr(coordinator, "rejoining", False) or getattr(coordinator, "rejoin_needed", False):
        coordinator.poll(timeout_ms=_REBALANCE_POLL_MS)


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: str) -> int:
    """murmur2 of a key, as Kafka's default partitioner: cached, an order's id is hashed
    at each of its steps in a batch (events, holds, projection)."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF)


class KafkaBackend:
    name = "kafka"
    redelivers = True

    def __init__(self, config: Config, *, create: bool = False) -> None:
        self.config = config
        self._p = f"{config.redis_prefix}:"
        self._r: Any = open_redis(config)
        self.generation = 0
        self._owned: set[int] = set()
        self._producer: KafkaProducer | None = None
        self._txn_producers: list[KafkaProducer] = []  # while this runs an engine
        self._writes = 0  # transactions begun, to take the producers in turn
        self._futures: list[Any] = []
        self._commits: InOrderCommits[CommitBatch] | None = None  # while this runs an engine
        # the orders of the last batch handed over: with one batch in flight, the only
        # ones the read model may not show yet (while the commit thread has work)
        self._handed_orders: frozenset[str] = frozenset()
        self._consumer: KafkaConsumer | None = None
        self._lag_patience = _LAG_PATIENCE_FIRST
        self._admin: Any = None
        self._new_partitions: set[int] = set()
        self._last_position = 0
        self._created: dict[str, str] | None = None
        self.registry = EngineRegistry(self._r, self._p)
        self._broker = BrokerWatch(config)
        stored = self._r.hget(f"{self._p}meta", "partitions")
        if stored is None:
            if not create:
                raise RealordersError(
                    f"no realorders store under prefix {config.redis_prefix!r} in Redis "
                    f"(run `realorders --backend kafka init` first)"
                )
            self._created = self._ensure_topics()
            stored = self._r.hget(f"{self._p}meta", "partitions")
        self.partitions = int(stored or 1)
        self.commands = KafkaCommandLog(
            self._r,
            self._p,
            config.commands_topic,
            self.partition_of,
            self._produce,
            self._flush,
        )
        self.orders = RedisReadModel(self._r, self._p)
        self.topic = EventsTopic(
            config,
            self._r,
            self._p,
            self.orders,
            self.commands.submitted,
            self.partition_of,
            self.partitions,
        )
        self.events = RedisEventLog(self._r, self._p, self.topic.scan)
        self.inventory = RedisInventory(self._r, self._p, self.partition_of)
        self.orders.backlog = self.backlog
        self.orders.projected = self.events.projected = self._wait_projected
        self.inventory.committed = self._committed
        self.commands.attach = self.claim_engine
        self.catalogue = RedisCatalogue(
            self._r, self._p, lambda: list(self.orders.get_many(self.orders.open_ids()).values())
        )
        self.tokens = RedisTokens(self._r, self._p)
        self.webhooks = RedisWebhooks(self._r, self._p)
        self.deliveries = RedisDeliveries(self._r, self._p)

    # -- set-up ---------------------------------------------------------------

    def init_store(self) -> list[str]:
        """Create the topics (idempotent); one line per topic, then where the store is."""
        lines = [f"topic {topic}: {what}" for topic, what in self._ensure_topics().items()]
        return [*lines, f"store ready on {self.config.where()}"]

    def probe(self) -> None:
        """kafka-python takes 30 s to call a broker gone; this, one round trip."""
        probe_kafka(self.config)

    def _ensure_topics(self) -> dict[str, str]:
        """Create the topics (idempotent) and record the partition count in Redis."""
        if self._created is not None:  # done when this handle opened a new store
            created, self._created = self._created, None
            return created
        probe_kafka(self.config)
        outcome = admin.ensure_topics(self.config)
        partitions = admin.partition_count(self.config, self.config.commands_topic)
        self._r.hsetnx(f"{self._p}meta", "partitions", partitions)
        return outcome

    def partition_of(self, key: str) -> int:
        """Kafka's default partitioner, so a key lands where any client would put it."""
        return _key_hash(key) % self.partitions

    def owns(self, order_id: str) -> bool:
        return self.partition_of(order_id) in self._owned

    # -- producing --------------------------------------------------------------

    def _producer_for_intake(self) -> KafkaProducer:
        if self._producer is None:
            probe_kafka(self.config)
            self._producer = KafkaProducer(
                **kafka_kwargs(self.config),
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                batch_size=256 * 1024,
            )
        return self._producer

    def _produce(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        producer = self._producer_for_intake()
        self._futures.append(producer.send(topic, key=key, value=value, partition=partition))

    def _flush(self) -> None:
        futures, self._futures = self._futures, []
        if self._producer is None:
            return
        self._producer.flush(timeout=30)
        for future in futures:
            if future.failed():
                raise ServiceUnavailableError(
                    f"Kafka at {self.config.kafka_bootstrap} did not take the commands: "
                    f"{future.exception}"
                )

    # -- engine side ----------------------------------------------------------

    def claim_engine(self) -> None:
        """Join the consumer group; partitions (and their orders) come with rebalances."""
        probe_kafka(self.config)
        kwargs = kafka_kwargs(self.config)
        engine_id = self.registry.register()
        self._broker.start()
        if self._producer is not None:
            self._producer.close()
        self._txn_producers = [
            KafkaProducer(
                **kwargs,
                transactional_id=f"{self.config.redis_prefix}-{engine_id}{suffix}",
                transaction_timeout_ms=_TXN_TIMEOUT_MS,
                retry_backoff_ms=_TXN_RETRY_BACKOFF_MS,
                acks="all",
                linger_ms=2,
                batch_size=512 * 1024,
            )
            for suffix in ("", "-b")
        ]
        for producer in self._txn_producers:
            producer.init_transactions()
        self._producer = self._txn_producers[0]
        self._commits = InOrderCommits(
            self._write,
            depth=1,  # one batch in flight: what _handed_orders assumes
            name="realorders-commit",
            interval=_COMMIT_INTERVAL,
        )
        self._consumer = KafkaConsumer(
            **kwargs,
            group_id=self.config.kafka_group,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=5000,
            fetch_min_bytes=_FETCH_MIN_BYTES,
            fetch_max_wait_ms=_FETCH_MAX_WAIT_MS,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
        )
        self._consumer.subscribe([self.config.commands_topic], listener=_Listener(self))
        self.commands.poll = self._poll
        self.commands.discard = self._commit_dead_letters
        self.orders.owns = self.owns
        self.registry.beat(0, self._owned)
        deadline = time.monotonic() + 10
        while not self._owned and time.monotonic() < deadline:
            self._poll(0)

    def _prime(self, deadline: float) -> None:
        """After a (re)assignment, fetch what the partitions already hold (one buffer's worth).

        The first fetches after joining take a few round trips; without this an
        engine's first reads would come back empty although commands wait.
        """
        consumer = self._consumer
        assert consumer is not None
        assigned = list(consumer.assignment())
        if not assigned:
            return
        ends = consumer.end_offsets(assigned, timeout_ms=OFFSETS_TIMEOUT_MS)
        while time.monotonic() < deadline and self.commands.buffer.size() < 5000:
            if all(consumer.position(tp) >= ends[tp] for tp in assigned):
                return
            self._poll(0)

    def _poll(self, want: int, *, wait: bool = True) -> None:
        """Fetch up to ``want`` more records (0: whatever the broker has ready, up to 5000).

        With an empty buffer it waits up to 50 ms for the first record, unless ``wait``
        is False: a look at what has arrived, which must not hold the batch up.

        While a batch is being committed and fewer than ``want`` records wait, it
        waits for that commit first: the next batch could only go out after it, and
        taking the records then, not now, puts what arrives meanwhile in it too
        (at 1,000 orders/s, steady state: p50 66 -> 45 ms). A full batch goes at
        once: under load the engine still works while the commit runs.
        """
        commits = self._commits
        if wait and commits is not None and commits.in_flight:
            self._fetch(want, 0)
            if self.commands.buffer.size() < (want or 1):
                commits.wait_written(_COMMIT_WAIT)
        self._fetch(want, 50 if wait else 0)

    def _fetch(self, want: int, first_wait_ms: int) -> None:
        consumer = self._consumer
        assert consumer is not None
        buffer = self.commands.buffer
        if not buffer.size() and not self._broker.reachable():
            # a rejoin after a lost broker would block here for the whole outage, silently
            time.sleep(0.05)  # what the fetch would have waited
            return
        limit = want if want > 0 else 5000
        timeout_ms = first_wait_ms if not buffer.size() else 0
        _finish_join(consumer)
        while limit > 0:
            batches = consumer.poll(timeout_ms=timeout_ms, max_records=limit, update_offsets=True)
            if self._new_partitions:
                self._take_over(self._new_partitions)
                self._new_partitions = set()
                self._add(batches)
                self._prime(time.monotonic() + 10)
                return
            got = self._add(batches)
            if not got:
                return
            limit -= got
            timeout_ms = 0

    def _add(self, batches: dict[Any, list[Any]]) -> int:
        """Buffer polled records in partition order; poison ones travel as dead letters."""
        buffer = self.commands.buffer
        got = 0
        for tp, records in batches.items():
            for rec in records:
                got += 1
                try:
                    command = decode_command(rec.value, tp.partition, rec.offset)
                    buffer.add(Entry(command, tp.partition, rec.offset))
                except Poison as exc:
                    buffer.add(Entry(None, tp.partition, rec.offset, rec.key, rec.value, str(exc)))
        return got

    def _revoked(self, partitions: set[int]) -> None:
        # what is in flight commits under this generation, before the partitions go
        self._committed()
        self.commands.buffer.forget(partitions)
        self._owned -= partitions
        self.generation += 1

    def _assigned(self, partitions: set[int]) -> None:
        self._new_partitions |= partitions

    def _take_over(self, partitions: set[int]) -> None:
        """Bring Redis up to what Kafka committed for these partitions, before any command."""
        started = time.monotonic()
        self._committed()
        replayed = self.topic.catch_up(partitions)
        restored = 0
        for p in sorted(partitions):
            restored += self.topic.reconcile(p)
        self._owned |= partitions
        self.generation += 1
        log.info(
            "engine %s now owns partitions %s (replayed %d events, restored %d holds, %.2f s)",
            self.registry.engine_id,
            sorted(self._owned),
            replayed,
            restored,
            time.monotonic() - started,
        )

    def topic_tail(self, *, from_start: bool) -> TopicTail:
        """``watch`` follows the events topic itself (see ``tail.py``)."""
        return self.topic.tail(from_start=from_start)

    def commit(self, changes: Changes) -> None:
        """Hand the batch to the commit thread; returns once the batch before it is written.

        The rules that keep this safe are in docs/architecture.md ("The batch
        pipeline on Kafka"): batches go out in hand-over order, one transaction
        each; a failure stops every later batch; the engine's reads of orders
        or stock still in flight wait for them.
        """
        commits = self._commits
        if commits is None or self._consumer is None:
            raise RealordersError("commit without claim_engine()")
        batch = self._prepare(changes)
        if batch.empty():
            return
        commits.put(batch)  # returns once the batch before is written: only this one is left
        self._handed_orders = frozenset(changes.orders)

    def _prepare(self, changes: Changes) -> CommitBatch:
        """Encode the batch on the engine's thread: a snapshot the commit thread can send."""
        consumer = self._consumer
        assert consumer is not None
        buffer = self.commands.buffer
        buffer.pass_through(changes.position)
        dead, buffer.dead = buffer.dead, []
        offsets = self._offsets_to_commit()
        # each event encoded once: spliced into its order's record, and kept by the projection
        encoded, records = encode_batch(changes.events)
        return CommitBatch(
            position=changes.position,
            settlements=self.inventory.take_settlements(),
            records=records,
            wakes=frozenset(changes.stock_up),
            # this engine has offered the stock to its own partitions' backorders (in the
            # batch, or right after it); a partition it loses first is offered it by the
            # engine that takes it over (Engine._rebalanced)
            wake_partitions=tuple(p for p in range(self.partitions) if p not in self._owned)
            if changes.stock_up
            else (),
            dead=dead,
            offsets=offsets,
            group=consumer.group_metadata() if offsets else None,
            projection=self.topic.prepare(changes, encoded),
        )

    def _write(self, batch: CommitBatch) -> None:
        """On the commit thread: settlements, one Kafka transaction, then the projection."""
        # the two transactional producers in turn (see _TXN_RETRY_BACKOFF_MS); each begins
        # only after the other's commit returned, so transactions still commit in order
        self._writes += 1
        producer = self._txn_producers[self._writes % len(self._txn_producers)]
        self.inventory.settle(batch.settlements)
        try:
            producer.begin_transaction()
            sent: list[tuple[int, Any]] = []
            topic = self.config.events_topic
            for order_id, value, headers in batch.records:
                p = self.partition_of(order_id)
                future = producer.send(
                    topic, key=order_id.encode(), value=value, partition=p, headers=headers
                )
                sent.append((p, future))
            self._send_wakes(producer, batch.wakes, batch.wake_partitions)
            self._send_dead(producer, batch.dead)
            if batch.offsets:
                producer.send_offsets_to_transaction(batch.offsets, batch.group)
            producer.commit_transaction()
        except Exception as exc:
            with contextlib.suppress(Exception):
                producer.abort_transaction()
            raise ServiceUnavailableError(
                f"Kafka at {self.config.kafka_bootstrap} did not commit the batch: {exc}"
            ) from exc
        ends: dict[int, int] = {}
        for p, future in sent:
            ends[p] = max(ends.get(p, 0), future.get(timeout=30).offset + 1)
        self.topic.write(batch.projection, ends)
        if batch.position >= 0:  # -1: dead letters alone, the engine's position stands
            self._last_position = batch.position

    def _committed(self) -> None:
        """Wait until every batch handed over is written (a no-op without an engine)."""
        if self._commits is not None:
            self._commits.sync()

    def _wait_projected(self, order_ids: Iterable[str] | None) -> None:
        """Before a read of these orders (None: of anything), what is in flight about them."""
        commits = self._commits
        if commits is None or not commits.in_flight:
            return
        handed = self._handed_orders
        if order_ids is None or any(i in handed for i in order_ids):
            commits.sync()

    def _offsets_to_commit(self) -> dict[TopicPartition, OffsetAndMetadata]:
        buffer = self.commands.buffer
        consumer = self._consumer
        assert consumer is not None
        done, buffer.done = buffer.done, {}
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for p, processed in done.items():
            tp = TopicPartition(self.config.commands_topic, p)
            offset = processed
            if not buffer.holds(p):  # drained: skip transaction markers too
                with contextlib.suppress(Exception):
                    offset = max(processed, consumer.position(tp))
            offsets[tp] = OffsetAndMetadata(offset, "", -1)
        return offsets

    def _send_wakes(
        self, producer: KafkaProducer, products: frozenset[str], partitions: tuple[int, ...]
    ) -> None:
        if not (products and partitions):
            return
        count = len(products) * len(partitions)
        last = int(self._r.incrby(f"{self._p}seq", count))
        position = last - count
        topic = self.config.commands_topic
        for product in sorted(products):
            for p in partitions:
                position += 1
                value = orjson.dumps(
                    {
                        "kind": CommandKind.WAKE.value,
                        "order_id": None,
                        "body": {"product_id": product},
                        "position": position,
                        "at": time.time(),
                    }
                )
                producer.send(topic, key=product.encode(), value=value, partition=p)

    def _send_dead(self, producer: KafkaProducer, dead: list[Entry]) -> None:
        for entry in dead:
            headers = [
                ("reason", (entry.poison or "").encode()),
                (
                    "source",
                    f"{self.config.commands_topic}:{entry.partition}:{entry.offset}".encode(),
                ),
                ("at", str(time.time()).encode()),
            ]
            log.warning(
                "poison command at %s partition %d offset %d sent to %s: %s",
                self.config.commands_topic,
                entry.partition,
                entry.offset,
                self.config.dlq_topic,
                entry.poison,
            )
            producer.send(self.config.dlq_topic, key=entry.key, value=entry.raw, headers=headers)

    def _commit_dead_letters(self) -> None:
        """Dead letters with no command around them: a transaction of their own."""
        self.commit(Changes(position=-1))

    # -- engine registry and progress ----------------------------------------

    def heartbeat(self, position: int) -> None:
        self._committed()  # offsets committed outside a transaction never pass one in flight
        if position != self._last_position or not self._broker.reachable():
            return
        offsets = self._offsets_to_commit_idle()
        if offsets and self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.commit(offsets)
        self.registry.beat(position, self._owned)

    def _offsets_to_commit_idle(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Drained partitions whose position moved past transaction markers only."""
        consumer = self._consumer
        if consumer is None:
            return {}
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp in consumer.assignment():
            if self.commands.buffer.holds(tp.partition):
                continue
            with contextlib.suppress(Exception):
                offsets[tp] = OffsetAndMetadata(consumer.position(tp), "", -1)
        return offsets

    def engine_running(self) -> bool:
        return self.registry.engine_id is not None or bool(self.registry.engines())

    def engine_count(self) -> int:
        """Engines with a fresh heartbeat (one Redis read; the dashboard shows how many)."""
        return len(self.registry.engines())

    def backlog(self) -> int:
        """Commands in the topic that no engine has committed yet (all partitions)."""
        self._committed()
        try:
            lag = admin.group_lag(
                self.config, self.topic.reader(), self._admin_client(), self._lag_patience
            )
        except KafkaError as exc:
            raise ServiceUnavailableError(
                f"Kafka at {self.config.kafka_bootstrap} did not say how far the engines are "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        # the group coordinator answered once: a later failure is an outage, not an
        # election, and a reader that polls this (the dashboard) should hear it soon
        self._lag_patience = _LAG_PATIENCE_AFTER_FIRST
        return lag

    def _admin_client(self) -> Any:
        if self._admin is None:
            self._admin = admin.admin_client(self.config)
        return self._admin

    def position(self) -> int:
        head = int(self._r.get(f"{self._p}seq") or 0)
        return max(0, head - self.backlog())

    def engine_info(self) -> EngineInfo:
        head = int(self._r.get(f"{self._p}seq") or 0)
        backlog = self.backlog()
        engines = sorted(self.registry.engines(), key=lambda e: e["heartbeat_at"])
        newest = engines[-1] if engines else None
        return EngineInfo(
            pid=None if newest is None else newest["pid"],
            started_at=None if newest is None else newest["started_at"],
            heartbeat_at=None if newest is None else newest["heartbeat_at"],
            position=max(0, head - backlog),
            head=head,
        )

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Redis reads are each atomic; a batch's projection is one script, so no half batch."""
        yield

    def release_engine(self) -> None:
        """Write what was handed over, then leave the group: a member left behind would
        hold its partitions, unpolled."""
        if self._commits is not None:
            commits, self._commits = self._commits, None
            with contextlib.suppress(Exception):  # a failed batch: it stays uncommitted
                commits.close()
        self._handed_orders = frozenset()
        self._broker.stop()
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close(autocommit=False, timeout_ms=5000)
        for producer in self._txn_producers or [self._producer]:
            if producer is not None:
                with contextlib.suppress(Exception):
                    producer.close(timeout=5)
        self._consumer = None
        self._producer = None
        self._txn_producers = []
        self.registry.leave()
        self.commands.poll = None
        self.orders.owns = None
        self._owned = set()

    def close(self) -> None:
        self.release_engine()
        with contextlib.suppress(Exception):
            self.topic.close()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
        self._admin = None
        with contextlib.suppress(Exception):
            self._r.close()

    # -- dead letters -------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        replayed = {int(o) for o in self._r.smembers(f"{self._p}dlq:replayed")}
        return [
            replace(letter, replayed=letter.offset in replayed)
            for letter in read_dead_letters(self.topic.reader(), self.config.dlq_topic)
        ]

    def decode_dead_letter(self, value: bytes | None, offset: int) -> Command:
        try:
            return decode_command(value, 0, offset)
        except Poison as exc:
            raise InputError(f"dead letter {offset}: still not a command: {exc}") from None

    def mark_replayed(self, offset: int) -> bool:
        """Remember a replay; False when that dead letter was replayed already."""
        return bool(self._r.sadd(f"{self._p}dlq:replayed", offset))

    # -- check ----------------------------------------------------------------


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    """kafka-python's rebalance callbacks, run inside ``poll`` (between engine batches)."""

    def __init__(self, backend: KafkaBackend) -> None:
        self.backend = backend

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.backend._revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.backend._assigned({tp.partition for tp in assigned})
