"""What one dashboard refresh shows, as immutable values; no storage, no Textual.

:class:`~realorders.tui.feed.Feed` gathers :class:`Frame` objects; widgets only
render them. The filter and duration parsers live here too: they turn what the
user types into these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from realorders.domain import TERMINAL, Status
from realorders.engine.ports import StockLevel
from realorders.webhooks import WebhookFigures

__all__ = [
    "DEFAULT_STUCK_AFTER",
    "EngineState",
    "Frame",
    "OrderRow",
    "StuckOrder",
    "ViewFilter",
    "parse_duration",
    "parse_stuck_after",
]

#: seconds an order may sit in a state before the dashboard calls it stuck
DEFAULT_STUCK_AFTER: dict[Status, float] = {
    Status.PENDING: 10.0,
    Status.RESERVED: 60.0,
    Status.PACKED: 120.0,
    Status.SHIPPED: 600.0,
    Status.BACKORDERED: 900.0,
}
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class EngineState(StrEnum):
    """What the header says first: it explains every other figure (or their stillness)."""

    RUNNING = "running"  # an engine holds the store and has work
    IDLE = "idle"  # an engine holds the store, nothing to do
    STOPPED = "not running"  # commands wait, nobody processes them
    UNREACHABLE = "unreachable"  # the store cannot be read


@dataclass(frozen=True, slots=True)
class ViewFilter:
    """What the orders table shows: ``status:``, ``customer:``, ``id:`` terms or one word."""

    status: Status | None = None
    customer_id: str | None = None
    id_prefix: str | None = None
    word: str | None = None  # matches a customer or an id prefix

    @classmethod
    def parse(cls, text: str) -> ViewFilter:
        status = customer = prefix = word = None
        for term in text.split():
            key, sep, value = term.partition(":")
            key = key.lower()
            if sep and key in ("status", "s"):
                try:
                    status = Status(value.lower())
                except ValueError:
                    raise ValueError(f"unknown status {value!r}") from None
            elif sep and key in ("customer", "c"):
                customer = value
            elif sep and key in ("id", "order"):
                prefix = value
            elif term.lower() in Status.__members__.values():
                status = Status(term.lower())
            else:
                word = term
        return cls(status, customer, prefix, word)

    def describe(self) -> str:
        parts = [
            f"{name}:{value}"
            for name, value in (
                ("status", self.status.value if self.status else None),
                ("customer", self.customer_id),
                ("id", self.id_prefix),
            )
            if value
        ]
        if self.word:
            parts.append(self.word)
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One line of the orders table; ``since`` is when the order entered its state."""

    id: str
    customer_id: str
    status: Status
    since: float
    total: float | None
    arrival: int
    queued: bool = False


@dataclass(frozen=True, slots=True)
class StuckOrder:
    """An open order past its state's limit; the limit is shown beside its age."""

    row: OrderRow
    threshold: float


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything one refresh shows; widgets render it and keep nothing else."""

    taken_at: float
    store: str
    engine: EngineState
    problem: str | None = None  # why the store cannot be read, for the empty state
    engine_pid: int | None = None
    backlog: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    orders_per_second: float = 0.0
    events_per_second: float = 0.0
    latency_p50: float | None = None
    latency_p95: float | None = None
    throughput: tuple[float, ...] = ()  # finished orders per second, one point per second
    orders: tuple[OrderRow, ...] = ()
    levels: tuple[StockLevel, ...] = ()
    stuck: tuple[StuckOrder, ...] = ()
    stuck_more: bool = False  # more stuck orders than the window shows
    head: int = 0  # cursor of the newest event this frame includes
    newest_event_at: float | None = None
    engines: int = 0  # engines sharing the work (several in the distributed mode)
    #: how a command names this store (``realorders --backend kafka …``); None: the
    #: store is the file ``store`` and commands take ``--db``
    cli: str | None = None
    missing: bool = False  # the services answer but hold no store yet: `init` creates it
    webhooks: tuple[WebhookFigures, ...] = ()  # every endpoint, oldest first

    @property
    def in_flight(self) -> int:
        return sum(n for s, n in self.counts.items() if Status(s) not in TERMINAL)

    @property
    def empty(self) -> bool:
        return (
            self.problem is None
            and not any(self.counts.values())
            and not self.orders
            and not self.backlog
        )


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m`` or ``1h`` in seconds."""
    text = text.strip().lower()
    unit = _UNITS.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (like 90s, 5m, 1h)") from None
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return seconds


def parse_stuck_after(spec: str | None) -> dict[Status, float]:
    """``backordered=10m,reserved=30s`` over the defaults."""
    thresholds = dict(DEFAULT_STUCK_AFTER)
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        try:
            status = Status(name.strip().lower())
        except ValueError:
            raise ValueError(f"unknown state {name.strip()!r}") from None
        if not sep or status not in DEFAULT_STUCK_AFTER:
            raise ValueError(f"expected STATE=DURATION for a non-terminal state, got {part!r}")
        thresholds[status] = parse_duration(value)
    return thresholds
