"""The Python API: everything the CLI does, as plain method calls.

>>> from realorders import Client, LineItem
>>> with Client("shop.db") as shop:                         # doctest: +SKIP
...     shop.init(inventory="examples/inventory.csv")
...     order_id = shop.submit(customer_id="ada", items=[LineItem("SKU-1", 2)]).order_id
...     shop.run(until_idle=True)
...     shop.get(order_id).status
<Status.DELIVERED: 'delivered'>

A client appends commands and reads the read model; only :meth:`run` (the
engine) changes order state, so any number of clients can share a database
with one running engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from realorders._gc import fewer_collections
from realorders.catalogue_file import MAX_STOCK, ProductRow, read_inventory
from realorders.check import CheckReport, check
from realorders.config import BACKENDS, Config
from realorders.domain import CANCELLABLE, TERMINAL, Event, LineItem, Order, OrderState, Status
from realorders.engine import Delays, Engine, EngineStats
from realorders.engine.backends.connect import redis_location
from realorders.engine.backends.sqlite import SqliteBackend
from realorders.engine.ports import (
    CommandKind,
    EngineInfo,
    IntakeOutcome,
    IntakeResult,
    OrderFilter,
    StockLevel,
)
from realorders.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    RefusedError,
    UsageError,
)
from realorders.ids import new_id
from realorders.importer import ImportReport, import_orders
from realorders.intake import Format, order_from_obj

__all__ = ["BACKENDS", "Client", "OrderView", "order_dict", "queued_order_dict"]

if TYPE_CHECKING:
    from realorders.engine.backends.kafka_dlq import DeadLetter

_SETTLED = TERMINAL | {Status.BACKORDERED}

log = logging.getLogger("realorders.engine")


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as ``show`` presents it: its state (or queued submission) and its events."""

    state: OrderState | None
    submitted: Order | None
    events: list[Event]
    submitted_at: float | None = None

    @property
    def queued(self) -> bool:
        """Accepted by intake, not yet processed by the engine."""
        return self.state is None

    @property
    def status(self) -> Status:
        return Status.PENDING if self.state is None else self.state.status

    def to_dict(self) -> dict[str, Any]:
        if self.state is not None:
            data = order_dict(self.state)
        else:
            assert self.submitted is not None
            assert self.submitted_at is not None
            data = queued_order_dict(self.submitted, self.submitted_at)
        data["events"] = [event_dict(e) for e in self.events]
        return data


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


class Client:
    """A handle on one realorders store: a SQLite file, or Kafka + Redis (``backend="kafka"``).

    ``config`` carries every setting (see :func:`realorders.config.load_config`);
    ``db`` and ``backend``, when given, override it.
    """

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        backend: str | None = None,
        create: bool = True,
        config: Config | None = None,
    ) -> None:
        cfg = Config() if config is None else config
        changes: dict[str, Any] = {}
        if db is not None:
            changes["db"] = Path(db)
        if backend is not None:
            if backend not in BACKENDS:
                raise UsageError(
                    f"unknown backend {backend!r}: this version supports {', '.join(BACKENDS)}"
                )
            changes["backend"] = backend
        if changes:
            sources = {**cfg.sources, **dict.fromkeys(changes, "argument")}
            cfg = replace(cfg, **changes, sources=sources)
        self.config = cfg
        self.backend = self._open_backend(create=create)

    def _open_backend(self, *, create: bool) -> SqliteBackend:
        cfg = self.config
        if cfg.backend == "kafka":
            from realorders.engine.backends.kafka import KafkaBackend

            # Typed as the SQLite backend: the Client uses the same surface of either.
            return cast("SqliteBackend", KafkaBackend(cfg, create=create))
        return SqliteBackend(cfg.db, create=create)

    @property
    def scales_out(self) -> bool:
        """Whether several engines may run on this store at once (the distributed mode)."""
        return self.config.backend == "kafka"

    def where(self) -> str:
        """The store, as a person would name it in a message."""
        cfg = self.config
        if cfg.backend == "kafka":
            return (
                f"Kafka {cfg.kafka_bootstrap} (topics {cfg.kafka_topic_prefix}.*) and "
                f"Redis {redis_location(cfg.redis_url)} (prefix {cfg.redis_prefix})"
            )
        return str(cfg.db)

    def init_store(self) -> list[str]:
        """Create what the distributed store needs (idempotent); one line per step taken."""
        outcome = self.backend.init_store()  # type: ignore[attr-defined]
        lines = [f"topic {topic}: {what}" for topic, what in outcome.items()]
        lines.append(f"store ready on {self.where()}")
        return lines

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    # -- set-up and catalogue -------------------------------------------------

    def init(self, inventory: str | Path | None = None) -> tuple[int, int]:
        """Load catalogue and stock from a CSV or JSON inventory file.

        Opening the Client already created the store (idempotently). Returns
        (products added, products updated).
        """
        if inventory is None:
            return (0, 0)
        return self.load_inventory(read_inventory(str(inventory)))

    def load_inventory(self, rows: Sequence[ProductRow]) -> tuple[int, int]:
        """Upsert products and set their stock (refused while an engine runs)."""
        if self.backend.engine_running():
            raise RefusedError(
                "an engine is running on this database; stop it before "
                "loading an inventory file (or use `inventory set`)"
            )
        return self.backend.catalogue.load([(r.product_id, r.name, r.price, r.stock) for r in rows])

    def products(self) -> list[dict[str, Any]]:
        return self.backend.catalogue.list()

    def product(self, product_id: str) -> dict[str, Any]:
        return self.backend.catalogue.get(product_id)

    def add_product(self, product_id: str, name: str, price: float, stock: int = 0) -> None:
        if price < 0 or stock < 0:
            raise InputError("price and stock cannot be negative")
        if stock > MAX_STOCK:
            raise InputError(f"stock must be at most {MAX_STOCK:,}, got {stock}")
        if not self.backend.catalogue.add(product_id, name, price, stock):
            # back after a removal: its old stock row may be cached by a running engine
            self.backend.commands.append(
                CommandKind.SET_STOCK, None, {"product_id": product_id, "quantity": stock}
            )

    def update_product(
        self, product_id: str, *, name: str | None = None, price: float | None = None
    ) -> None:
        self.backend.catalogue.update(product_id, name, price)

    def remove_product(self, product_id: str) -> None:
        self.backend.catalogue.remove(product_id)

    # -- inventory ------------------------------------------------------------

    def levels(self) -> list[StockLevel]:
        return self.backend.orders.levels()

    def restock(self, product_id: str, quantity: int) -> int:
        """Queue a restock (the engine applies it and wakes backorders); returns its position."""
        self.product(product_id)
        if not 1 <= quantity <= MAX_STOCK:
            raise InputError(f"restock quantity must be from 1 to {MAX_STOCK:,}, got {quantity}")
        return self.backend.commands.append(
            CommandKind.RESTOCK, None, {"product_id": product_id, "quantity": quantity}
        )

    def set_stock(self, product_id: str, quantity: int) -> int:
        """Queue an absolute on-hand level; refused now if it is below what is reserved."""
        self.product(product_id)
        if not 0 <= quantity <= MAX_STOCK:
            raise InputError(f"stock must be from 0 to {MAX_STOCK:,}, got {quantity}")
        for level in self.levels():
            if level.product_id == product_id and quantity < level.reserved:
                raise RefusedError(
                    f"{product_id}: {level.reserved} units are reserved by open "
                    f"orders; on hand cannot go below that (asked {quantity})"
                )
        return self.backend.commands.append(
            CommandKind.SET_STOCK, None, {"product_id": product_id, "quantity": quantity}
        )

    # -- orders ---------------------------------------------------------------

    def submit(
        self,
        order: Order | None = None,
        *,
        customer_id: str | None = None,
        items: Sequence[LineItem] = (),
        order_id: str | None = None,
        notes: str | None = None,
    ) -> IntakeResult:
        """Append one order. The same order again is a no-op (outcome ``duplicate``)."""
        if order is None:
            if not customer_id:
                raise InputError("an order needs a customer")
            if not items:
                raise InputError("an order needs at least one item")
            order = Order(order_id or new_id(), customer_id, tuple(items), notes)
        try:  # the same rules every file obeys
            order = order_from_obj(order.to_dict(), "order", 1)
        except InputError as exc:
            raise InputError(exc.reason) from None
        (result,) = self.backend.commands.append_orders([order])
        if result.outcome is IntakeOutcome.CONFLICT:
            raise ConflictError(
                f"order {order.id!r} was already submitted with different "
                "content; the stored order is kept"
            )
        return result

    def submit_many(self, orders: Iterable[Order], *, chunk: int = 1000) -> list[IntakeResult]:
        """Append many orders, one transaction (or intake call) per ``chunk`` of them.

        Every order is checked before any is appended: a bad one raises
        ``InputError`` naming its index ("orders[3]: …") and nothing is kept.
        Duplicates and conflicts come back as outcomes, as for ``import``,
        instead of raising: the other orders of the batch are kept.
        """
        with fewer_collections():
            checked: list[Order] = []
            for index, order in enumerate(orders):
                try:
                    checked.append(order_from_obj(order.to_dict(), f"orders[{index}]", 0))
                except InputError as exc:
                    raise InputError(f"orders[{index}]: {exc.reason}") from None
            results: list[IntakeResult] = []
            for start in range(0, len(checked), chunk):
                results += self.backend.commands.append_orders(checked[start : start + chunk])
            return results

    def import_file(
        self, stream: BinaryIO, fmt: Format, source: str, **options: Any
    ) -> ImportReport:
        """Stream orders from a file; see :func:`realorders.importer.import_orders`."""
        return import_orders(self.backend, stream, fmt, source, **options)

    def snapshot(self) -> AbstractContextManager[None]:
        """``with shop.snapshot():`` — the reads inside see one consistent state."""
        return self.backend.snapshot()

    def get(self, order_id: str) -> OrderView:
        with self.snapshot():
            state = self.backend.orders.get(order_id)
            if state is not None:
                return OrderView(state, None, self.backend.events.history(order_id))
            submitted = self.backend.commands.submitted(order_id)
            if submitted is None:
                raise NotFoundError(f"no order {order_id!r}")
            return OrderView(None, submitted[0], [], submitted[1])

    def orders(
        self,
        *,
        status: Status | None = None,
        customer_id: str | None = None,
        limit: int | None = 100,
        id_prefix: str | None = None,
    ) -> list[OrderState]:
        """Orders the engine has processed, newest first."""
        return self.backend.orders.query(OrderFilter(status, customer_id, id_prefix, limit))

    def queued(
        self, limit: int = 100, customer_id: str | None = None, *, oldest_first: bool = False
    ) -> list[tuple[Order, int, float]]:
        """Submissions the engine has not processed yet, newest (or oldest) first."""
        return self.backend.commands.queued(
            self.backend.position(), limit, customer_id, oldest_first=oldest_first
        )

    def cancel(self, order_id: str, reason: str | None = None) -> int:
        """Queue a cancellation; refused now if the order is already past cancelling."""
        view = self.get(order_id)
        if view.status in (Status.REJECTED, Status.CANCELLED):
            raise RefusedError(f"order {order_id!r} is {view.status.value} already")
        if view.status not in CANCELLABLE:
            raise RefusedError(
                f"order {order_id!r} is {view.status.value}; only orders not yet shipped "
                "can be cancelled"
            )
        return self.backend.commands.append(CommandKind.CANCEL, order_id, {"reason": reason})

    def wait_processed(
        self, position: int, timeout: float | None = None, poll: float = 0.05
    ) -> bool:
        """Block until the engine has committed ``position``; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.backend.position() < position:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def wait(
        self,
        order_ids: Iterable[str],
        *,
        settled: bool = False,
        timeout: float | None = None,
        poll: float = 0.05,
    ) -> dict[str, OrderState]:
        """Block until every order is terminal (or, with ``settled``, terminal or backordered).

        Returns the states reached; on timeout, returns those reached so far.
        """
        waiting = set(order_ids)
        done: dict[str, OrderState] = {}
        targets = _SETTLED if settled else TERMINAL
        deadline = None if timeout is None else time.monotonic() + timeout
        while waiting:
            for order_id, state in self.backend.orders.get_many(list(waiting)).items():
                if state.status in targets:
                    done[order_id] = state
                    waiting.discard(order_id)
            if not waiting or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(poll)
        return done

    def watch(
        self,
        order_ids: Sequence[str] = (),
        *,
        status: Status | None = None,
        from_start: bool = False,
        until_done: bool = False,
        timeout: float | None = None,
        poll: float = 0.1,
    ) -> Iterator[tuple[int, Event]]:
        """Yield committed events as they land (cursor, event); see ``realorders watch``."""
        from realorders.watching import follow

        return follow(
            self,
            order_ids,
            status=status,
            from_start=from_start,
            until_done=until_done,
            timeout=timeout,
            poll=poll,
        )

    # -- the engine -----------------------------------------------------------

    def engine(self, *, delays: Delays | None = None, batch_size: int = 2000) -> Engine:
        return Engine(self.backend, delays=delays, batch_size=batch_size)

    def run(
        self,
        *,
        until_idle: bool = False,
        delays: Delays | None = None,
        batch_size: int = 2000,
        handle_signals: bool = True,
    ) -> EngineStats:
        """Run the engine in this thread until stopped (SIGINT/SIGTERM) or idle.

        In the distributed mode a lost broker or Redis pauses the engine: it logs
        one line, waits (1 s, doubling up to 30 s), reconnects and resumes from
        what Kafka committed, which is exactly what a restarted process would do.
        """
        if not self.scales_out:
            engine = self.engine(delays=delays, batch_size=batch_size)
            return asyncio.run(_run_engine(engine, until_idle, handle_signals))
        return asyncio.run(self._run_resilient(until_idle, delays, batch_size, handle_signals))

    async def _run_resilient(
        self, until_idle: bool, delays: Delays | None, batch_size: int, handle_signals: bool
    ) -> EngineStats:
        from realorders.engine.resilience import outage_reason

        total = EngineStats()
        stopping = asyncio.Event()
        backoff = 1.0
        while True:
            engine = self.engine(delays=delays, batch_size=batch_size)
            if handle_signals:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, _stopper(engine, stopping))
            try:
                stats = await engine.run(until_idle=until_idle)
                _add_stats(total, stats)
                return total
            except Exception as exc:
                reason = outage_reason(exc)
                if reason is None:
                    raise
                _add_stats(total, engine.stats)
            log.warning("engine paused: %s; retrying in %.0f s", reason, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff)
            if stopping.is_set():
                return total
            backoff = min(30.0, backoff * 2)
            with contextlib.suppress(Exception):
                self.backend.close()
            try:
                self.backend = self._open_backend(create=False)
            except Exception as exc:
                if outage_reason(exc) is None:
                    raise
            else:
                log.info("engine resuming on %s", self.where())

    def engine_info(self) -> EngineInfo:
        return self.backend.engine_info()

    def engine_running(self) -> bool:
        return self.backend.engine_running()

    def stats(self, window: float = 60.0) -> dict[str, Any]:
        data = self.backend.orders.stats(window)
        data["engine"] = {"running": self.engine_running(), "position": self.backend.position()}
        return data

    def check(self) -> CheckReport:
        return check(self.backend)

    # -- dead letters (distributed mode) ---------------------------------------

    def _dead_letter_store(self) -> Any:
        if not self.scales_out:
            raise UsageError(
                "dead letters exist in the distributed mode only (--backend kafka): "
                "the embedded mode refuses bad input at intake"
            )
        return self.backend

    def dead_letters(self) -> list[DeadLetter]:
        """Poison commands the engines set aside, oldest first."""
        letters: list[DeadLetter] = self._dead_letter_store().dead_letters()
        return letters

    def replay_dead_letter(self, offset: int, value: bytes | None = None) -> str:
        """Re-drive one dead letter (or a corrected ``value``) through normal intake.

        Refused when it is still not a command, or was replayed already. Returns
        what was done, in words.
        """
        from realorders.engine.backends.kafka_log import Poison, decode_command

        store = self._dead_letter_store()
        letter = next((d for d in store.dead_letters() if d.offset == offset), None)
        if letter is None:
            raise NotFoundError(f"no dead letter at offset {offset}")
        if letter.replayed:
            raise RefusedError(f"dead letter {offset} was replayed already")
        raw = letter.value if value is None else value
        try:
            command = decode_command(raw, 0, offset)
        except Poison as exc:
            raise InputError(f"dead letter {offset}: still not a command: {exc}") from None
        body = command.body
        if command.kind is CommandKind.SUBMIT:
            result = self.submit(Order.from_dict(body))
            done = f"order {result.order_id} {result.outcome.value}"
        elif command.kind is CommandKind.CANCEL:
            assert command.order_id is not None
            self.cancel(command.order_id, body.get("reason"))
            done = f"cancel of {command.order_id} queued"
        elif command.kind is CommandKind.RESTOCK:
            self.restock(body["product_id"], int(body["quantity"]))
            done = f"restock of {body['product_id']} queued"
        elif command.kind is CommandKind.SET_STOCK:
            self.set_stock(body["product_id"], int(body["quantity"]))
            done = f"stock of {body['product_id']} set"
        else:
            raise RefusedError(f"dead letter {offset}: a {command.kind.value} is not replayed")
        store.mark_replayed(offset)
        return done


async def _run_engine(engine: Engine, until_idle: bool, handle_signals: bool) -> EngineStats:
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, engine.stop)
    return await engine.run(until_idle=until_idle)


def _add_stats(total: EngineStats, part: EngineStats) -> None:
    total.batches += part.batches
    total.commands += part.commands
    total.events += part.events
    total.finished += part.finished


def _stopper(engine: Engine, stopping: asyncio.Event) -> Callable[[], None]:
    def stop() -> None:
        stopping.set()
        engine.stop()

    return stop
