"""An in-memory implementation of every port in :mod:`realorders.engine.ports`.

For unit tests only: small, single-process, and honest about the semantics the
SQLite backend has, so that the contract suite in ``tests/contract`` can run
unchanged against both:

* everything a reader sees (orders, events, stock levels, the ledger, the
  position) is *committed* state: it changes at :meth:`MemoryBackend.commit`
  (or at a catalogue edit), never half-way through an engine batch;
* the inventory decides in a working copy owned by the engine and written at
  commit; :meth:`MemoryBackend.claim_engine` reloads that copy from committed
  state, so a "crash" (an engine that stops without committing) loses exactly
  the uncommitted effects, like the SQLite backend after ``kill -9``;
* readers get copies, because the engine mutates the states it is handed;
* one ``(order_id, seq)`` per event, like the SQLite unique index, so a double
  processing bug fails loudly here too.

Several :class:`MemoryBackend` objects may share one :class:`MemoryStore`, the
way several processes share one database file.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from realorders.deliveries import Delivery, DeliveryStatus, Recorded, check_new, checked_outcome
from realorders.domain import HOLDS_STOCK, TERMINAL, Event, LineItem, Order, OrderState, Status
from realorders.engine.ports import (
    Changes,
    Command,
    CommandKind,
    EngineInfo,
    IntakeOutcome,
    IntakeResult,
    OrderFilter,
    Reservation,
    StockLevel,
    stats_record,
)
from realorders.errors import ConflictError, EngineBusyError, NotFoundError, RefusedError
from realorders.tokens import TokenRecord
from realorders.webhooks import WebhookEndpoint, WebhookSecrets

__all__ = ["MemoryBackend", "MemoryDeliveries", "MemoryStore", "MemoryTokens", "MemoryWebhooks"]

_IN_FLIGHT = frozenset({Status.RESERVED, Status.PACKED, Status.SHIPPED})
_OPEN_UNSHIPPED = frozenset({Status.PENDING, Status.RESERVED, Status.BACKORDERED, Status.PACKED})


def _copy_state(state: OrderState) -> OrderState:
    clone = copy.copy(state)
    clone.items = copy.deepcopy(state.items)
    return clone


def _needs(lines: Sequence[LineItem]) -> dict[str, int]:
    needs: dict[str, int] = {}
    for line in lines:
        needs[line.product_id] = needs.get(line.product_id, 0) + line.quantity
    return needs


@dataclass
class MemoryStore:
    """The committed state: what a database file would hold."""

    clock: Callable[[], float] = time.time
    products: dict[str, tuple[str, float]] = field(default_factory=dict)
    stock: dict[str, tuple[int, int]] = field(default_factory=dict)  # on_hand, reserved
    ledger: list[tuple[str, int, str, float]] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    submits: dict[str, bytes] = field(default_factory=dict)  # order id -> digest
    source_offsets: dict[str, dict[str, int]] = field(default_factory=dict)
    sourced: set[str] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)  # cursor = index + 1
    by_order: dict[str, list[Event]] = field(default_factory=dict)
    orders: dict[str, OrderState] = field(default_factory=dict)
    position: int = 0
    engine_claimed: bool = False
    pid: int | None = None
    started_at: float | None = None
    heartbeat_at: float | None = None
    tokens: dict[str, tuple[TokenRecord, str]] = field(default_factory=dict)  # id -> record, digest
    webhooks: dict[str, tuple[WebhookEndpoint, WebhookSecrets]] = field(default_factory=dict)
    #: (endpoint_id, order_id, seq) -> delivery; and the event-log cursor scanned so far
    deliveries: dict[tuple[str, str, int], Delivery] = field(default_factory=dict)
    delivery_scan: int = 0
    delivery_lease: tuple[str, float] | None = None


class MemoryCommandLog:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def _next_position(self) -> int:
        commands = self._store.commands
        return commands[-1].position + 1 if commands else 1

    def append_orders(self, orders: Sequence[Order]) -> list[IntakeResult]:
        store = self._store
        now = store.clock()
        results: list[IntakeResult] = []
        for order in orders:
            digest = order.digest()
            seen = store.submits.get(order.id)
            if seen is not None:
                outcome = IntakeOutcome.DUPLICATE if seen == digest else IntakeOutcome.CONFLICT
                results.append(IntakeResult(order.id, outcome))
                continue
            position = self._next_position()
            store.submits[order.id] = digest
            body = orjson.loads(orjson.dumps(order.to_dict()))
            store.commands.append(Command(position, CommandKind.SUBMIT, order.id, body, now))
            results.append(IntakeResult(order.id, IntakeOutcome.ACCEPTED, position))
        return results

    def append_from_source(
        self, orders: Sequence[Order], source: str, offsets: Mapping[str, int]
    ) -> list[IntakeResult]:
        results = self.append_orders(orders)
        self._store.source_offsets.setdefault(source, {}).update(offsets)
        self._store.sourced.update(o.id for o in orders)
        return results

    def taken_from_source(self, order_ids: Sequence[str]) -> set[str]:
        return self._store.sourced.intersection(order_ids)

    def source_offsets(self, source: str) -> dict[str, int]:
        return dict(self._store.source_offsets.get(source, {}))

    def digests(self, order_ids: Sequence[str]) -> dict[str, bytes]:
        submits = self._store.submits
        return {oid: submits[oid] for oid in order_ids if oid in submits}

    def cancel_requests(self, order_ids: Sequence[str]) -> dict[str, str | None]:
        wanted = set(order_ids)
        found: dict[str, str | None] = {}
        for command in self._store.commands:
            if command.kind is CommandKind.CANCEL and command.order_id in wanted:
                found.setdefault(command.order_id, command.body.get("reason"))
        return found

    def append(self, kind: CommandKind, order_id: str | None, body: dict[str, Any]) -> int:
        store = self._store
        position = self._next_position()
        store.commands.append(
            Command(position, kind, order_id, orjson.loads(orjson.dumps(body)), store.clock())
        )
        return position

    def read(self, after: int, limit: int) -> list[Command]:
        # positions are dense from 1, so the list index is position - 1
        return [copy.deepcopy(c) for c in self._store.commands[max(0, after) : after + limit]]

    def submitted(self, order_id: str) -> tuple[Order, float] | None:
        for command in self._store.commands:
            if command.kind is CommandKind.SUBMIT and command.order_id == order_id:
                return Order.from_dict(command.body), command.at
        return None

    def queued(
        self,
        after: int,
        limit: int,
        customer_id: str | None = None,
        *,
        oldest_first: bool = False,
        before: int | None = None,
    ) -> list[tuple[Order, int, float]]:
        found = [
            (Order.from_dict(c.body), c.position, c.at)
            for c in self._store.commands
            if c.kind is CommandKind.SUBMIT
            and c.position > after
            and (before is None or c.position < before)
            and (customer_id is None or c.body["customer_id"] == customer_id)
        ]
        return (found if oldest_first else found[::-1])[:limit]


class MemoryEventLog:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def tail(self, after: int, limit: int) -> list[tuple[int, Event]]:
        events = self._store.events
        start = max(0, after)
        return [(start + i + 1, e) for i, e in enumerate(events[start : start + limit])]

    def head(self) -> int:
        return len(self._store.events)

    def history(self, order_id: str) -> list[Event]:
        return list(self._store.by_order.get(order_id, ()))

    def scan(self) -> Iterator[list[Event]]:
        for order_id in sorted(self._store.by_order):
            yield list(self._store.by_order[order_id])


class MemoryInventory:
    """The engine's working copy of stock; written to the store at commit."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._stock: dict[str, list[int]] = {}
        self._holding: set[str] = set()
        self._ledger: list[tuple[str, int, str, float]] = []

    def load(self) -> None:
        store = self._store
        self._stock = {pid: list(store.stock.get(pid, (0, 0))) for pid in store.products}
        self._holding = {oid for oid, s in store.orders.items() if s.status in HOLDS_STOCK}
        self._ledger = []

    def flush(self) -> None:
        store = self._store
        for pid, (on_hand, reserved) in self._stock.items():
            store.stock[pid] = (on_hand, reserved)
        store.ledger.extend(self._ledger)
        self._ledger = []

    def _level(self, product_id: str) -> list[int] | None:
        level = self._stock.get(product_id)
        if level is None:
            if product_id not in self._store.products:
                return None
            level = self._stock[product_id] = list(self._store.stock.get(product_id, (0, 0)))
        return level

    def reserve_many(self, requests: Sequence[tuple[str, Sequence[LineItem]]]) -> list[Reservation]:
        results: list[Reservation] = []
        for order_id, lines in requests:
            if order_id in self._holding:
                results.append(Reservation(ok=True))
                continue
            needs = _needs(lines)
            levels = {pid: self._level(pid) for pid in needs}
            unknown = tuple(sorted(pid for pid, level in levels.items() if level is None))
            if unknown:
                results.append(Reservation(ok=False, unknown=unknown))
                continue
            shortages = tuple(
                (pid, qty, level[0] - level[1])
                for pid, qty in needs.items()
                if (level := levels[pid]) is not None and level[0] - level[1] < qty
            )
            if shortages:
                results.append(Reservation(ok=False, shortages=shortages))
                continue
            for pid, qty in needs.items():
                level = levels[pid]
                assert level is not None
                level[1] += qty
            self._holding.add(order_id)
            results.append(Reservation(ok=True))
        return results

    def release(self, order_id: str, lines: Sequence[LineItem]) -> None:
        self._settle(order_id, lines, shipped=False)

    def consume(self, order_id: str, lines: Sequence[LineItem]) -> None:
        self._settle(order_id, lines, shipped=True)

    def _settle(self, order_id: str, lines: Sequence[LineItem], *, shipped: bool) -> None:
        if order_id not in self._holding:
            return
        self._holding.discard(order_id)
        for pid, qty in _needs(lines).items():
            level = self._level(pid)
            if level is not None:
                if shipped:
                    level[0] -= qty
                level[1] -= qty

    def restock(self, product_id: str, quantity: int, at: float, *, ref: str | None = None) -> None:
        level = self._level(product_id)
        if level is None:
            return
        level[0] += quantity
        self._ledger.append((product_id, quantity, "restock", at))

    def set_on_hand(
        self, product_id: str, quantity: int, at: float, *, ref: str | None = None
    ) -> str | None:
        level = self._level(product_id)
        if level is None:
            return f"unknown product {product_id!r}"
        if quantity < level[1]:
            return f"{product_id}: cannot set on hand to {quantity}, {level[1]} reserved"
        self._ledger.append((product_id, quantity - level[0], "set", at))
        level[0] = quantity
        return None

    def available(self, product_id: str) -> int:
        level = self._level(product_id)
        return 0 if level is None else level[0] - level[1]

    def prices(self, product_ids: Iterable[str]) -> dict[str, float]:
        products = self._store.products
        return {pid: products[pid][1] for pid in set(product_ids) if pid in products}


class MemoryReadModel:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def get(self, order_id: str) -> OrderState | None:
        state = self._store.orders.get(order_id)
        return None if state is None else _copy_state(state)

    def get_many(self, order_ids: Iterable[str]) -> dict[str, OrderState]:
        orders = self._store.orders
        return {oid: _copy_state(orders[oid]) for oid in order_ids if oid in orders}

    def query(self, flt: OrderFilter) -> list[OrderState]:
        orders = self._store.orders
        found = list(orders.values())
        if flt.status is not None:
            found = [s for s in found if s.status is flt.status]
        if flt.customer_id is not None:
            found = [s for s in found if s.customer_id == flt.customer_id]
        if flt.order_id_prefix:
            found = [s for s in found if s.id.startswith(flt.order_id_prefix)]
        if flt.before is not None:
            anchor = orders.get(flt.before)
            found = [] if anchor is None else [s for s in found if s.arrival < anchor.arrival]
        if flt.before_arrival is not None:
            found = [s for s in found if s.arrival < flt.before_arrival]
        found.sort(key=lambda s: s.arrival, reverse=True)
        if flt.limit is not None:
            found = found[: flt.limit]
        return [_copy_state(s) for s in found]

    def backordered(
        self, product_id: str | None, after_arrival: int, limit: int
    ) -> list[OrderState]:
        found = sorted(
            (
                s
                for s in self._store.orders.values()
                if s.status is Status.BACKORDERED
                and s.arrival > after_arrival
                and (product_id is None or any(i["product_id"] == product_id for i in s.items))
            ),
            key=lambda s: s.arrival,
        )
        return [_copy_state(s) for s in found[:limit]]

    def in_flight(self) -> list[OrderState]:
        found = sorted(
            (s for s in self._store.orders.values() if s.status in _IN_FLIGHT),
            key=lambda s: s.arrival,
        )
        return [_copy_state(s) for s in found]

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for state in self._store.orders.values():
            counts[state.status.value] += 1
        return counts

    def open_counts(self) -> dict[str, int]:
        return {s: n for s, n in self.counts().items() if Status(s) not in TERMINAL}

    def stale(self, status: Status, updated_before: float, limit: int) -> list[OrderState]:
        found = sorted(
            (
                s
                for s in self._store.orders.values()
                if s.status is status and not s.terminal and s.updated_at < updated_before
            ),
            key=lambda s: s.updated_at,
        )
        return [_copy_state(s) for s in found[:limit]]

    def counts_between(self, ranges: list[tuple[int, int]]) -> dict[str, int]:
        # like SqliteReadModel: every status a key, and one count per range (inclusive)
        counts = {s.value: 0 for s in Status}
        for low, high in ranges:
            for state in self._store.orders.values():
                if low <= state.arrival <= high:
                    counts[state.status.value] += 1
        return counts

    def stats(self, window: float = 60.0) -> dict[str, Any]:
        store = self._store
        now = store.clock()
        counts = self.counts()
        states = list(store.orders.values())
        latencies = sorted(
            s.terminal_at - s.created_at for s in states if s.terminal_at is not None
        )
        recent_orders = sum(
            1 for s in states if s.terminal_at is not None and s.terminal_at >= now - window
        )
        recent_events = sum(1 for e in store.events if e.at >= now - window)
        first = min((s.created_at for s in states), default=None)
        last = max((s.terminal_at for s in states if s.terminal_at is not None), default=None)
        span = (last - first) if first is not None and last is not None else 0.0
        head = store.commands[-1].position if store.commands else 0
        return stats_record(
            counts,
            latencies,
            window=window,
            recent_orders=recent_orders,
            recent_events=recent_events,
            span=span,
            backlog=head - store.position,
        )

    def levels(self) -> list[StockLevel]:
        store = self._store
        waiting: dict[str, int] = {}
        for state in store.orders.values():
            if state.status is Status.BACKORDERED:
                for pid in {i["product_id"] for i in state.items}:
                    waiting[pid] = waiting.get(pid, 0) + 1
        return [
            StockLevel(pid, name, price, *store.stock.get(pid, (0, 0)), waiting.get(pid, 0))
            for pid, (name, price) in sorted(store.products.items())
        ]

    def count(self) -> int:
        return len(self._store.orders)

    def ledger_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for pid, delta, _kind, _at in self._store.ledger:
            totals[pid] = totals.get(pid, 0) + delta
        return totals

    def stock_rows(self) -> dict[str, tuple[int, int]]:
        return dict(self._store.stock)


class MemoryCatalogue:
    """Products: edited directly (committed at once), like ``SqliteCatalogue``."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def list(self) -> list[dict[str, Any]]:
        return [
            {"product_id": pid, "name": name, "price": price}
            for pid, (name, price) in sorted(self._store.products.items())
        ]

    def get(self, product_id: str) -> dict[str, Any]:
        found = self._store.products.get(product_id)
        if found is None:
            raise NotFoundError(f"no product {product_id!r}")
        return {"product_id": product_id, "name": found[0], "price": found[1]}

    def add(self, product_id: str, name: str, price: float, stock: int = 0) -> bool:
        store = self._store
        if product_id in store.products:
            raise RefusedError(f"product {product_id!r} exists already (use products update)")
        store.products[product_id] = (name, price)
        if product_id in store.stock:  # survives a removal: its level goes through the engine
            return False
        store.stock[product_id] = (stock, 0)
        store.ledger.append((product_id, stock, "initial", store.clock()))
        return True

    def update(self, product_id: str, name: str | None, price: float | None) -> None:
        products = self._store.products
        current = products.get(product_id)
        if current is None:
            raise NotFoundError(f"no product {product_id!r}")
        products[product_id] = (
            current[0] if name is None else name,
            current[1] if price is None else price,
        )

    def remove(self, product_id: str) -> None:
        store = self._store
        if product_id not in store.products:
            raise NotFoundError(f"no product {product_id!r}")
        # like SqliteCatalogue: one count per matching line of an open, unshipped order
        waiting = [
            state.id
            for state in store.orders.values()
            if state.status in _OPEN_UNSHIPPED
            for item in state.items
            if item["product_id"] == product_id
        ]
        if waiting:
            raise RefusedError(
                f"product {product_id!r} is in {len(waiting)} open orders (e.g. {min(waiting)}); "
                "cancel them or let them ship first"
            )
        del store.products[product_id]  # its stock row stays, as in SQLite

    def load(self, rows: Sequence[tuple[str, str, float, int]]) -> tuple[int, int]:
        """Upsert products and set stock, all rows or none (SQLite: one transaction)."""
        store = self._store
        products, stock_rows = dict(store.products), dict(store.stock)
        ledger: list[tuple[str, int, str, float]] = []
        added = updated = 0
        now = store.clock()
        for product_id, name, price, stock in rows:
            existing = stock_rows.get(product_id, (0, 0)) if product_id in products else None
            products[product_id] = (name, price)
            if existing is None:
                added += 1
                stock_rows.setdefault(product_id, (stock, 0))
                ledger.append((product_id, stock, "initial", now))
                continue
            updated += 1
            on_hand, reserved = existing
            if stock < reserved:
                raise RefusedError(
                    f"{product_id}: stock {stock} is below the {reserved} units reserved"
                )
            stock_rows[product_id] = (stock, stock_rows.get(product_id, (0, 0))[1])
            if stock != on_hand:
                ledger.append((product_id, stock - on_hand, "set", now))
        store.products, store.stock = products, stock_rows
        store.ledger.extend(ledger)
        return added, updated


class MemoryTokens:
    """Bearer tokens: written directly, one active token per name, like ``SqliteTokens``."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def add(self, record: TokenRecord, digest: str) -> None:
        tokens = self._store.tokens
        if any(r.name == record.name and not r.revoked for r, _ in tokens.values()):
            raise ConflictError(f"an active token named {record.name!r} exists already")
        if record.token_id in tokens:
            raise ConflictError(f"token id {record.token_id} exists already")
        tokens[record.token_id] = (record, digest)

    def find(self, token_id: str) -> tuple[TokenRecord, str] | None:
        return self._store.tokens.get(token_id)

    def list(self) -> list[TokenRecord]:
        return sorted((r for r, _ in self._store.tokens.values()), key=lambda r: r.created_at)

    def revoke(self, name_or_id: str, at: float) -> int:
        tokens = self._store.tokens
        hits = [
            (record, digest)
            for record, digest in tokens.values()
            if not record.revoked and name_or_id in (record.name, record.token_id)
        ]
        for record, digest in hits:
            tokens[record.token_id] = (replace(record, revoked_at=at), digest)
        return len(hits)


class MemoryWebhooks:
    """Webhook endpoints and their secrets, written directly like ``SqliteWebhooks``."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def add(self, endpoint: WebhookEndpoint, secrets: WebhookSecrets) -> None:
        if endpoint.endpoint_id in self._store.webhooks:
            raise ConflictError(f"webhook endpoint {endpoint.endpoint_id} exists already")
        self._store.webhooks[endpoint.endpoint_id] = (endpoint, secrets)

    def get(self, endpoint_id: str) -> tuple[WebhookEndpoint, WebhookSecrets] | None:
        return self._store.webhooks.get(endpoint_id)

    def list(self) -> list[WebhookEndpoint]:
        return sorted((e for e, _ in self._store.webhooks.values()), key=lambda e: e.created_at)

    def replace(self, endpoint: WebhookEndpoint) -> bool:
        found = self._store.webhooks.get(endpoint.endpoint_id)
        if found is None:
            return False
        self._store.webhooks[endpoint.endpoint_id] = (endpoint, found[1])
        return True

    def set_secrets(self, endpoint_id: str, secrets: WebhookSecrets) -> bool:
        found = self._store.webhooks.get(endpoint_id)
        if found is None:
            return False
        self._store.webhooks[endpoint_id] = (found[0], secrets)
        return True

    def remove(self, endpoint_id: str) -> bool:
        return self._store.webhooks.pop(endpoint_id, None) is not None


class MemoryDeliveries:
    """The outbox of webhook deliveries, written directly like ``SqliteDeliveries``.

    Plain scans of one dict: the fake states the rules, the real stores index them.
    """

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def scan_cursor(self) -> int:
        return self._store.delivery_scan

    def enqueue(self, deliveries: Sequence[Delivery], scan_cursor: int) -> int:
        for delivery in deliveries:  # check first: a refused batch changes nothing
            check_new(delivery)
        rows = self._store.deliveries
        added = 0
        for delivery in deliveries:
            if delivery.key not in rows:
                rows[delivery.key] = delivery
                added += 1
        self._store.delivery_scan = max(self._store.delivery_scan, scan_cursor)
        return added

    def due(self, now: float, limit: int, *, hold: float = 0.0) -> list[Delivery]:
        found = self._due(now, limit)
        if hold > 0:
            found = [replace(d, next_at=now + hold) for d in found]
            self._store.deliveries.update((d.key, d) for d in found)
        return found

    def _due(self, now: float, limit: int) -> list[Delivery]:
        heads: dict[tuple[str, str], Delivery] = {}
        for d in self._store.deliveries.values():
            if d.status is DeliveryStatus.PENDING:
                head = heads.get((d.endpoint_id, d.order_id))
                if head is None or d.seq < head.seq:
                    heads[(d.endpoint_id, d.order_id)] = d
        ready = [d for d in heads.values() if d.next_at is not None and d.next_at <= now]
        ready.sort(key=lambda d: (d.cursor, d.endpoint_id, d.order_id, d.seq))
        return ready[: max(0, limit)]

    def record(
        self,
        endpoint_id: str,
        order_id: str,
        seq: int,
        *,
        status: DeliveryStatus,
        attempts: int,
        next_at: float | None,
        last_code: int | None,
        last_error: str | None,
        last_latency_ms: float | None,
        response_excerpt: str | None,
        at: float,
    ) -> bool:
        status, next_at, last_error, response_excerpt = checked_outcome(
            status, next_at, last_error, response_excerpt
        )
        key = (endpoint_id, order_id, seq)
        found = self._store.deliveries.get(key)
        if found is None:
            return False
        self._store.deliveries[key] = replace(
            found,
            status=status,
            attempts=attempts,
            next_at=next_at,
            updated_at=at,
            last_code=last_code,
            last_error=last_error,
            last_latency_ms=last_latency_ms,
            response_excerpt=response_excerpt,
        )
        return True

    def record_many(self, outcomes: Sequence[Recorded]) -> int:
        for o in outcomes:  # check first: a refused batch changes nothing
            checked_outcome(o.status, o.next_at, o.last_error, o.response_excerpt)
        return sum(self.record(o.endpoint_id, o.order_id, o.seq, **o.fields()) for o in outcomes)

    def _count(self, status: DeliveryStatus, endpoint_id: str | None) -> int:
        return sum(
            1
            for d in self._store.deliveries.values()
            if d.status is status and endpoint_id in (None, d.endpoint_id)
        )

    def pending_count(self, endpoint_id: str | None = None) -> int:
        return self._count(DeliveryStatus.PENDING, endpoint_id)

    def failed_count(self, endpoint_id: str | None = None) -> int:
        return self._count(DeliveryStatus.FAILED, endpoint_id)

    def history(
        self,
        endpoint_id: str | None = None,
        *,
        order_id: str | None = None,
        failed_only: bool = False,
        limit: int = 100,
    ) -> list[Delivery]:
        found = [
            d
            for d in self._store.deliveries.values()
            if endpoint_id in (None, d.endpoint_id)
            and order_id in (None, d.order_id)
            and (not failed_only or d.status is DeliveryStatus.FAILED)
        ]
        found.sort(key=lambda d: (d.updated_at, d.cursor, *d.key), reverse=True)
        return found[: max(0, limit)]

    def requeue(
        self,
        endpoint_id: str,
        *,
        order_id: str | None = None,
        since: float | None = None,
        failed_only: bool = False,
        now: float,
    ) -> int:
        rows = self._store.deliveries
        hits = [
            d
            for d in rows.values()
            if d.endpoint_id == endpoint_id
            and d.settled
            and order_id in (None, d.order_id)
            and (since is None or d.created_at >= since)
            and (not failed_only or d.status is DeliveryStatus.FAILED)
        ]
        for d in hits:
            rows[d.key] = replace(
                d, status=DeliveryStatus.PENDING, attempts=0, next_at=now, updated_at=now
            )
        return len(hits)

    def forget_endpoint(self, endpoint_id: str) -> int:
        rows = self._store.deliveries
        keys = [key for key in rows if key[0] == endpoint_id]
        for key in keys:
            del rows[key]
        return len(keys)

    def take_lease(self, owner: str, ttl: float, now: float) -> str | None:
        holder = self._store.delivery_lease
        if holder is not None and holder[0] != owner and holder[1] > now:
            return holder[0]
        self._store.delivery_lease = (owner, now + ttl)
        return None

    def release_lease(self, owner: str) -> bool:
        holder = self._store.delivery_lease
        if holder is None or holder[0] != owner:
            return False
        self._store.delivery_lease = None
        return True


class MemoryBackend:
    """Every port over one :class:`MemoryStore`; see the module docstring."""

    name = "memory"
    redelivers = False
    generation = 0  # one engine owns every order

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        yield  # one thread, no concurrent writer: every read already agrees

    def __init__(self, store: MemoryStore | None = None) -> None:
        #: whether this handle made its store (``init_store`` says "created" or "using existing")
        self.created = store is None
        self.store = store if store is not None else MemoryStore()
        self.commands = MemoryCommandLog(self.store)
        self.events = MemoryEventLog(self.store)
        self.orders = MemoryReadModel(self.store)
        self.inventory = MemoryInventory(self.store)
        self.catalogue = MemoryCatalogue(self.store)
        self.tokens = MemoryTokens(self.store)
        self.webhooks = MemoryWebhooks(self.store)
        self.deliveries = MemoryDeliveries(self.store)
        self._claimed = False
        self.commits = 0

    def init_store(self) -> list[str]:
        """Nothing to create; like SQLite, says whether this handle made the store."""
        verb = "created" if self.created else "using existing"
        return [f"{verb} in-memory store ({len(self.store.products)} products)"]

    def owns(self, order_id: str) -> bool:
        return True

    def claim_engine(self) -> None:
        store = self.store
        if store.engine_claimed:
            raise EngineBusyError(f"another engine (pid {store.pid}) is already running")
        store.engine_claimed = self._claimed = True
        store.pid = id(self)
        store.started_at = store.heartbeat_at = store.clock()
        self.inventory.load()

    def release_engine(self) -> None:
        if not self._claimed:
            return
        store = self.store
        store.engine_claimed = self._claimed = False
        store.pid = store.heartbeat_at = None

    def engine_running(self) -> bool:
        return self.store.engine_claimed

    def commit(self, changes: Changes) -> None:
        store = self.store
        seen: set[tuple[str, int]] = set()
        for event in changes.events:  # check first: a refused commit changes nothing
            key = (event.order_id, event.seq)
            history = store.by_order.get(event.order_id, [])
            if key in seen or any(e.seq == event.seq for e in history):
                raise ValueError(f"duplicate event {event.order_id!r} #{event.seq}")
            seen.add(key)
        for event in changes.events:
            store.events.append(event)
            store.by_order.setdefault(event.order_id, []).append(event)
        for order_id, state in changes.orders.items():
            store.orders[order_id] = _copy_state(state)
        self.inventory.flush()
        store.position = changes.position
        store.heartbeat_at = store.clock()
        self.commits += 1

    def position(self) -> int:
        return self.store.position

    def engine_info(self) -> EngineInfo:
        store = self.store
        head = store.commands[-1].position if store.commands else 0
        return EngineInfo(
            pid=store.pid,
            started_at=store.started_at,
            heartbeat_at=store.heartbeat_at,
            position=store.position,
            head=head,
        )

    def heartbeat(self, position: int) -> None:
        if self.store.position == position:
            self.store.heartbeat_at = self.store.clock()

    def close(self) -> None:
        self.release_engine()
