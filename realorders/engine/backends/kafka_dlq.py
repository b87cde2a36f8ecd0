"""The dead-letter topic: poison commands an engine set aside, for a person to look at.

An engine sends a record it cannot parse as a command to ``PREFIX.dlq`` in
the same transaction that commits its offset (so it is neither lost nor
processed), with headers saying why and where it came from. Replaying goes
through the normal intake (see :meth:`realorders.Client.replay_dead_letter`):
a replayed submission is validated and claimed like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

__all__ = ["DeadLetter", "read_dead_letters"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    offset: int
    reason: str
    source: str  # topic:partition:offset of the original record
    at: float | None
    key: bytes | None
    value: bytes | None
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "reason": self.reason,
            "source": self.source,
            "at": self.at,
            "key": None if self.key is None else self.key.decode(errors="replace"),
            "value": None if self.value is None else self.value.decode(errors="replace"),
            "replayed": self.replayed,
        }


def read_dead_letters(reader: KafkaConsumer, topic: str) -> list[DeadLetter]:
    """Every record of the (single-partition) dead-letter topic, oldest first."""
    tp = TopicPartition(topic, 0)
    reader.assign([tp])
    end = reader.end_offsets([tp], timeout_ms=15_000)[tp]
    reader.seek_to_beginning(tp)
    found: list[DeadLetter] = []
    while reader.position(tp) < end:
        for records in reader.poll(timeout_ms=500, max_records=1000).values():
            for rec in records:
                headers = {k: v.decode(errors="replace") for k, v in rec.headers or []}
                at = headers.get("at")
                found.append(
                    DeadLetter(
                        offset=rec.offset,
                        reason=headers.get("reason", "?"),
                        source=headers.get("source", "?"),
                        at=float(at) if at else None,
                        key=rec.key,
                        value=rec.value,
                    )
                )
    return found
