"""The events topic and its copy in Redis: projection, take-over, reading it back.

Kafka's events topic is the source of truth; Redis holds a projection of it
(the read model, history, holds made definitive) written by one Lua call per
batch after the batch's transaction commits. Whoever takes a partition over
first brings that projection up to what Kafka committed (``catch_up``) and
puts provisional holds back in line (``reconcile``); ``check`` and ``watch``
read the topic itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from realorders.config import Config
from realorders.domain import Event, Order, apply
from realorders.engine.backends.distributed import lua
from realorders.engine.backends.distributed.connect import kafka_kwargs, probe_kafka
from realorders.engine.backends.distributed.inventory import flat_lines
from realorders.engine.backends.distributed.read import RedisReadModel, encode_state
from realorders.engine.backends.distributed.records import decode_record, encode_event
from realorders.engine.backends.distributed.tail import TopicTail
from realorders.engine.ports import Changes

__all__ = ["EventsTopic", "Projection"]

_HOLD_TARGET = {"reserved": "R", "packed": "R", "shipped": "C", "delivered": "C"}
#: kafka-python's offset lookups wait forever by default (seen: a ListOffsets answer
#: lost on a broker that had just created the topic); bounded, they fail and retry
OFFSETS_TIMEOUT_MS = 10_000  # longer than the session timeout a join may wait out
_REPLAY_ORDERS = 2000  # orders per projection call while catching up


@dataclass(frozen=True, slots=True)
class Projection:
    """A batch as :data:`~realorders.engine.backends.distributed.lua.PROJECT` takes it."""

    orders: list[list[Any]]  # [partition, id, status, version, arrival, customer, …, lines]
    events: list[list[Any]]  # [order_id, seq]
    rows: list[bytes]  # each order's row, in ``orders``' order
    encoded: list[bytes]  # each event, in ``events``' order


class EventsTopic:
    """Reads ``PREFIX.events`` (read_committed) and keeps Redis's projection of it."""

    def __init__(
        self,
        config: Config,
        r: Any,
        prefix: str,
        orders: RedisReadModel,
        submitted: Callable[[str], tuple[Order, float] | None],
        partition_of: Callable[[str], int],
        partitions: int,
    ) -> None:
        self.config = config
        self._r = r
        self._p = prefix
        self._orders = orders
        self._submitted = submitted
        self._partition_of = partition_of
        self._partitions = partitions
        self._reader: KafkaConsumer | None = None
        self._project = r.register_script(lua.PROJECT)
        self._reconcile = r.register_script(lua.RECONCILE)

    def reader(self) -> KafkaConsumer:
        """This handle's read_committed consumer (no group): events, dead letters, lag."""
        if self._reader is None:
            # a wrong password or an untrusted certificate: one line now, not kafka-python's
            # 30 s "Unable to bootstrap" (backlog, check and replay all start here)
            probe_kafka(self.config)
            self._reader = KafkaConsumer(
                **kafka_kwargs(self.config),
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def tail(self, *, from_start: bool) -> TopicTail:
        """The events topic followed live (``watch``): its own consumer, closed by the caller."""
        probe_kafka(self.config)  # an unreachable broker is one clear line, not a client error
        consumer = KafkaConsumer(
            **kafka_kwargs(self.config),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            return TopicTail(
                consumer, self.config.events_topic, self._partitions, from_start=from_start
            )
        except Exception:
            consumer.close()
            raise

    def read(self, starts: dict[int, int]) -> Iterator[tuple[int, int, bytes]]:
        """(partition, offset, value) of committed event records from ``starts`` to the end."""
        reader = self.reader()
        tps = [TopicPartition(self.config.events_topic, p) for p in starts]
        reader.assign(tps)
        ends = reader.end_offsets(tps, timeout_ms=OFFSETS_TIMEOUT_MS)
        for tp in tps:
            reader.seek(tp, starts[tp.partition])
        remaining = {tp for tp in tps if ends[tp] > starts[tp.partition]}
        while remaining:
            for tp, records in reader.poll(timeout_ms=500, max_records=5000).items():
                for rec in records:
                    yield tp.partition, rec.offset, rec.value
            remaining = {tp for tp in remaining if reader.position(tp) < ends[tp]}

    # -- the projection -------------------------------------------------------

    def project(
        self, changes: Changes, ends: dict[int, int], encoded: list[bytes] | None = None
    ) -> None:
        """One committed batch into Redis; ``encoded`` are its events as already sent."""
        self.write(self.prepare(changes, encoded), ends)

    def prepare(self, changes: Changes, encoded: list[bytes] | None = None) -> Projection:
        """A batch's projection, encoded now: the engine may change these orders right after."""
        if encoded is None:
            encoded = [encode_event(e) for e in changes.events]
        partition_of = self._partition_of
        states = changes.orders.values()
        return Projection(
            orders=[
                [
                    partition_of(s.id),
                    s.id,
                    s.status.value,
                    s.version,
                    s.arrival,
                    s.customer_id,
                    s.created_at,
                    s.updated_at,
                    s.terminal_at,
                    flat_lines(s.lines()),
                ]
                for s in states
            ],
            events=[[e.order_id, e.seq] for e in changes.events],
            rows=[encode_state(s) for s in states],
            encoded=encoded,
        )

    def write(self, projection: Projection, ends: dict[int, int]) -> None:
        """One Lua call; ``ends``: each partition's next events offset once this batch is in."""
        if not (projection.orders or ends):
            return
        payload = {
            "orders": projection.orders,
            "events": projection.events,
            "proj": {str(p): offset for p, offset in ends.items()},
            "now": time.time(),
        }
        self._project(args=[self._p, orjson.dumps(payload), *projection.rows, *projection.encoded])

    def catch_up(self, partitions: set[int]) -> int:
        """Project what Kafka committed past Redis's offsets for these partitions."""
        stored = self._r.hmget(f"{self._p}proj", [str(p) for p in sorted(partitions)])
        starts = {p: int(v or 0) for p, v in zip(sorted(partitions), stored, strict=True)}
        replayed = 0
        pending: dict[str, list[Event]] = {}
        ends: dict[int, int] = {}
        for partition, offset, value in self.read(starts):
            ends[partition] = offset + 1
            for event in decode_record(value):
                pending.setdefault(event.order_id, []).append(event)
            if len(pending) >= _REPLAY_ORDERS:
                replayed += self._replay(pending, ends)
                pending, ends = {}, {}
        if pending or ends:
            replayed += self._replay(pending, ends)
        return replayed

    def _replay(self, by_order: dict[str, list[Event]], ends: dict[int, int]) -> int:
        states = self._orders.get_many(list(by_order))
        changes = Changes(position=0)
        for order_id, events in by_order.items():
            state = states.get(order_id)
            changed = False
            for event in events:
                if state is None or event.seq > state.version:
                    state = apply(state, event)
                    changes.events.append(event)
                    changed = True
            if changed and state is not None:
                changes.orders[order_id] = state
        self.project(changes, ends)
        return len(changes.events)

    def reconcile(self, partition: int) -> int:
        """Holds an earlier owner changed but never committed, back in line with Kafka."""
        ids = [i.decode() for i in self._r.smembers(f"{self._p}prov:{partition}")]
        if not ids:
            return 0
        states = self._orders.get_many(ids)
        items: list[Any] = []
        for order_id in ids:
            state = states.get(order_id)
            if state is None:
                raw = self._submitted(order_id)
                lines = [] if raw is None else list(raw[0].items)
                items.append([order_id, "F", flat_lines(lines)])
            else:
                items.append(
                    [order_id, _HOLD_TARGET.get(state.status.value, "F"), flat_lines(state.lines())]
                )
        return int(self._reconcile(args=[self._p, partition, orjson.dumps(items)]))

    # -- check ------------------------------------------------------------------

    def settle_transactions(self, timeout: float = 15.0) -> None:
        """Wait until transactions open now are decided, so what Redis shows is readable.

        A batch is projected into Redis right after its commit, a moment before
        the broker writes the commit markers that make it visible to
        read_committed readers; ``check`` waits for the markers instead of
        reporting that gap as a problem.
        """
        tps = [TopicPartition(self.config.events_topic, p) for p in range(self._partitions)]
        reader = self.reader()  # first: it probes the broker (one clear line if refused)
        raw = KafkaConsumer(**kafka_kwargs(self.config), isolation_level="read_uncommitted")
        try:
            high = raw.end_offsets(tps, timeout_ms=OFFSETS_TIMEOUT_MS)
        finally:
            raw.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stable = reader.end_offsets(tps, timeout_ms=OFFSETS_TIMEOUT_MS)
            if all(stable[tp] >= high[tp] for tp in tps):
                return
            time.sleep(0.05)

    def scan(self) -> Iterator[list[Event]]:
        """Every order's events from the events topic itself (the source of truth)."""
        self.settle_transactions()
        by_order: dict[str, list[Event]] = {}
        starts = dict.fromkeys(range(self._partitions), 0)
        for _partition, _offset, value in self.read(starts):
            for event in decode_record(value):
                by_order.setdefault(event.order_id, []).append(event)
        for order_id in sorted(by_order):
            yield by_order[order_id]
