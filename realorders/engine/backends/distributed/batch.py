"""An engine batch as the commit thread takes it.

The engine's thread encodes everything a batch commits (:class:`CommitBatch`:
nothing in it refers to objects the engine changes afterwards); the commit
thread sends it: settlements to Redis, one Kafka transaction, the projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka.structs import OffsetAndMetadata, TopicPartition

from realorders.engine.backends.distributed.commands import Entry
from realorders.engine.backends.distributed.projection import Projection
from realorders.engine.backends.distributed.records import EventRecord

__all__ = ["CommitBatch"]


@dataclass(frozen=True, slots=True)
class CommitBatch:
    position: int  # the engine's position after it; -1: dead letters alone
    settlements: list[list[Any]]  # releases and consumptions (RedisInventory.settle)
    records: list[EventRecord]  # (order id, value, headers), one per order and batch
    wakes: frozenset[str]  # products whose stock came back
    wake_partitions: tuple[int, ...]  # where to announce them: the partitions others own
    dead: list[Entry]  # poison commands for the dead-letter topic
    offsets: dict[TopicPartition, OffsetAndMetadata]  # consumed, committed with the events
    group: Any  # the consumer's group metadata when handed over (fences a deposed engine)
    projection: Projection

    def empty(self) -> bool:
        return not (
            self.settlements or self.records or self.dead or self.offsets or self.wakes
        ) and not (self.projection.orders or self.projection.events)
