"""The command log of the distributed mode: a Kafka topic keyed by order id.

Intake first claims ids in Redis (one Lua call per batch: idempotency ledger
and a dense position per command, so ``submit`` and ``import`` behave as in
the embedded mode), then produces. Positions order what one appender writes;
the engine does not rely on them across partitions: it consumes each
partition in offset order and commits offsets, not positions.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from realorders.domain import Order
from realorders.engine.backends.distributed import lua
from realorders.engine.ports import Command, CommandKind, IntakeOutcome, IntakeResult

__all__ = [
    "CommandBuffer",
    "Entry",
    "KafkaCommandLog",
    "Poison",
    "decode_command",
    "encode_command",
]

_KINDS = {k.value: k for k in CommandKind}
_QUEUED_PAGE = 500


class Poison(ValueError):
    """A record on the commands topic that is not a command this engine understands."""


def encode_command(
    kind: CommandKind, order_id: str | None, body: dict[str, Any], position: int, at: float
) -> bytes:
    return orjson.dumps(
        {"kind": kind.value, "order_id": order_id, "body": body, "position": position, "at": at}
    )


def decode_command(raw: bytes | None, partition: int, offset: int) -> Command:
    """Parse a record; raise :class:`Poison` with the reason a person can act on."""
    if raw is None:
        raise Poison("empty record (no value)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Poison(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Poison("not a JSON object")
    kind = _KINDS.get(data.get("kind"))  # type: ignore[arg-type]
    if kind is None:
        raise Poison(f"unknown command kind {data.get('kind')!r}")
    body = data.get("body")
    order_id = data.get("order_id")
    if not isinstance(body, dict):
        raise Poison("no body object")
    if kind in (CommandKind.SUBMIT, CommandKind.CANCEL) and not isinstance(order_id, str):
        raise Poison(f"{kind.value} without an order_id")
    if kind is CommandKind.SUBMIT:
        try:
            Order.from_dict(body)
        except (KeyError, TypeError) as exc:
            raise Poison(f"submit body is not an order ({exc})") from None
    elif kind is not CommandKind.CANCEL and not _inventory_body_ok(kind, body):
        raise Poison(f"{kind.value} needs product_id and quantity")
    position, at = data.get("position"), data.get("at")
    return Command(
        position=int(position) if isinstance(position, int) else 0,
        kind=kind,
        order_id=order_id,
        body=body,
        at=float(at) if isinstance(at, int | float) else time.time(),
        ref=f"{partition}:{offset}",
    )


def _inventory_body_ok(kind: CommandKind, body: dict[str, Any]) -> bool:
    if not isinstance(body.get("product_id"), str):
        return False
    return kind is CommandKind.WAKE or isinstance(body.get("quantity"), int)


@dataclass(slots=True)
class Entry:
    """One polled record: a command, or (``poison`` set) a record bound for the DLQ."""

    command: Command | None
    partition: int
    offset: int
    key: bytes | None = None
    raw: bytes | None = None
    poison: str | None = None

    @property
    def position(self) -> int:
        return -1 if self.command is None else self.command.position


def _is_cancel(entry: Entry) -> bool:
    return entry.command is not None and entry.command.kind is CommandKind.CANCEL


class CommandBuffer:
    """Records polled but not yet processed, per partition, handed out oldest position first.

    ``take`` returns a merge of the partitions' heads: each partition stays in
    offset order (per-order ordering), and commands from several appenders
    interleave by position. ``pass_through(position)`` marks everything handed
    out up to that command as processed; the rest goes back in front. Poison
    records travel in the same order and are passed (to the dead-letter list)
    with the commands around them, so an offset is never committed past a
    command the engine has not processed.
    """

    def __init__(self) -> None:
        self.heads: dict[int, deque[Entry]] = {}
        self.delivered: list[Entry] = []
        self.done: dict[int, int] = {}  # partition -> next offset to commit
        self.dead: list[Entry] = []
        self.cancel_count = 0  # cancels held: most batches have none and skip the scan

    def add(self, entry: Entry) -> None:
        self.heads.setdefault(entry.partition, deque()).append(entry)
        if _is_cancel(entry):
            self.cancel_count += 1

    def pass_through(self, position: int | None) -> None:
        """Mark delivered entries up to the command at ``position`` (None: all) processed."""
        delivered = self.delivered
        if position is None:
            upto = len(delivered)
        else:
            index = next(
                (i for i, e in enumerate(delivered) if e.command and e.position == position), None
            )
            upto = 0 if index is None else index + 1
            while upto < len(delivered) and delivered[upto].command is None:
                upto += 1  # poison right after the last processed command goes too
        for entry in delivered[:upto]:
            self.done[entry.partition] = entry.offset + 1
            if entry.command is None:
                self.dead.append(entry)
            elif entry.command.kind is CommandKind.CANCEL:
                self.cancel_count -= 1
        for entry in reversed(delivered[upto:]):
            self.heads.setdefault(entry.partition, deque()).appendleft(entry)
        self.delivered = []

    def take(self, limit: int) -> list[Command]:
        merged: list[tuple[int, int, int]] = [
            (q[0].position, q[0].offset, p) for p, q in self.heads.items() if q
        ]
        heapq.heapify(merged)
        out: list[Entry] = []
        commands: list[Command] = []
        while merged and len(commands) < limit:
            _, _, partition = heapq.heappop(merged)
            queue = self.heads[partition]
            entry = queue.popleft()
            out.append(entry)
            if entry.command is not None:
                commands.append(entry.command)
            if queue:
                heapq.heappush(merged, (queue[0].position, queue[0].offset, partition))
        self.delivered = out
        return commands

    def size(self) -> int:
        return sum(len(q) for q in self.heads.values())

    def holds(self, partition: int) -> bool:
        return bool(self.heads.get(partition)) or any(
            e.partition == partition for e in self.delivered
        )

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions taken away by a rebalance: their unprocessed records go to the new owner."""
        gone = set(partitions)
        for p in gone:
            self.heads.pop(p, None)
            self.done.pop(p, None)
        self.delivered = [e for e in self.delivered if e.partition not in gone]
        self.dead = [e for e in self.dead if e.partition not in gone]
        held = (e for q in self.heads.values() for e in q)
        self.cancel_count = sum(map(_is_cancel, (*self.delivered, *held)))

    def cancels(self, order_ids: set[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        if not self.cancel_count:
            return found
        for entries in (self.delivered, *self.heads.values()):
            for e in entries:
                c = e.command
                if c is not None and c.kind is CommandKind.CANCEL and c.order_id in order_ids:
                    found.setdefault(c.order_id, c.body.get("reason"))
        return found


class KafkaCommandLog:
    """``CommandLog`` on Kafka + Redis.

    ``produce(topic, partition, key, value)`` is the backend's producer (lazy:
    readers never open one); ``consumer()`` its engine-side consumer.
    """

    def __init__(
        self,
        r: redis.Redis,
        prefix: str,
        topic: str,
        partition_of: Callable[[str], int],
        produce: Callable[[str, int, bytes, bytes], None],
        flush: Callable[[], None],
    ) -> None:
        self._r: Any = r  # redis-py types replies as bytes | str | Awaitable: checked here instead
        self._p = prefix
        self._topic = topic
        self._partition_of = partition_of
        self._produce = produce
        self._flush = flush
        self._claim = r.register_script(lua.CLAIM)
        self._unclaim = r.register_script(lua.UNCLAIM)
        self.buffer = CommandBuffer()
        #: set when an engine claims the log: poll(want, wait=True) fetches more records
        self.poll: Callable[..., None] | None = None
        self.discard: Callable[[], None] | None = None  # commits dead letters on their own
        self.attach: Callable[[], None] | None = None

    # -- intake ---------------------------------------------------------------

    def append_orders(self, orders: Sequence[Order]) -> list[IntakeResult]:
        if not orders:
            return []
        now = time.time()
        bodies = [orjson.dumps(o.to_dict()) for o in orders]
        claims = orjson.dumps([[o.id, o.digest().hex()] for o in orders])
        answers = self._claim(args=[self._p, now, claims, *bodies])
        results: list[IntakeResult] = []
        accepted: list[tuple[Order, int, float]] = []
        duplicates: list[str] = []
        for order, answer in zip(orders, answers, strict=True):
            tag = answer[0]
            if tag == b"a":
                accepted.append((order, int(answer[1]), now))
                results.append(IntakeResult(order.id, IntakeOutcome.ACCEPTED, int(answer[1])))
            else:
                outcome = IntakeOutcome.DUPLICATE if tag == b"d" else IntakeOutcome.CONFLICT
                results.append(IntakeResult(order.id, outcome))
                if tag == b"d":
                    duplicates.append(order.id)
        resent = self._unsent(duplicates)
        try:
            for order, position, at in accepted + resent:
                value = encode_command(CommandKind.SUBMIT, order.id, order.to_dict(), position, at)
                self._produce(self._topic, self._partition_of(order.id), order.id.encode(), value)
            self._flush()
        except Exception:
            # not in Kafka: give the ids back so that a retry is accepted, not a "duplicate"
            self._unclaim(args=[self._p, orjson.dumps([o.id for o, _, _ in accepted])])
            raise
        sent = [o.id for o, _, _ in accepted + resent]
        for start in range(0, len(sent), 1000):
            self._r.hdel(f"{self._p}unsent", *sent[start : start + 1000])
        return results

    def append_from_source(
        self, orders: Sequence[Order], source: str, offsets: Mapping[str, int]
    ) -> list[IntakeResult]:
        # Marked first: an id marked but never appended is harmless, the reverse would
        # publish an order back to where it came from. Offsets after the flush: until then
        # a restarted reader reads the page again, and the claims answer "duplicate"
        # (produced again if the flush never came).
        for start in range(0, len(orders), 1000):
            chunk = orders[start : start + 1000]
            self._r.hset(f"{self._p}sourced", mapping={o.id: source for o in chunk})
        results = self.append_orders(orders)
        if offsets:
            self._r.hset(f"{self._p}source:{source}", mapping=dict(offsets))
        return results

    def taken_from_source(self, order_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(order_ids))
        if not ids:
            return set()
        found = self._r.hmget(f"{self._p}sourced", ids)
        return {oid for oid, mark in zip(ids, found, strict=True) if mark is not None}

    def source_offsets(self, source: str) -> dict[str, int]:
        stored = self._r.hgetall(f"{self._p}source:{source}")
        return {part.decode(): int(offset) for part, offset in stored.items()}

    def _unsent(self, order_ids: list[str]) -> list[tuple[Order, int, float]]:
        """Claimed orders an appender killed before its Kafka flush left behind.

        A claim and its produce are two steps; ``unsent`` marks the gap until the
        flush is confirmed. A retry of such an order is a duplicate in Redis but
        was never in Kafka: it is produced again now, with its claimed position.
        (If the first appender is merely slow, the engine sees the same submit
        twice and applies it once.)
        """
        if not order_ids:
            return []
        marked = self._r.hmget(f"{self._p}unsent", order_ids)
        missing = [oid for oid, mark in zip(order_ids, marked, strict=True) if mark is not None]
        if not missing:
            return []
        found: list[tuple[Order, int, float]] = []
        for raw in self._r.hmget(f"{self._p}sub", missing):
            if raw is not None:  # None: projected by an engine, so it was in Kafka after all
                position, at, body = orjson.loads(raw)
                found.append((Order.from_dict(body), int(position), float(at)))
        return found

    def digests(self, order_ids: Sequence[str]) -> dict[str, bytes]:
        ids = list(dict.fromkeys(order_ids))
        if not ids:
            return {}
        found = self._r.hmget(f"{self._p}digest", ids)
        return {oid: bytes.fromhex(d.decode()) for oid, d in zip(ids, found, strict=True) if d}

    def append(self, kind: CommandKind, order_id: str | None, body: dict[str, Any]) -> int:
        position = int(self._r.incr(f"{self._p}seq"))
        key = order_id if order_id is not None else str(body.get("product_id", ""))
        value = encode_command(kind, order_id, body, position, time.time())
        self._produce(self._topic, self._partition_of(key), key.encode(), value)
        self._flush()
        return position

    def submitted(self, order_id: str) -> tuple[Order, float] | None:
        raw = self._r.hget(f"{self._p}sub", order_id)
        if raw is None:
            return None
        _position, at, body = orjson.loads(raw)
        return Order.from_dict(body), float(at)

    def queued(
        self,
        after: int,
        limit: int,
        customer_id: str | None = None,
        *,
        oldest_first: bool = False,
        before: int | None = None,
    ) -> list[tuple[Order, int, float]]:
        """Submissions no engine has projected yet (``after`` is implied by the projection).

        Pages are keyset (beyond the last position seen), not offsets: submissions
        projected or appended meanwhile neither shift a page nor repeat an entry.
        """
        key = f"{self._p}queued"
        found: list[tuple[Order, int, float]] = []
        low, high = f"({after}", "+inf" if before is None else f"({before}"
        while len(found) < limit:
            page = (
                self._r.zrangebyscore(key, low, high, start=0, num=_QUEUED_PAGE, withscores=True)
                if oldest_first
                else self._r.zrevrangebyscore(
                    key, high, low, start=0, num=_QUEUED_PAGE, withscores=True
                )
            )
            if not page:
                break
            for raw in self._r.hmget(f"{self._p}sub", [m for m, _ in page]):
                if raw is None:
                    continue
                position, at, body = orjson.loads(raw)
                order = Order.from_dict(body)
                if customer_id is None or order.customer_id == customer_id:
                    found.append((order, int(position), float(at)))
            if len(page) < _QUEUED_PAGE:
                break
            edge = f"({int(page[-1][1])}"
            if oldest_first:
                low = edge
            else:
                high = edge
        return found[:limit]

    # -- engine side ----------------------------------------------------------

    def cancel_requests(self, order_ids: Sequence[str]) -> dict[str, str | None]:
        """Cancels this engine has received so far (the log of its own partitions)."""
        if not order_ids:
            return {}
        if self.poll is None and self.attach is not None:
            self.attach()
        if self.poll is not None:
            self.poll(0, wait=False)  # what has arrived already: a cancel must not wait
        return self.buffer.cancels(set(order_ids))

    def read(self, after: int, limit: int) -> list[Command]:
        buffer = self.buffer
        if self.poll is None and self.attach is not None:
            self.attach()  # reading the log is what an engine does: join the group
        buffer.pass_through(after)
        if self.poll is not None and buffer.size() < limit:
            self.poll(limit - buffer.size())
        commands = buffer.take(limit)
        if not commands and buffer.delivered and self.discard is not None:
            buffer.pass_through(None)  # only poison: nothing for the engine to commit
            self.discard()
        return commands
