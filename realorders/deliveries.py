"""Webhook deliveries as stored: the outbox record and the rules every store applies to it.

Pure: no I/O and no backend, and light, so the engine's ports can name
:class:`Delivery` without loading the signing code of :mod:`realorders.delivery`
(which makes new ones: ``delivery.new_delivery``). The event log is the source
of truth; a store of deliveries only remembers what each endpoint is owed and
how each attempt went, so that a restarted ``notify`` neither forgets nor repeats.

- A delivery is one event (``order_id``, ``seq``, at ``cursor`` in the event
  log) for one endpoint; ``(endpoint_id, order_id, seq)`` is its identity.
- ``pending`` until settled: ``delivered``, or ``failed`` once the retries
  are spent. ``next_at`` is when a pending one is due, None once settled.
- An order's later event waits for its earlier one per endpoint: only the
  lowest pending ``seq`` of an ``(endpoint_id, order_id)`` is ever due.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from realorders._textio import encodable
from realorders.views import iso

__all__ = [
    "MAX_ERROR",
    "MAX_EXCERPT",
    "Delivery",
    "DeliveryStatus",
    "Recorded",
    "check_new",
    "checked_outcome",
    "error_text",
    "excerpt_text",
]

MAX_ERROR = 500  # a transport error or a reason: one line of a table, with room
MAX_EXCERPT = 200  # the start of the receiver's answer: enough to recognise it, not a copy


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # owed: due at ``next_at``
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # given up (retries spent, or the endpoint is gone)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event owed to one endpoint, and how the last attempt went."""

    endpoint_id: str
    order_id: str
    seq: int
    #: the event's position in the event log: the order deliveries are due in
    cursor: int
    #: the ``webhook-id`` header (``delivery.webhook_id``): the same on every retry
    msg_id: str
    status: DeliveryStatus
    attempts: int
    #: when a pending delivery is due (epoch seconds); None once settled
    next_at: float | None
    created_at: float
    updated_at: float
    last_code: int | None = None
    last_error: str | None = None
    last_latency_ms: float | None = None
    #: the first :data:`MAX_EXCERPT` characters of the receiver's answer
    response_excerpt: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.endpoint_id, self.order_id, self.seq)

    @property
    def settled(self) -> bool:
        return self.status is not DeliveryStatus.PENDING

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable record (snake_case keys, times ISO 8601 UTC)."""
        return {
            "endpoint_id": self.endpoint_id,
            "order_id": self.order_id,
            "seq": self.seq,
            "cursor": self.cursor,
            "msg_id": self.msg_id,
            "status": self.status.value,
            "attempts": self.attempts,
            "next_at": iso(self.next_at),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "last_code": self.last_code,
            "last_error": self.last_error,
            "last_latency_ms": self.last_latency_ms,
            "response_excerpt": self.response_excerpt,
        }


@dataclass(frozen=True, slots=True)
class Recorded:
    """One attempt's outcome, as ``DeliveryStore.record`` takes it: for ``record_many``."""

    endpoint_id: str
    order_id: str
    seq: int
    status: DeliveryStatus
    attempts: int
    next_at: float | None
    last_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    response_excerpt: str | None
    at: float

    def fields(self) -> dict[str, Any]:
        """The keyword arguments of ``DeliveryStore.record`` after the key."""
        return {
            "status": self.status,
            "attempts": self.attempts,
            "next_at": self.next_at,
            "last_code": self.last_code,
            "last_error": self.last_error,
            "last_latency_ms": self.last_latency_ms,
            "response_excerpt": self.response_excerpt,
            "at": self.at,
        }


def check_new(delivery: Delivery) -> Delivery:
    """``delivery`` if it can be enqueued (pending, due at some time); ValueError otherwise.

    Enqueueing is how a delivery starts; every store keeps its due index and
    counts from the status, so a settled record there would be a bug upstream.
    """
    if delivery.status is not DeliveryStatus.PENDING:
        raise ValueError(f"a new delivery must be pending, not {delivery.status.value}")
    if delivery.next_at is None:
        raise ValueError("a new delivery needs next_at (when it is due)")
    return delivery


def checked_outcome(
    status: DeliveryStatus,
    next_at: float | None,
    last_error: str | None,
    response_excerpt: str | None,
) -> tuple[DeliveryStatus, float | None, str | None, str | None]:
    """An attempt's outcome as stored: ``next_at`` None once settled, texts bounded.

    ValueError for a pending outcome without ``next_at``: a retry must say when.
    """
    status = DeliveryStatus(status)
    if status is DeliveryStatus.PENDING:
        if next_at is None:
            raise ValueError("a pending delivery needs next_at (when to try again)")
    else:
        next_at = None
    return status, next_at, error_text(last_error), excerpt_text(response_excerpt)


def error_text(text: str | None) -> str | None:
    """At most :data:`MAX_ERROR` characters (an ellipsis marks a cut), storable as UTF-8."""
    if text is None:
        return None
    text = _storable(text)
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def excerpt_text(text: str | None) -> str | None:
    """The first :data:`MAX_EXCERPT` characters, storable as UTF-8."""
    return None if text is None else _storable(text[:MAX_EXCERPT])


def _storable(text: str) -> str:
    """Lone surrogates (a receiver's bytes decoded with ``surrogateescape``) become U+FFFD:
    SQLite and Redis store UTF-8, and an excerpt is for reading, not a copy."""
    if text.isascii() or encodable(text):
        return text
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
