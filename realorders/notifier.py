"""The deliverer: reads the event log, fills the outbox of deliveries and sends them.

A library class that ``realorders notify`` runs in the foreground; tests
drive it with :meth:`Notifier.step`. The rules (who wants an event, the
message, the signature, what an answer means, when to retry) are those of
:mod:`realorders.delivery`; this module is their I/O loop.

- **Scan.** Events after the store's scan cursor, a page at a time: each event
  becomes a pending delivery for every enabled endpoint that wants it, and the
  page is enqueued atomically with the new cursor. An endpoint added later
  gets events from the scan cursor on (no replay of history).
- **Dispatch.** Due deliveries are *claimed* for a hold (``due(hold=…)``), so
  none is handed out twice while it is on its way, by this deliverer or
  another; the store hands out only an order's lowest pending ``seq`` per
  endpoint, so each order's changes arrive in order. Each endpoint has a lane:
  ``concurrency`` requests at a time over keep-alive connections
  (:mod:`realorders.webhook_http`) and a bounded number claimed, so a slow
  receiver holds back only itself. A claim that waited a whole request timeout
  for its turn is not sent: the hold could end during the request.
- **Outcome.** Recorded as soon as it is known (:func:`~realorders.delivery.outcome`),
  with those that came back meanwhile (one write for many):
  2xx delivered, 410 failed and the endpoint disabled, else a retry on the
  schedule, or failed once it is spent. A delivered one wakes the loop: the
  order's next event is due at once.
- **Crash safety.** The outbox is the state: a ``kill -9`` loses nothing, and
  what was in flight goes out again (same ``webhook-id``) when its hold ends.

Any number of deliverers may run on one store and share the sending: each
claims what it sends, so none is sent by two unless one dies holding it (then
again when the hold ends, with the same ``webhook-id``). One of them, holding
the scanner's lease (renewed while it runs; a holder on this host whose process
is gone is taken over at once, one elsewhere when its lease ends), fills the
outbox: enqueueing is idempotent, one scanner only saves the others the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import aiohttp

from realorders import __version__
from realorders.client import Client
from realorders.deliveries import Delivery, DeliveryStatus, Recorded
from realorders.delivery import Attempt, encode, message, outcome, sign
from realorders.notify_lease import LEASE_TTL, new_owner, take_scanning
from realorders.outbox_scan import OrderCache, scan
from realorders.webhook_http import Lane, open_session, post
from realorders.webhooks import WebhookEndpoint, WebhookSecrets

__all__ = ["Notifier", "NotifierOptions", "NotifierStats"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_NOT_YET = 1.0  # seconds before a delivery whose order's history lags is tried again
ROUND_GAP = 0.01  # seconds at least between two rounds (a tenth of the lag asked for)
_ENDPOINTS_TTL = 1.0  # seconds an endpoint's record and secrets are used before a new read
STOP_GRACE = 5.0  # seconds a stopping deliverer waits for the requests on their way


@dataclass(frozen=True, slots=True)
class NotifierOptions:
    #: multiplies the retry delays (tests and demos: a small fraction)
    time_scale: float = 1.0
    #: requests in flight per endpoint at most
    concurrency: int = 16
    #: seconds per request (connect, read, write)
    timeout: float = 15.0
    #: seconds between rounds when nothing wakes the loop
    poll: float = 0.2
    #: deliveries claimed and not yet settled, over all endpoints
    budget: int = 1000


@dataclass(slots=True)
class NotifierStats:
    enqueued: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    disabled: list[str] = field(default_factory=list)


class Notifier:
    """Delivers the event log's changes to the webhook endpoints of ``client``'s store."""

    def __init__(
        self,
        client: Client,
        options: NotifierOptions | None = None,
        *,
        on_failure: Callable[[Delivery, Attempt], None] | None = None,
    ) -> None:
        self.client = client
        self.options = options or NotifierOptions()
        self.stats = NotifierStats()
        self.on_failure = on_failure
        self.owner = new_owner()
        #: whether this deliverer fills the outbox (holds the scanner's lease); all send
        self.scanning = True  # step() (tests, one deliverer) scans; run() takes the lease
        # a claim outlives its wait for a slot (a timeout at most: later, it is not sent)
        # and a request that times out, with room for the outcome's write
        self._hold = 2 * self.options.timeout + 5.0
        self._orders = OrderCache(client)
        self._http: aiohttp.ClientSession | None = None
        self._lanes: dict[str, Lane] = {}
        self._in_flight: set[tuple[str, str, int]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._endpoints_read: (
            tuple[float, dict[str, tuple[WebhookEndpoint, WebhookSecrets]]] | None
        ) = None
        self._outcomes: list[tuple[Recorded, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # the store's connection serves one thread at a time: every store call goes here
        self._store = ThreadPoolExecutor(1, thread_name_prefix="notify-store")

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._store, partial(fn, *args, **kwargs))

    # -- the loop ---------------------------------------------------------------

    async def run(
        self,
        stop: asyncio.Event,
        *,
        started: Callable[[], None] | None = None,
        finish: asyncio.Event | None = None,
    ) -> NotifierStats:
        """Send (and scan, if no other deliverer does) until ``stop`` is set, or, once
        ``finish`` is set, until nothing more is due now (``run --until-idle --notify``:
        retries due later stay in the outbox). ``started``: called once the scanner's
        lease is taken or found held."""
        finish = finish or asyncio.Event()
        try:
            async with self._leased(stop), self._client():
                if started is not None:
                    started()
                while not stop.is_set():
                    if not await self._round():
                        if finish.is_set() and not self._tasks:
                            break
                        self._wake.clear()
                        await _first(stop.wait(), self._wake.wait(), timeout=self.options.poll)
                    await asyncio.sleep(ROUND_GAP)  # outcomes gather: fewer, larger rounds
                await self._settle_in_flight(grace=min(self.options.timeout, STOP_GRACE))
        finally:
            self.close()
        return self.stats

    def close(self) -> None:
        """Let go of the store's worker thread (a later step starts a new one)."""
        self._store.shutdown(wait=True)
        self._store = ThreadPoolExecutor(1, thread_name_prefix="notify-store")

    async def step(self) -> int:
        """One round, waiting for what it sent: enqueue new events, send what is due.
        Returns how many events and deliveries it handled."""
        if self._http is None:
            async with self._client():
                return await self.step()
        done = await self._round()
        await self._settle_in_flight()
        return done

    async def _round(self) -> int:
        enqueued = await self._db(self.scan) if self.scanning else 0
        return enqueued + await self._dispatch()

    async def _settle_in_flight(self, grace: float | None = None) -> None:
        """Wait for the requests on their way (at most ``grace`` seconds: those still
        going then are cancelled, and their claims end by themselves)."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[aiohttp.ClientSession]:
        async with open_session(self.options.timeout) as http:
            self._http = http
            self._lanes = {}  # their semaphores belong to this event loop
            self._wake = asyncio.Event()
            try:
                yield http
            finally:
                self._http = None

    def scan(self) -> int:
        """Enqueue what the events after the scan cursor owe; returns how many events."""
        events, new = scan(self.client, self._orders, time.time())
        self.stats.enqueued += new
        return events

    # -- dispatch -----------------------------------------------------------------

    async def _dispatch(self) -> int:
        """Claim what is due, as much as the lanes have room for, and start sending it;
        returns how many."""
        enabled = await self._enabled()
        room = min(
            self.options.budget - len(self._in_flight),
            sum(self._lane(endpoint_id).room() for endpoint_id in enabled),
        )
        if room <= 0:
            return 0
        now = time.time()
        due = await self._db(self.client.backend.deliveries.due, now, room, hold=self._hold)
        if not due:
            return 0
        now = time.time()
        endpoints = {e: (record[0], record[1].valid(now)) for e, record in enabled.items()}
        started = 0
        for delivery in due:
            found = endpoints.get(delivery.endpoint_id)
            if found is None or delivery.key in self._in_flight:
                continue  # disabled or removed meanwhile, or still on its way: claim kept
            lane = self._lane(delivery.endpoint_id)
            if lane.room() <= 0:
                continue  # more than its receiver takes: due again when the hold ends
            lane.claimed += 1
            self._in_flight.add(delivery.key)
            task = asyncio.get_running_loop().create_task(self._deliver(lane, *found, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    def _lane(self, endpoint_id: str) -> Lane:
        lane = self._lanes.get(endpoint_id)
        if lane is None:
            concurrency = self.options.concurrency
            lane = self._lanes[endpoint_id] = Lane(asyncio.Semaphore(concurrency), concurrency)
        return lane

    async def _enabled(self) -> dict[str, tuple[WebhookEndpoint, WebhookSecrets]]:
        """The enabled endpoints and their secrets, read at most every ``_ENDPOINTS_TTL``
        seconds: a round is every 10 ms when busy, an edit needs not show sooner."""
        now = time.monotonic()
        if self._endpoints_read is None or now - self._endpoints_read[0] > _ENDPOINTS_TTL:
            self._endpoints_read = (now, await self._db(self._read_endpoints))
        return self._endpoints_read[1]

    def _read_endpoints(self) -> dict[str, tuple[WebhookEndpoint, WebhookSecrets]]:
        found: dict[str, tuple[WebhookEndpoint, WebhookSecrets]] = {}
        for endpoint in self.client.webhooks():
            record = self.client.backend.webhooks.get(endpoint.endpoint_id)
            if record is not None and record[0].enabled:
                found[endpoint.endpoint_id] = record
        return found

    async def _deliver(
        self, lane: Lane, endpoint: WebhookEndpoint, keys: list[str], delivery: Delivery
    ) -> None:
        claimed = time.monotonic()
        try:
            async with lane.gate:
                if time.monotonic() - claimed > self.options.timeout:
                    # too late to send within the claim: another deliverer may take it
                    # once the claim ends, and so may this one
                    return
                await self._send(endpoint, keys, delivery)
                lane.sent()
        except Exception:  # a store error: the claim ends by itself, the loop goes on
            log.exception("delivery %s to %s", delivery.msg_id, delivery.endpoint_id)
        finally:
            lane.claimed -= 1
            self._in_flight.discard(delivery.key)
            self._wake.set()

    async def _send(self, endpoint: WebhookEndpoint, keys: list[str], delivery: Delivery) -> None:
        if endpoint.endpoint_id in self.stats.disabled:
            return  # answered 410 meanwhile: its claims end by themselves
        view = self._orders.peek(delivery.order_id, delivery.seq) or await self._db(
            self._orders.get, delivery.order_id, delivery.seq
        )
        event = (
            None if view is None else next((e for e in view.events if e.seq == delivery.seq), None)
        )
        if view is None or view.state is None or event is None:
            # the read model lags the event log: no attempt made, try again in a moment
            not_yet = Attempt(None, "the order's history does not show this event yet")
            await self._db(self._orders.forget, delivery.order_id)
            await self._record(delivery, DeliveryStatus.PENDING, time.time() + _NOT_YET, not_yet)
            return
        previous = next((e.status for e in view.events if e.seq == delivery.seq - 1), None)
        sent_at = time.time()
        body = encode(message(event, view.state, previous))
        headers = sign(keys, delivery.msg_id, sent_at, body)
        headers["content-type"] = "application/json"
        headers["user-agent"] = f"realorders/{__version__}"
        assert self._http is not None
        attempt, latency, excerpt = await post(self._http, endpoint.url, body, headers)
        result = outcome(
            delivery.attempts, attempt, now=time.time(), time_scale=self.options.time_scale
        )
        if result.status is DeliveryStatus.DELIVERED:
            self.stats.delivered += 1
        elif result.status is DeliveryStatus.PENDING:
            self.stats.retried += 1
        else:
            self.stats.failed += 1
        if result.status is not DeliveryStatus.DELIVERED and self.on_failure is not None:
            self.on_failure(delivery, result.attempt)
        await self._record(
            delivery, result.status, result.next_at, result.attempt, latency, excerpt, tried=True
        )
        if attempt.status == 410 and endpoint.endpoint_id not in self.stats.disabled:
            self.stats.disabled.append(endpoint.endpoint_id)
            await self._db(
                self.client.disable_webhook,
                endpoint.endpoint_id,
                reason="410 Gone from the receiver",
            )

    async def _record(
        self,
        delivery: Delivery,
        status: DeliveryStatus,
        next_at: float | None,
        attempt: Attempt,
        latency: float | None = None,
        excerpt: str | None = None,
        *,
        tried: bool = False,
    ) -> None:
        """Store an outcome; returns once it is written. Outcomes that come back while
        a write is under way go together in the next one (``record_many``)."""
        outcome = Recorded(
            *(delivery.endpoint_id, delivery.order_id, delivery.seq, status),
            delivery.attempts + (1 if tried else 0),
            *(next_at, attempt.status, attempt.error),
            None if latency is None else round(latency, 1),
            *(excerpt, time.time()),
        )
        written = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, written))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.get_running_loop().create_task(self._write_outcomes())
        await written

    async def _write_outcomes(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                await self._db(self.client.backend.deliveries.record_many, [o for o, _ in batch])
            except Exception as exc:  # each waiting delivery logs it; the claims end by themselves
                for _, written in batch:
                    written.set_exception(exc)
            else:
                for _, written in batch:
                    written.set_result(None)

    # -- the scanner's lease: one deliverer fills the outbox ---------------------------

    @contextlib.asynccontextmanager
    async def _leased(self, stop: asyncio.Event) -> AsyncIterator[None]:
        await self._db(self._claim_scanning)
        renewing = asyncio.get_running_loop().create_task(self._renew(stop))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            if self.scanning:
                with contextlib.suppress(Exception):  # a lost store: the lease ends by itself
                    await self._db(self.client.backend.deliveries.release_lease, self.owner)

    def _claim_scanning(self) -> None:
        self.scanning = take_scanning(self.client.backend.deliveries, self.owner)

    async def _renew(self, stop: asyncio.Event) -> None:
        """Renew the lease, or take it over once its holder stops renewing."""
        while not stop.is_set():
            await _first(stop.wait(), timeout=LEASE_TTL / 3)
            if stop.is_set():
                return
            try:
                was = self.scanning
                await self._db(self._claim_scanning)
            except Exception as exc:  # an outage: the rounds say so; try again later
                log.warning("notify lease not renewed: %s", exc)
                continue
            if was != self.scanning:
                log.warning(
                    "notify %s scanning the event log", "took over" if self.scanning else "stopped"
                )


async def _first(*waits: Any, timeout: float) -> None:
    """Until the first of ``waits`` is done, or ``timeout`` seconds."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
