"""What the dashboard shows, gathered through the read model and the event tail.

No Textual here: :class:`Feed` turns a store into immutable :class:`Frame`
objects that widgets only render, so the figures are testable without a
terminal and the app never waits on storage in its event loop.

Per tick the feed reads only what stays cheap at a million orders: the open
orders' counts (a partial index), one window of rows, stock levels, and the
events committed since the last tick. Terminal totals are counted once, then
advanced by the terminal events in the tail. The webhook figures (indexed
counts per endpoint) are read once a second at most.

The store is a :class:`~realorders.config.Config`, so the same feed watches a
SQLite file or the distributed mode (Kafka + Redis): it opens
``Client(config=..., create=False)`` and reads the ports both implement.
"""

from __future__ import annotations

import math
import shlex
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from realorders.client import Client, OrderView
from realorders.config import SETTINGS, Config, mask_url
from realorders.domain import TERMINAL, OrderState, Status, moving
from realorders.engine.ports import EngineInfo, percentile
from realorders.engine.resilience import outage_reason
from realorders.errors import RealordersError, ServiceUnavailableError, UsageError
from realorders.webhooks import WebhookFigures

from .frame import (
    DEFAULT_STUCK_AFTER,
    EngineState,
    Frame,
    OrderRow,
    StuckOrder,
    ViewFilter,
    parse_duration,
    parse_stuck_after,
)

__all__ = [
    "DEFAULT_STUCK_AFTER",
    "EngineState",
    "Feed",
    "Frame",
    "OrderRow",
    "StuckOrder",
    "ViewFilter",
    "cli_prefix",
    "parse_duration",
    "parse_stuck_after",
]

#: beyond this many new events in one tick, recount instead of reading them all
_MAX_TAIL = 60_000
_TAIL_PAGE = 10_000
#: terminal orders per tick whose latency is sampled
_LATENCY_SAMPLE = 400
_LATENCY_WINDOW = 60.0
_RATE_WINDOW = 3.0
#: seconds between two reads of the webhook figures: a backlog need not be fresher, and
#: on SQLite each count walks the endpoint's pending (or failed) index entries
_WEBHOOKS_EVERY = 1.0


def _row(state: OrderState) -> OrderRow:
    return OrderRow(
        state.id, state.customer_id, state.status, state.updated_at, state.total, state.arrival
    )


def _view_row(view: OrderView) -> OrderRow:
    if view.state is not None:
        return _row(view.state)
    return OrderRow(
        view.id, view.customer_id, Status.PENDING, view.since, None, view.arrival, queued=True
    )


def cli_prefix(config: Config) -> str | None:
    """The start of a command line that reaches the store ``config`` names.

    None for a SQLite file: the dashboard spells ``realorders --db PATH`` itself.
    For the distributed mode, ``realorders --backend kafka`` and the settings
    given as flags or in code; those from the environment or a config file
    reach the command the same way (``--config`` is repeated when a file was
    read). Secrets are never spelled, nor a Redis URL that carries a password
    (the CLI refuses one as a flag).
    """
    if not config.scales_out:
        return None
    words = ["realorders"]
    if config.config_file is not None:
        words += ["--config", str(config.config_file)]
    words += ["--backend", "kafka"]
    for setting in SETTINGS:
        if setting.flag is None or setting.name in ("backend", "db"):
            continue
        if config.source_of(setting.name) not in ("flag", "argument"):
            continue
        value = getattr(config, setting.name)  # not the seam: SETTINGS names Config's fields
        if value is None or (setting.name == "redis_url" and mask_url(value) != value):
            continue
        words += [setting.flag, str(value)]
    return shlex.join(words)


def _reason(exc: Exception, services: bool) -> str:
    """One line saying why the store cannot be read."""
    if isinstance(exc, RealordersError):
        return str(exc)
    # a lost broker or Redis, in the engine's own words (a file store has neither)
    outage = outage_reason(exc) if services else None
    return outage if outage is not None else f"cannot read it: {exc}"


class Feed:
    """Gathers frames from one store; open it in the thread that polls it.

    ``store`` is a :class:`~realorders.config.Config` (a SQLite file or Kafka +
    Redis) or, for short, the path of a SQLite file.
    """

    def __init__(
        self,
        store: Config | str | Path,
        *,
        window: int = 100,
        stuck_after: dict[Status, float] | None = None,
        history: int = 120,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = store if isinstance(store, Config) else Config(db=Path(store))
        #: the SQLite file watched (its replacement is noticed); None for Kafka + Redis
        self.db: Path | None = None if self.config.scales_out else self.config.db
        self.cli = cli_prefix(self.config)
        self.store = self.config.where()
        self.window = window
        self.stuck_after = stuck_after or dict(DEFAULT_STUCK_AFTER)
        self.filter = ViewFilter()
        self._clock = clock
        self._client: Client | None = None
        self._identity: int | None = None  # inode of the open file
        self._cursor = 0
        self._terminal: dict[str, int] | None = None
        self._finished = 0  # terminal events seen since the feed started
        self._rates: deque[tuple[float, int, int]] = deque()  # (at, head, finished)
        self._latencies: deque[tuple[float, float]] = deque(maxlen=20_000)
        # seconds before the feed started show as 0: the time axis stays fixed
        self._history: deque[float] = deque([0.0] * history, maxlen=history)
        self._second: tuple[int, int] | None = None  # (whole second, finished at its start)
        self._webhooks: tuple[WebhookFigures, ...] = ()
        self._webhooks_at = -math.inf  # when they were read

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._webhooks_at = -math.inf  # whatever opens next is read at once

    def client(self) -> Client:
        """The open store, for actions (cancel, restock) taken from the dashboard."""
        identity = None
        if self.db is not None:
            try:
                identity = self.db.stat().st_ino
            except OSError:
                raise RealordersError(f"no database at {self.db} yet") from None
            if self._client is not None and identity != self._identity:
                self.close()  # the file was replaced (a new demo, a restore): start over
                self._terminal = None
        if self._client is None:
            client = Client(config=self.config, create=False)  # PINGs Redis
            try:  # kafka-python would take 30 s to say the broker is gone; this, one round trip
                client.probe()
            except Exception:
                client.close()
                raise
            self._client = client
            self._identity = identity
            self.store = client.where()
        return self._client

    def poll(self) -> Frame:
        """One frame; a store that cannot be read gives an 'unreachable' frame, not an error."""
        now = self._clock()
        opening = self._client is None
        try:
            client = self.client()
            opening = False
            return self._gather(client, now)
        except Exception as exc:  # a live view reports and retries; it never dies
            self.close()
            self._terminal = None
            return self._unreachable(now, exc, opening)

    def _unreachable(self, now: float, exc: Exception, opening: bool) -> Frame:
        reason = _reason(exc, services=self.db is None)
        if self.db is not None:
            hint = " — create it with `realorders init`" if not self.db.exists() else ""
            return Frame(now, str(self.db), EngineState.UNREACHABLE, problem=f"{reason}{hint}")
        # Redis answered but holds no store under the prefix: `init` is what to run
        missing = (
            opening
            and isinstance(exc, RealordersError)
            and not isinstance(exc, ServiceUnavailableError | UsageError)
        )
        return Frame(
            now,
            self.store,
            EngineState.UNREACHABLE,
            problem=reason,
            cli=self.cli,
            missing=missing,
        )

    def _gather(self, client: Client, now: float) -> Frame:
        backend = client.backend
        engines = client.engine_count()  # None: one engine at most (SQLite's engine lock)
        running = engines > 0 if engines is not None else client.engine_running()
        with client.snapshot():
            info = client.engine_info()
            self._advance(client)
            counts = backend.orders.open_counts() | dict(self._terminal or {})
            orders = self._orders(client, info)
            levels = tuple(backend.orders.levels())
            stuck, stuck_more = self._stuck(client, now, info)
            newest = backend.events.tail(self._cursor - 1, 1) if self._cursor else []
            if not now - _WEBHOOKS_EVERY < self._webhooks_at <= now:
                self._webhooks = tuple(client.webhook_figures())
                self._webhooks_at = now
        self._rates.append((now, self._cursor, self._finished))
        while len(self._rates) > 2 and now - self._rates[1][0] >= _RATE_WINDOW:
            self._rates.popleft()
        first = self._rates[0]
        span = now - first[0]
        events_rate = (self._cursor - first[1]) / span if span > 0 else 0.0
        orders_rate = (self._finished - first[2]) / span if span > 0 else 0.0
        self._sample_history(now)
        while self._latencies and self._latencies[0][0] < now - _LATENCY_WINDOW:
            self._latencies.popleft()
        latencies = sorted(latency for _, latency in self._latencies)
        backlog = info.backlog
        if not running:
            engine = EngineState.STOPPED
        elif backlog or moving(counts) or events_rate > 0:
            engine = EngineState.RUNNING
        else:
            engine = EngineState.IDLE
        return Frame(
            taken_at=now,
            store=self.store,
            engine=engine,
            engine_pid=info.pid if running else None,
            backlog=backlog,
            counts=counts,
            orders_per_second=orders_rate,
            events_per_second=events_rate,
            latency_p50=percentile(latencies, 0.50),
            latency_p95=percentile(latencies, 0.95),
            throughput=tuple(self._history),
            orders=orders,
            levels=levels,
            stuck=stuck,
            stuck_more=stuck_more,
            head=self._cursor,
            newest_event_at=newest[0][1].at if newest else None,
            engines=(1 if running else 0) if engines is None else engines,
            cli=self.cli,
            webhooks=self._webhooks,
        )

    def _advance(self, client: Client) -> None:
        """Count terminal events since the last tick; recount when too far behind."""
        events = client.backend.events
        head = events.head()
        if self._terminal is None or head - self._cursor > _MAX_TAIL or head < self._cursor:
            before = sum(self._terminal.values()) if self._terminal is not None else None
            counts = client.backend.orders.counts()
            self._terminal = {s.value: counts[s.value] for s in TERMINAL}
            if before is not None:
                self._finished += max(0, sum(self._terminal.values()) - before)
            if before is None or head < self._cursor:
                self._rates.clear()  # another store (or a replaced file): no rate across it
            self._cursor = head
            return
        finished: list[str] = []
        while self._cursor < head:
            page = events.tail(self._cursor, _TAIL_PAGE)
            if not page:
                break
            for _, event in page:
                if event.status in TERMINAL:
                    self._terminal[event.status.value] += 1
                    finished.append(event.order_id)
            self._cursor = page[-1][0]
        self._finished += len(finished)
        if finished:
            sample = finished[-_LATENCY_SAMPLE:]
            for state in client.backend.orders.get_many(sample).values():
                if state.terminal_at is not None:
                    self._latencies.append(
                        (state.terminal_at, state.terminal_at - state.created_at)
                    )

    def _sample_history(self, now: float) -> None:
        """One point per whole second: orders finished during it."""
        second = int(now)
        if self._second is None:
            self._second = (second, self._finished)
            return
        start, finished_then = self._second
        if second > start:
            rate = (self._finished - finished_then) / (second - start)
            self._history.extend([rate] * min(second - start, self._history.maxlen or 1))
            self._second = (second, self._finished)

    def _orders(self, client: Client, info: EngineInfo) -> tuple[OrderRow, ...]:
        """The window of the orders table; ``word`` searches customers and id prefixes."""
        flt, limit = self.filter, self.window
        searches = (
            [(flt.word, flt.id_prefix), (flt.customer_id, flt.word)]
            if flt.word
            else [(flt.customer_id, flt.id_prefix)]
        )
        found: dict[str, OrderRow] = {}
        for customer, prefix in searches:
            for view in client.list_orders(
                status=flt.status,
                customer_id=customer,
                id_prefix=prefix,
                limit=limit,
                engine_position=info.position,
            ):
                found.setdefault(view.id, _view_row(view))
        rows = sorted(found.values(), key=lambda r: r.arrival, reverse=True)
        return tuple(rows[:limit])

    def _stuck(
        self, client: Client, now: float, info: EngineInfo
    ) -> tuple[tuple[StuckOrder, ...], bool]:
        """Longest waiting first, and whether there are more than the window holds."""
        limit = self.window + 1
        stuck = [
            StuckOrder(_row(state), threshold)
            for status, threshold in self.stuck_after.items()
            for state in client.backend.orders.stale(status, now - threshold, limit)
        ]
        # submissions no engine has reached are pending too, the longest of all
        waited = self.stuck_after.get(Status.PENDING)
        if waited is not None:
            queued = client.backend.commands.queued(info.position, limit, oldest_first=True)
            for order, position, at in queued:
                if at >= now - waited:
                    break
                row = OrderRow(
                    order.id, order.customer_id, Status.PENDING, at, None, position, queued=True
                )
                stuck.append(StuckOrder(row, waited))
        stuck.sort(key=lambda s: s.row.since)
        return tuple(stuck[: self.window]), len(stuck) > self.window
