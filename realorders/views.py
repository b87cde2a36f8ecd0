"""Orders as every front shows them: processed or still queued, as records.

The CLI, the dashboard and the HTTP server render these; none of them decides
how a queued submission looks next to a processed order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from realorders.domain import Event, Order, OrderState, Status

__all__ = [
    "OrderView",
    "event_dict",
    "iso",
    "order_dict",
    "public_event",
    "public_order",
    "public_record",
    "queued_order_dict",
]


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as ``show`` and ``list`` present it: its state (or queued submission).

    ``events`` is its timeline (empty in a listing); ``position`` the command
    position of a queued submission.
    """

    state: OrderState | None
    submitted: Order | None
    events: list[Event]
    submitted_at: float | None = None
    position: int | None = None

    @property
    def queued(self) -> bool:
        """Accepted by intake, not yet processed by the engine."""
        return self.state is None

    @property
    def status(self) -> Status:
        return Status.PENDING if self.state is None else self.state.status

    @property
    def id(self) -> str:
        return self._either().id

    @property
    def customer_id(self) -> str:
        return self._either().customer_id

    @property
    def since(self) -> float:
        """When the order entered its current state (a queued one: when it was submitted)."""
        if self.state is not None:
            return self.state.updated_at
        assert self.submitted_at is not None
        return self.submitted_at

    @property
    def arrival(self) -> int:
        """Its place in the command log: newer orders have higher numbers."""
        if self.state is not None:
            return self.state.arrival
        return self.position or 0

    def _either(self) -> OrderState | Order:
        if self.state is not None:
            return self.state
        assert self.submitted is not None
        return self.submitted

    def record(self) -> dict[str, Any]:
        """The order's machine-readable record, as ``list`` prints it (no events)."""
        if self.state is not None:
            return order_dict(self.state)
        assert self.submitted is not None
        assert self.submitted_at is not None
        return queued_order_dict(self.submitted, self.submitted_at)

    def to_dict(self) -> dict[str, Any]:
        """The record with its timeline, as ``show --json`` prints it."""
        return {**self.record(), "events": [event_dict(e) for e in self.events]}


def order_dict(state: OrderState) -> dict[str, Any]:
    """An order's machine-readable record (times as epoch seconds; the CLI makes them ISO)."""
    return {**state.to_dict(), "queued": False}


def queued_order_dict(order: Order, submitted_at: float) -> dict[str, Any]:
    """The same keys as :func:`order_dict`, for a submission the engine has not reached."""
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "status": Status.PENDING.value,
        "items": [
            {"product_id": i.product_id, "quantity": i.quantity, "price": None} for i in order.items
        ],
        "total": None,
        "notes": order.notes,
        "reason": None,
        "version": 0,
        "created_at": submitted_at,
        "updated_at": submitted_at,
        "terminal_at": None,
        "queued": True,
    }


def event_dict(event: Event, cursor: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": event.order_id,
        "seq": event.seq,
        "status": event.status.value,
        "at": event.at,
    }
    if event.reason is not None:
        data["reason"] = event.reason
    if cursor is not None:
        data["cursor"] = cursor
    return data


# -- the machine-readable forms users see: `list`/`show --json`/`watch`, and the HTTP API ----------


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2026-12-02T17:00:00.000Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_TIMES = ("created_at", "updated_at", "terminal_at")


def public_record(view: OrderView) -> dict[str, Any]:
    """One order as ``list --format json`` prints it and ``GET /v1/orders`` returns it."""
    data = view.record()
    for key in _TIMES:
        data[key] = iso(data[key])
    return data


def public_order(view: OrderView) -> dict[str, Any]:
    """One order with its timeline, as ``show --json`` prints it and ``GET /v1/orders/{id}``."""
    data = public_record(view)
    data["events"] = [
        {"seq": e.seq, "status": e.status.value, "at": iso(e.at)}
        | ({"reason": e.reason} if e.reason is not None else {})
        for e in view.events
    ]
    return data


def public_event(cursor: int, event: Event) -> dict[str, Any]:
    """A committed status change as ``watch`` prints it and the SSE streams send it."""
    record = event_dict(event, cursor)
    record["at"] = iso(event.at)
    return record
