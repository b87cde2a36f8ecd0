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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from realorders import watching
from realorders._deadletters import DeadLetterMixin
from realorders._gc import fewer_collections
from realorders._stock import StockMixin
from realorders._tokens import TokenMixin
from realorders._webhooks import WebhookMixin
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
from realorders.errors import ConflictError, NotFoundError, RefusedError, UsageError
from realorders.importer import ImportReport, checked_orders, import_orders, new_order
from realorders.intake import Format
from realorders.views import OrderView, event_dict, order_dict, queued_order_dict

__all__ = ["BACKENDS", "Client", "OrderView", "event_dict", "order_dict", "queued_order_dict"]

#: queued submissions read at a time while an id prefix filters them in Python
_PREFIX_CHUNK = 500


class Client(StockMixin, DeadLetterMixin, TokenMixin, WebhookMixin):
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

    def submit_from_source(
        self, orders: Sequence[Order], source: str, offsets: Mapping[str, int]
    ) -> list[IntakeResult]:
        """Append orders read from an outside log with how far it has been read
        (see ``CommandLog.append_from_source``): a crash neither loses nor doubles one.

        Orders must already be checked (as :func:`realorders.intake.order_from_obj` does).
        """
        with fewer_collections():
            return self.backend.commands.append_from_source(orders, source, offsets)

    def taken_from_source(self, order_ids: Sequence[str]) -> set[str]:
        """Those of ``order_ids`` that came in through :meth:`submit_from_source`."""
        return self.backend.commands.taken_from_source(order_ids)

    def source_offsets(self, source: str) -> dict[str, int]:
        """Where :meth:`submit_from_source` left ``source`` (part -> next offset)."""
        return self.backend.commands.source_offsets(source)

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

    def statuses(self, order_ids: Iterable[str]) -> dict[str, Status]:
        """The status of each processed order among ``order_ids`` (queued ones are absent)."""
        return {oid: s.status for oid, s in self.backend.orders.get_many(order_ids).items()}

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
        """What ``list`` shows: queued submissions (as pending) and processed orders, newest
        first (the first page of :meth:`page_orders`). On SQLite every queued submission is
        newer than every processed order, so the queued ones come first. Call inside
        :meth:`snapshot` for one consistent moment; a caller that has just read
        ``engine_info()`` passes its position, saving a read."""
        if limit < 1:
            return []
        return self._newest(status, customer_id, id_prefix, limit, None, engine_position)

    def page_orders(
        self,
        *,
        status: Status | None = None,
        customer_id: str | None = None,
        id_prefix: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> tuple[list[OrderView], int | None]:
        """One page of :meth:`list_orders`: up to ``limit`` orders whose arrival is below
        ``before`` (None: from the newest), newest first, and the ``before`` of the next
        page (None when there is no more).

        Paging from the first page to the end never skips an order that existed when
        it started, nor shows one twice, however many orders arrive and move meanwhile:

        - the cursor is an ``arrival`` (the command position of the submission: fixed,
          never reused), not an offset. A page holds only arrivals below the previous
          page's last, so no order is on two pages, and new orders (higher positions)
          never push older ones across a page boundary;
        - within a page an order is a queued submission or a processed order, and the
          engine turns the first into the second at any moment, never back. The queued
          submissions are read first and the processed orders second: an order the engine
          reaches in between is in both reads and kept once (as processed); it cannot be
          in neither. (SQLite reads both in one transaction anyway; on Kafka + Redis the
          projection takes a submission off the queue in the script that adds its order.)
        - each source is read for ``limit + 1``, so the merge knows whether older orders
          remain; the next cursor is the arrival of the page's last order.

        ``status`` as in :meth:`list_orders` (queued submissions are ``pending``; another
        status lists processed orders only). With a status, an order may enter or leave
        it between two pages: then only the order by arrival is guaranteed.
        """
        if limit < 1:
            raise UsageError(f"limit must be at least 1, not {limit}")
        views = self._newest(status, customer_id, id_prefix, limit + 1, before, None)
        if len(views) <= limit:
            return views, None
        del views[limit:]
        return views, views[-1].arrival

    def _newest(
        self,
        status: Status | None,
        customer_id: str | None,
        id_prefix: str | None,
        count: int,
        before: int | None,
        engine_position: int | None,
    ) -> list[OrderView]:
        """Up to ``count`` orders below arrival ``before``, newest first: queued then processed
        reads merged (see :meth:`page_orders` for why in this order)."""
        views: dict[str, OrderView] = {}
        with self.snapshot():
            if status in (None, Status.PENDING):
                after = self._queued_after(engine_position)
                for view in self._queued_views(after, count, customer_id, id_prefix, before):
                    views[view.id] = view
            flt = OrderFilter(status, customer_id, id_prefix, count, before_arrival=before)
            for state in self.backend.orders.query(flt):
                views[state.id] = OrderView(state, None, [])  # processed meanwhile: this wins
        return sorted(views.values(), key=lambda v: v.arrival, reverse=True)[:count]

    def _queued_after(self, engine_position: int | None) -> int:
        """The position at and below which no submission is still queued.

        On SQLite, the engine's position: it commits each batch with its orders. Where
        several engines share the store, partitions are processed out of position order
        and the position (head minus lag) drops before a batch's orders are projected:
        there the queue holds exactly the unprojected submissions, so no bound (0).
        """
        if self.scales_out:
            return 0
        return self.backend.position() if engine_position is None else engine_position

    def _queued_views(
        self,
        after: int,
        count: int,
        customer_id: str | None,
        id_prefix: str | None,
        before: int | None,
    ) -> list[OrderView]:
        """Up to ``count`` queued submissions below ``before``, newest first, as views."""
        chunk = count if id_prefix is None else max(count, _PREFIX_CHUNK)
        views: list[OrderView] = []
        while True:
            queued = self.backend.commands.queued(after, chunk, customer_id, before=before)
            views += [
                OrderView(None, order, [], at, position)
                for order, position, at in queued
                if id_prefix is None or order.id.startswith(id_prefix)
            ]
            if len(views) >= count or len(queued) < chunk:
                return views[:count]
            before = queued[-1][1]

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
        """The read model's figures, the engine's state and the webhook deliveries' totals."""
        data = self.backend.orders.stats(window)
        data["engine"] = {"running": self.engine_running(), "position": self.backend.position()}
        data["webhooks"] = self.webhook_totals().to_dict()
        return data

    def check(self) -> CheckReport:
        return check(self.backend)
