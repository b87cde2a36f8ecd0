"""The only seams between the engine, the fronts and storage.

The engine, the Client and every front talk to these protocols and nothing
else, so the same code runs on one SQLite file or on Kafka + Redis. Each port
has a contract test suite in ``tests/contract`` that every implementation must
pass. What only one deployment can do is not here but in
:mod:`realorders.engine.capabilities`.

Longer than 400 lines on purpose: the whole seam, with the value types that
cross it, reads in one file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from realorders.domain import TERMINAL, Event, LineItem, Order, OrderState, Status
from realorders.engine.notify_ports import DeliveryStore, WebhookStore
from realorders.tokens import TokenRecord

__all__ = [
    "Backend",
    "Catalogue",
    "Changes",
    "Command",
    "CommandKind",
    "CommandLog",
    "DeliveryStore",
    "EngineInfo",
    "EventLog",
    "IntakeOutcome",
    "IntakeResult",
    "Inventory",
    "OrderFilter",
    "ReadModel",
    "Reservation",
    "StockLevel",
    "TokenStore",
    "WebhookStore",
    "percentile",
    "stats_record",
]


class CommandKind(StrEnum):
    SUBMIT = "submit"
    CANCEL = "cancel"
    RESTOCK = "restock"
    SET_STOCK = "set_stock"
    #: Stock of a product came back somewhere: owners of backorders should try again.
    #: Only the distributed mode sends it (to every partition, since any engine may
    #: own an order waiting for that product).
    WAKE = "wake"


@dataclass(frozen=True, slots=True)
class Command:
    """An entry of the command log: a request the engine has not necessarily seen yet."""

    position: int
    kind: CommandKind
    order_id: str | None
    body: dict[str, Any]
    at: float
    #: Stable identity across redeliveries (Kafka: "partition:offset"), so that an
    #: effect outside the engine's commit (a restock in Redis) happens once.
    ref: str | None = None


class IntakeOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # same id, same content: a no-op
    CONFLICT = "conflict"  # same id, other content: refused, stored order untouched


@dataclass(frozen=True, slots=True)
class IntakeResult:
    order_id: str
    outcome: IntakeOutcome
    position: int | None = None  # command position when accepted


@dataclass(frozen=True, slots=True)
class Reservation:
    """Outcome of an all-or-nothing reservation attempt."""

    ok: bool
    shortages: tuple[tuple[str, int, int], ...] = ()  # (product_id, wanted, available)
    unknown: tuple[str, ...] = ()

    def reason(self) -> str | None:
        if self.unknown:
            return "unknown product " + ", ".join(repr(p) for p in self.unknown)
        if self.shortages:
            return "out of stock: " + ", ".join(
                f"{p} needs {w}, {a} available" for p, w, a in self.shortages
            )
        return None


@dataclass(frozen=True, slots=True)
class StockLevel:
    product_id: str
    name: str | None
    price: float | None
    on_hand: int
    reserved: int
    backordered: int = 0  # orders waiting for this product

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def to_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "name": self.name,
            "price": self.price,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "available": self.available,
            "backordered": self.backordered,
        }


@dataclass(slots=True)
class Changes:
    """Everything one engine batch did, committed atomically with its position."""

    position: int
    events: list[Event] = field(default_factory=list)
    orders: dict[str, OrderState] = field(default_factory=dict)
    #: Products whose available stock went up in this batch (restock, set, release):
    #: a backend shared by several engines tells the others (``CommandKind.WAKE``).
    stock_up: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: Status | None = None
    customer_id: str | None = None
    order_id_prefix: str | None = None
    limit: int | None = 100
    before: str | None = None  # keyset paging: ids older than this one
    #: keyset paging by position: only orders whose ``arrival`` is below this one
    before_arrival: int | None = None


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What the running engine last reported about itself."""

    pid: int | None
    started_at: float | None
    heartbeat_at: float | None
    position: int
    head: int  # last command position appended

    @property
    def backlog(self) -> int:
        return max(0, self.head - self.position)


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def stats_record(
    counts: dict[str, int],
    latencies: list[float],
    *,
    window: float,
    recent_orders: int,
    recent_events: int,
    span: float,
    backlog: int,
) -> dict[str, Any]:
    """The shape of ``ReadModel.stats()``, whatever backend gathered the figures.

    ``latencies`` are submit-to-terminal seconds, sorted; ``span`` the seconds from
    the first submission to the last terminal event.
    """
    finished = sum(counts.get(s.value, 0) for s in TERMINAL)
    total = sum(counts.values())
    return {
        "orders": total,
        "by_status": counts,
        "in_flight": total - finished,
        "finished": finished,
        "throughput": {
            "window_seconds": window,
            "orders_per_second": recent_orders / window,
            "events_per_second": recent_events / window,
            "overall_orders_per_second": finished / span if span > 0 else None,
        },
        "latency_seconds": {
            "p50": percentile(latencies, 0.50),
            "p95": percentile(latencies, 0.95),
            "p99": percentile(latencies, 0.99),
            "max": latencies[-1] if latencies else None,
        },
        "backlog": max(0, backlog),
    }


class CommandLog(Protocol):
    def append_orders(self, orders: Sequence[Order]) -> list[IntakeResult]:
        """Append submissions idempotently.

        The same id with the same content is a no-op; with other content, a conflict.
        """
        ...

    def append_from_source(
        self, orders: Sequence[Order], source: str, offsets: Mapping[str, int]
    ) -> list[IntakeResult]:
        """``append_orders``, and record that ``source`` is taken in up to ``offsets``
        (part -> next offset to read), so a restarted reader resumes after them.

        SQLite writes both in one transaction. Kafka + Redis records the offsets
        once the orders are durable in Kafka: a reader that dies in between
        reads them again, and intake answers ``duplicate`` (an order claimed but
        never produced is produced then). Either way an order is neither lost nor
        doubled. ``orders`` may be empty (a page of dead letters still advances).
        Their ids are remembered as taken from outside (:meth:`taken_from_source`).
        """
        ...

    def taken_from_source(self, order_ids: Sequence[str]) -> set[str]:
        """Those of ``order_ids`` that :meth:`append_from_source` brought in."""
        ...

    def source_offsets(self, source: str) -> dict[str, int]:
        """What :meth:`append_from_source` recorded for ``source`` (empty: never read)."""
        ...

    def digests(self, order_ids: Sequence[str]) -> dict[str, bytes]:
        """Content digests of already-submitted ids (for dry runs)."""
        ...

    def cancel_requests(self, order_ids: Sequence[str]) -> dict[str, str | None]:
        """Cancels already in the log for these orders (id -> reason), whatever their position.

        The engine asks before acting on submissions: a cancel that arrived before
        the engine reached its order wins, however the log is split into batches.
        """
        ...

    def append(self, kind: CommandKind, order_id: str | None, body: dict[str, Any]) -> int:
        """Append one non-submit command; returns its position."""
        ...

    def read(self, after: int, limit: int) -> list[Command]:
        """Commands after ``after``, oldest first."""
        ...

    def submitted(self, order_id: str) -> tuple[Order, float] | None:
        """The order as submitted and when, whether or not the engine has seen it yet."""
        ...

    def queued(
        self,
        after: int,
        limit: int,
        customer_id: str | None = None,
        *,
        oldest_first: bool = False,
        before: int | None = None,
    ) -> list[tuple[Order, int, float]]:
        """Submissions after position ``after`` (not yet processed), newest first.

        ``oldest_first`` gives the longest-waiting ones (the dashboard's stuck view);
        ``before`` keeps only positions below it (keyset paging, as ``before_arrival``).
        """
        ...


class EventLog(Protocol):
    def tail(self, after: int, limit: int) -> list[tuple[int, Event]]:
        """Committed events after a global cursor, oldest first, with their cursors.

        Cursors become visible in increasing order: a reader that resumes after
        the last cursor it saw misses nothing (``watch`` and the dashboard rely on it).
        """
        ...

    def head(self) -> int:
        """The cursor of the newest committed event (0 when none)."""
        ...

    def history(self, order_id: str) -> list[Event]: ...

    def scan(self) -> Iterator[list[Event]]:
        """Every order's events, one order at a time (for ``check``)."""
        ...


class Inventory(Protocol):
    """Stock per product; all-or-nothing and idempotent per order."""

    def reserve_many(self, requests: Sequence[tuple[str, Sequence[LineItem]]]) -> list[Reservation]:
        """Try each (order_id, lines) in order; an order already holding stock gets ``ok``."""
        ...

    def release(self, order_id: str, lines: Sequence[LineItem]) -> None:
        """Give back what an order holds (cancelled before shipping). No-op if it holds nothing."""
        ...

    def consume(self, order_id: str, lines: Sequence[LineItem]) -> None:
        """The order shipped: its quantities leave both on_hand and reserved."""
        ...

    def restock(self, product_id: str, quantity: int, at: float, *, ref: str | None = None) -> None:
        """Add stock; with ``ref``, a second call for the same command changes nothing."""
        ...

    def set_on_hand(
        self, product_id: str, quantity: int, at: float, *, ref: str | None = None
    ) -> str | None:
        """Set absolute stock; returns a refusal reason instead of going below reserved."""
        ...

    def available(self, product_id: str) -> int: ...

    def prices(self, product_ids: Iterable[str]) -> dict[str, float]:
        """Catalogue prices of the known products among ``product_ids``."""
        ...


class ReadModel(Protocol):
    def get(self, order_id: str) -> OrderState | None: ...

    def get_many(self, order_ids: Iterable[str]) -> dict[str, OrderState]: ...

    def query(self, flt: OrderFilter) -> list[OrderState]: ...

    def backordered(
        self, product_id: str | None, after_arrival: int, limit: int
    ) -> list[OrderState]:
        """Backordered orders (waiting for ``product_id`` if given) in arrival order."""
        ...

    def in_flight(self) -> list[OrderState]:
        """Orders between reserved and delivered: their timers must be re-armed after a restart."""
        ...

    def counts(self) -> dict[str, int]:
        """Orders per status."""
        ...

    def open_counts(self) -> dict[str, int]:
        """Orders per non-terminal status; cheap, because live views ask it every tick."""
        ...

    def stale(self, status: Status, updated_before: float, limit: int) -> list[OrderState]:
        """Open orders in ``status`` unchanged since before ``updated_before``, oldest first."""
        ...

    def counts_between(self, ranges: list[tuple[int, int]]) -> dict[str, int]:
        """Orders per status (every status a key) among those whose arrival is in the ranges.

        ``import --wait`` follows the orders of one import by their positions.
        """
        ...

    def stats(self, window: float = 60.0) -> dict[str, Any]: ...

    def levels(self) -> list[StockLevel]: ...

    def count(self) -> int: ...

    def ledger_totals(self) -> dict[str, int]:
        """Net stock put in per product by loads, restocks and sets."""
        ...

    def stock_rows(self) -> dict[str, tuple[int, int]]:
        """Stored (on_hand, reserved) per product."""
        ...


class Catalogue(Protocol):
    """Products: reference data, written directly (no order state depends on the writes)."""

    def list(self) -> list[dict[str, Any]]: ...

    def get(self, product_id: str) -> dict[str, Any]:
        """The product (``product_id``, ``name``, ``price``); NotFoundError if unknown."""
        ...

    def add(self, product_id: str, name: str, price: float, stock: int = 0) -> bool:
        """Add a product; False when it comes back after a removal (its stock row stays)."""
        ...

    def update(self, product_id: str, name: str | None, price: float | None) -> None: ...

    def remove(self, product_id: str) -> None:
        """Refused (RefusedError) while open orders include the product."""
        ...

    def load(self, rows: Sequence[tuple[str, str, float, int]]) -> tuple[int, int]:
        """Upsert (product_id, name, price, stock) rows; returns (added, updated)."""
        ...


class TokenStore(Protocol):
    """Bearer tokens of the HTTP server: records and digests, never a secret.

    Written directly, like the catalogue: no order state depends on a token.
    The server looks a token up on every request (with a cache of at most half
    a second), so :meth:`find` is one read by key: a revoked token must stop
    working within a second, on every server sharing the store.
    """

    def add(self, record: TokenRecord, digest: str) -> None:
        """Store a new token; ConflictError if an active token already has its name.

        Names are how operators revoke and read audit trails, so two live tokens
        never share one (checked atomically: two ``create`` calls racing cannot
        both win). A revoked token's name may be used again.
        """
        ...

    def find(self, token_id: str) -> tuple[TokenRecord, str] | None:
        """The record and stored digest of ``token_id`` (revoked ones too), or None.

        Revoked tokens are returned rather than hidden so that the caller decides
        (and can say why a request was refused); the check of the secret is the
        caller's, in constant time.
        """
        ...

    def list(self) -> list[TokenRecord]:
        """Every token, oldest first, revoked ones included (kept for the audit trail)."""
        ...

    def revoke(self, name_or_id: str, at: float) -> int:
        """Revoke the active token named ``name_or_id`` and the active token with that id.

        Returns how many were revoked (0: none matched, or already revoked). An
        argument that is both a name and another token's id revokes both: when
        in doubt, access ends. Revoked tokens stay listed with ``revoked_at``.
        """
        ...


class Backend(Protocol):
    """One deployment's set of ports, plus the atomic commit that ties them together."""

    #: "sqlite" or "kafka": the ``--backend`` that opens this store.
    name: str

    #: True when the command log may deliver a command again after a restart
    #: (at-least-once); the engine then looks every order up before acting.
    redelivers: bool

    #: Changes whenever the set of orders this engine is responsible for changes
    #: (a consumer-group rebalance); constant for a single-engine store.
    generation: int

    def owns(self, order_id: str) -> bool:
        """Whether this engine is the one that processes ``order_id`` right now."""
        ...

    @property
    def commands(self) -> CommandLog: ...

    @property
    def events(self) -> EventLog: ...

    @property
    def inventory(self) -> Inventory: ...

    @property
    def orders(self) -> ReadModel: ...

    @property
    def catalogue(self) -> Catalogue: ...

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def webhooks(self) -> WebhookStore: ...

    @property
    def deliveries(self) -> DeliveryStore: ...

    def init_store(self) -> list[str]:
        """Create what the store needs (idempotent); one line per step, for the operator."""
        ...

    def commit(self, changes: Changes) -> None:
        """Durably apply a batch: events, order rows, inventory effects and the position.

        All of a batch or none of it, in the order given. It may return before
        the batch is durable (SQLite writes batches on a thread beside the
        engine); this backend's own reads always see what was handed over, and
        :meth:`position` and ``release_engine`` wait for it.
        """
        ...

    def position(self) -> int:
        """Position of the last command whose effects are committed.

        Waits for the batches already handed to :meth:`commit`: once it
        returns, every reader of the store sees them.
        """
        ...

    def snapshot(self) -> AbstractContextManager[None]:
        """Reads inside agree with each other (one consistent view of the store)."""
        ...

    def engine_info(self) -> EngineInfo: ...

    def engine_running(self) -> bool:
        """Whether an engine holds the store now (SQLite: the engine lock; Kafka: heartbeats)."""
        ...

    def heartbeat(self, position: int) -> None: ...

    def claim_engine(self) -> None:
        """Become the one engine of this store, or raise EngineBusyError."""
        ...

    def release_engine(self) -> None: ...

    def close(self) -> None: ...
