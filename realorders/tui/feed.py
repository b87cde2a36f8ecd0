"""What the dashboard shows, gathered through the read model and the event tail.

No Textual here: :class:`Feed` turns a store into immutable :class:`Frame`
objects that widgets only render, so the figures are testable without a
terminal and the app never waits on storage in its event loop.

Per tick the feed reads only what stays cheap at a million orders: the open
orders' counts (a partial index), one window of rows, stock levels, and the
events committed since the last tick. Terminal totals are counted once, then
advanced by the terminal events in the tail.

The store is a :class:`~realorders.config.Config`, so the same feed watches a
SQLite file or the distributed mode (Kafka + Redis): it opens
``Client(config=..., create=False)`` and reads the ports both implement.
"""

from __future__ import annotations

import shlex
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from realorders.client import Client
from realorders.config import SETTINGS, Config, mask_url
from realorders.domain import TERMINAL, OrderState, Status
from realorders.engine.backends.connect import probe_kafka, redis_location
from realorders.engine.ports import EngineInfo, OrderFilter, StockLevel, percentile
from realorders.engine.resilience import outage_reason
from realorders.errors import RealordersError, ServiceUnavailableError, UsageError

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

#: seconds an order may sit in a state before the dashboard calls it stuck
DEFAULT_STUCK_AFTER: dict[Status, float] = {
    Status.PENDING: 10.0,
    Status.RESERVED: 60.0,
    Status.PACKED: 120.0,
    Status.SHIPPED: 600.0,
    Status.BACKORDERED: 900.0,
}
#: beyond this many new events in one tick, recount instead of reading them all
_MAX_TAIL = 60_000
_TAIL_PAGE = 10_000
#: terminal orders per tick whose latency is sampled
_LATENCY_SAMPLE = 400
_LATENCY_WINDOW = 60.0
_RATE_WINDOW = 3.0
#: states an engine moves on by itself (fulfilment timers)
_TIMED = (Status.PENDING, Status.RESERVED, Status.PACKED, Status.SHIPPED)
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


def _row(state: OrderState) -> OrderRow:
    return OrderRow(
        state.id, state.customer_id, state.status, state.updated_at, state.total, state.arrival
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
    if config.backend != "kafka":
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
        value = getattr(config, setting.name)
        if value is None or (setting.name == "redis_url" and mask_url(value) != value):
            continue
        words += [setting.flag, str(value)]
    return shlex.join(words)


def _where(config: Config) -> str:
    """The store as :meth:`Client.where` names it, before one could be opened."""
    if config.backend != "kafka":
        return str(config.db)
    return (
        f"Kafka {config.kafka_bootstrap} (topics {config.kafka_topic_prefix}.*) and "
        f"Redis {redis_location(config.redis_url)} (prefix {config.redis_prefix})"
    )


def _engine_count(client: Client) -> int | None:
    """Engines with a fresh heartbeat, from a backend that can count them cheaply.

    Only the distributed mode runs several; a backend without ``engine_count``
    (SQLite: one engine lock) gives None and the feed asks ``engine_running``.
    """
    count = getattr(client.backend, "engine_count", None)
    return None if count is None else int(count())


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
        self.db: Path | None = None if self.config.backend == "kafka" else self.config.db
        self.cli = cli_prefix(self.config)
        self.store = _where(self.config)
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

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

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
            if self.db is None:
                try:  # kafka-python would take 30 s to say the broker is gone; this, one round trip
                    probe_kafka(self.config)
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
        engines = _engine_count(client)
        running = engines > 0 if engines is not None else client.engine_running()
        with client.snapshot():
            info = client.engine_info()
            self._advance(client)
            counts = backend.orders.open_counts() | dict(self._terminal or {})
            orders = self._orders(client, info)
            levels = tuple(backend.orders.levels())
            stuck, stuck_more = self._stuck(client, now, info)
            newest = backend.events.tail(self._cursor - 1, 1) if self._cursor else []
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
        moving = sum(counts.get(s.value, 0) for s in _TIMED)
        if not running:
            engine = EngineState.STOPPED
        elif backlog or moving or events_rate > 0:
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
        flt, limit = self.filter, self.window
        found: dict[str, OrderRow] = {}
        if flt.status in (None, Status.PENDING):
            queued = client.backend.commands.queued(info.position, limit, flt.customer_id)
            for order, position, at in queued:
                if flt.id_prefix and not order.id.startswith(flt.id_prefix):
                    continue
                if flt.word and not (
                    order.id.startswith(flt.word) or order.customer_id == flt.word
                ):
                    continue
                found[order.id] = OrderRow(
                    order.id, order.customer_id, Status.PENDING, at, None, position, queued=True
                )
        searches = (
            [(flt.word, flt.id_prefix), (flt.customer_id, flt.word)]
            if flt.word
            else [(flt.customer_id, flt.id_prefix)]
        )
        for customer, prefix in searches:
            for state in client.backend.orders.query(
                OrderFilter(flt.status, customer, prefix, limit)
            ):
                found.setdefault(state.id, _row(state))
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
