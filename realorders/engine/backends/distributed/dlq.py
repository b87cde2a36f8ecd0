"""The dead-letter topic: poison commands an engine set aside, for a person to look at.

An engine sends a record it cannot parse as a command to ``PREFIX.dlq`` in
the same transaction that commits its offset (so it is neither lost nor
processed), with headers saying why and where it came from. Replaying goes
through the normal intake (see :meth:`realorders.Client.replay_dead_letter`):
a replayed submission is validated and claimed like any other.
"""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from realorders.engine.capabilities import DeadLetter

__all__ = ["read_dead_letters"]


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
