"""``watch`` in the distributed mode: the events topic itself, followed live.

The events topic is the source of truth; following it shows an event as soon as
its transaction commits, before (and independently of) the Redis projection.
Kafka orders records per partition, that is per order, not across the topic:
the cursor this tail hands out counts the events it has delivered since it
opened. It is strictly increasing and gap-free within one ``watch``, and means
nothing to another one (the embedded store's cursor is global and resumable).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from kafka import TopicPartition

from realorders.domain import Event
from realorders.engine.backends.distributed.records import decode_record

__all__ = ["TopicTail"]

_OFFSETS_TIMEOUT_MS = 15_000
_CATCH_UP_SECONDS = 1.0


class TopicTail:
    """A read-committed consumer assigned every partition of the events topic.

    It starts at the last stable offset of each partition (or at the beginning),
    fixed when it opens: a caller that reads order states after opening it
    misses no event committed after those states.
    """

    def __init__(self, consumer: Any, topic: str, partitions: int, *, from_start: bool) -> None:
        self._consumer = consumer
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        self._tps = tps
        if from_start:
            starts = consumer.beginning_offsets(tps, timeout_ms=_OFFSETS_TIMEOUT_MS)
        else:  # eager, not seek_to_end(): the start must be fixed before states are read
            starts = consumer.end_offsets(tps, timeout_ms=_OFFSETS_TIMEOUT_MS)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        self._delivered = 0
        self._pending: deque[Event] = deque()

    def head(self) -> int:
        return 0

    def tail(self, after: int, limit: int) -> list[tuple[int, Event]]:
        """The next events committed to the topic (``after`` is implied: this tail's own count).

        A short page means caught up: it keeps fetching (up to a second) while any
        partition is behind its high watermark, so a last read after the engine went
        quiet drains everything, as on the embedded store.
        """
        deadline = time.monotonic() + _CATCH_UP_SECONDS
        wait_ms = 0
        while len(self._pending) < limit:
            polled = self._consumer.poll(timeout_ms=wait_ms, max_records=max(limit, 500))
            for records in polled.values():
                for record in records:
                    self._pending.extend(decode_record(record.value))
            if not self._behind() or time.monotonic() >= deadline:
                break
            wait_ms = 50
        page: list[tuple[int, Event]] = []
        while self._pending and len(page) < limit:
            self._delivered += 1
            page.append((self._delivered, self._pending.popleft()))
        return page

    def _behind(self) -> bool:
        for tp in self._tps:
            highwater = self._consumer.highwater(tp)  # from the last fetch: no round trip
            if highwater is None or self._consumer.position(tp) < highwater:
                return True
        return False

    def close(self) -> None:
        self._consumer.close()
