"""What only some deployments can do, as small Protocols a backend may also offer.

Every backend implements :class:`~realorders.engine.ports.Backend`. Beyond it,
the distributed mode has an events topic to tail, a dead-letter topic, a
registry of engines and services to probe; the embedded mode has none of them.
A caller asks for a capability by type (``isinstance``, which the type checker
follows), so a missing one is a one-line ``UsageError`` ("needs --backend
kafka"), never an ``AttributeError`` found in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from realorders.domain import Event
from realorders.engine.ports import Command

__all__ = [
    "DeadLetter",
    "DeadLetters",
    "EngineRegistry",
    "EventTail",
    "ServiceProbe",
    "TopicTail",
]


class EventTail(Protocol):
    """A cursor over committed events; ``close`` frees what it holds (a consumer)."""

    def tail(self, after: int, limit: int) -> list[tuple[int, Event]]: ...

    def head(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class TopicTail(Protocol):
    """The events topic itself, read from its end or its beginning (``watch``)."""

    def topic_tail(self, *, from_start: bool) -> EventTail: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record an engine could not read as a command, set aside with why and whence."""

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


@runtime_checkable
class DeadLetters(Protocol):
    """Poison commands kept aside (the embedded mode refuses bad input at intake instead)."""

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first, with whether it was replayed."""
        ...

    def decode_dead_letter(self, value: bytes | None, offset: int) -> Command:
        """The command a dead letter (or its correction) holds; InputError if none."""
        ...

    def mark_replayed(self, offset: int) -> bool:
        """Remember a replay; False when that dead letter was replayed already."""
        ...


@runtime_checkable
class EngineRegistry(Protocol):
    """Several engines may share the store: how many have a fresh heartbeat."""

    def engine_count(self) -> int: ...


@runtime_checkable
class ServiceProbe(Protocol):
    """Services behind the store that a client library would take long to call lost."""

    def probe(self) -> None:
        """One round trip to each service; ServiceUnavailableError names the one that failed."""
        ...
