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
with one running engine. Every rule a front needs (what may be cancelled,
which prices are valid, when an import has settled) is decided here, once,
for the CLI, the dashboard and the HTTP server alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from realorders import watching
from realorders._deadletters import DeadLetterMixin
from realorders._gc import fewer_collections
from realorders._stock import StockMixin
from realorders.check import CheckReport, check
from realorders.config import BACKENDS, Config
from realorders.domain import (
    CANCELLABLE,
    Event,
    LineItem,
    Order,
    OrderState,
    Status,
)
from realorders.engine import Delays, Engine, EngineStats
from realorders.engine.backends import open_backend
from realorders.engine.capabilities import (
    EngineRegistry,
    ServiceProbe,
)
from realorders.engine.ports import (
    CommandKind,
    EngineInfo,
    IntakeOutcome,
    IntakeResult,
    OrderFilter,
)
from realorders.engine.supervisor import Supervisor
from realorders.errors import ConflictError, NotFoundError, RefusedError
from realorders.importer import ImportReport, checked_orders, import_orders, new_order
from realorders.intake import Format
from realorders.views import OrderView, event_dict, order_dict, queued_order_dict

__all__ = ["BACKENDS", "Client", "OrderView", "event_dict", "order_dict", "queued_order_dict"]


class Client(StockMixin, DeadLetterMixin):
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
        self.config = cfg.overridden(db=db, backend=backend)
        self.backend = open_backend(self.config, create=create)

    @property
    def scales_out(self) -> bool:
        """Whether several engines may run on this store at once (the distributed mode)."""
        return self.config.scales_out

    def where(self) -> str:
        """The store, as a person would name it in a message."""
        return self.config.where()

    def init_store(self) -> list[str]:
        """Create what the store needs (idempotent); one line per step taken."""
        return self.backend.init_store()

    def probe(self) -> None:
        """Fail now (ServiceUnavailableError) if a service behind the store is gone."""
        if isinstance(self.backend, ServiceProbe):
            self.backend.probe()

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
            order = new_order(customer_id, items, order_id, notes)
        (order,) = checked_orders([order], "order")  # the same rules every file obeys
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
            checked = checked_orders(orders, "orders[{}]")
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

    def list_orders(
        self,
        *,
        status: Status | None = None,
        customer_id: str | None = None,
        id_prefix: str | None = None,
        limit: int = 100,
        engine_position: int | None = None,
    ) -> list[OrderView]:
        """What ``list`` shows: queued submissions (as pending) first, then processed, newest
        first. Call inside :meth:`snapshot` for one consistent moment; a caller that has
        just read ``engine_info()`` passes its position, saving a read."""
        views: list[OrderView] = []
        if status in (None, Status.PENDING):
            after = self.backend.position() if engine_position is None else engine_position
            for order, position, at in self.backend.commands.queued(after, limit, customer_id):
                if id_prefix is None or order.id.startswith(id_prefix):
                    views.append(OrderView(None, order, [], at, position))
        remaining = limit - len(views)
        if remaining > 0:
            processed = self.orders(
                status=status, customer_id=customer_id, limit=remaining, id_prefix=id_prefix
            )
            views += [OrderView(state, None, []) for state in processed]
        return views

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

    # -- waiting and following ------------------------------------------------

    def wait_processed(
        self, position: int, timeout: float | None = None, poll: float = 0.05
    ) -> bool:
        """Block until the engine has committed ``position``; False on timeout."""
        return watching.wait_processed(self.backend, position, timeout, poll)

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
        return watching.wait_orders(self.backend, order_ids, settled, timeout, poll)

    def wait_imported(
        self, report: ImportReport, timeout: float | None = None, poll: float = 0.2
    ) -> dict[str, int] | None:
        """Block until every order an import accepted has settled (terminal or backordered).

        Returns orders per status among them; None on timeout.
        """
        return watching.wait_imported(
            self.backend, report.positions, report.accepted, timeout, poll
        )

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
        return watching.follow(
            self.backend,
            order_ids,
            status=status,
            from_start=from_start,
            until_done=until_done,
            timeout=timeout,
            poll=poll,
        )

    def events(self, after: int, limit: int = 1000) -> list[tuple[int, Event]]:
        """Committed events after a cursor (0: the first), with their cursors."""
        return self.backend.events.tail(after, limit)

    def head(self) -> int:
        """The cursor of the newest committed event."""
        return self.backend.events.head()

    def counts(self) -> dict[str, int]:
        """Orders per status, every status a key."""
        return self.backend.orders.counts()

    # -- the engine -----------------------------------------------------------

    def engine(
        self,
        *,
        delays: Delays | None = None,
        batch_size: int = 2000,
        poll_interval: float = 0.05,
        report_interval: float = 5.0,
    ) -> Engine:
        """An engine on this store, to run on an asyncio loop of the caller's."""
        return Engine(
            self.backend,
            delays=delays,
            batch_size=batch_size,
            poll_interval=poll_interval,
            report_interval=report_interval,
        )

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
        what Kafka committed (see :mod:`realorders.engine.supervisor`).
        """
        reopen = (lambda: open_backend(self.config)) if self.scales_out else None
        supervisor = Supervisor(self.backend, reopen=reopen, where=self.where())
        try:
            return supervisor.run(
                until_idle=until_idle,
                delays=delays,
                batch_size=batch_size,
                handle_signals=handle_signals,
            )
        finally:
            self.backend = supervisor.backend

    def engine_info(self) -> EngineInfo:
        return self.backend.engine_info()

    def engine_running(self) -> bool:
        return self.backend.engine_running()

    def engine_count(self) -> int | None:
        """Engines with a fresh heartbeat where several may run; None on a one-engine store."""
        if isinstance(self.backend, EngineRegistry):
            return self.backend.engine_count()
        return None

    def quiet(self) -> bool:
        """Nothing left for an engine to move: no backlog, no order in a ``MOVING`` state."""
        return watching.quiet(self.backend)

    def stats(self, window: float = 60.0) -> dict[str, Any]:
        data = self.backend.orders.stats(window)
        data["engine"] = {"running": self.engine_running(), "position": self.backend.position()}
        return data

    def check(self) -> CheckReport:
        return check(self.backend)
