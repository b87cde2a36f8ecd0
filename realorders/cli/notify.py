"""Delivering webhooks: ``notify`` in the foreground (see :mod:`realorders.notifier`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import typer

from .app import app, err, settings

if TYPE_CHECKING:  # loaded when a command delivers: aiohttp costs `--help` nothing
    from realorders.config import Config
    from realorders.deliveries import Delivery
    from realorders.delivery import Attempt
    from realorders.notifier import Notifier

SUMMARY_EVERY = 60.0  # seconds between two summary lines


@app.command()
def notify(
    ctx: typer.Context,
    time_scale: float = typer.Option(
        1.0, "--time-scale", min=0.0, help="Multiply the retry delays (e.g. 0.01 for a demo)."
    ),
    concurrency: int = typer.Option(
        16, "--concurrency", min=1, help="Requests at a time per endpoint, at most."
    ),
    timeout: float = typer.Option(15.0, "--timeout", min=0.1, help="Seconds per request."),
) -> None:
    """Deliver order changes to the webhook endpoints (Ctrl-C or SIGTERM stop it).

    Several may run on one store: they share the sending, none sends an event
    another has on its way.
    """
    from realorders.notifier import Notifier, NotifierOptions

    options = NotifierOptions(time_scale=time_scale, concurrency=concurrency, timeout=timeout)
    with settings(ctx).client() as client:
        notifier = Notifier(client, options, on_failure=_failed)
        where = client.where()

        def started() -> None:
            role = "" if notifier.scanning else " (another notify fills the outbox)"
            err.print(
                f"notify delivering webhooks from {where}{role}; Ctrl-C to stop", highlight=False
            )

        asyncio.run(_run(notifier, started))
        stats = notifier.stats
        err.print(
            f"notify stopped: {stats.delivered:,} delivered, {stats.retried:,} retries, "
            f"{stats.failed:,} failed",
            highlight=False,
        )


async def _run(notifier: Notifier, started: Callable[[], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    summary = loop.create_task(_summaries(notifier, stop))
    try:
        await notifier.run(stop, started=started)
    finally:
        stop.set()
        await summary


async def _summaries(notifier: Notifier, stop: asyncio.Event) -> None:
    last = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if time.monotonic() - last >= SUMMARY_EVERY:
            last = time.monotonic()
            s = notifier.stats
            err.print(
                f"notify: {s.enqueued:,} enqueued, {s.delivered:,} delivered, "
                f"{s.retried:,} retries, {s.failed:,} failed",
                highlight=False,
            )


def _failed(delivery: Delivery, attempt: Attempt) -> None:
    what = f"HTTP {attempt.status}" if attempt.status is not None else attempt.error
    err.print(
        f"delivery {delivery.msg_id} to {delivery.endpoint_id} (order {delivery.order_id!r} "
        f"seq {delivery.seq}, attempt {delivery.attempts + 1}) failed: {what}",
        highlight=False,
        markup=False,
    )


@contextlib.contextmanager
def delivering(config: Config, *, finish: bool = False) -> Iterator[None]:
    """``--notify`` of ``run`` and ``serve``: a deliverer in this process meanwhile
    (``finish``: then what is due, as ``run --until-idle`` finishes the orders)."""
    from realorders.notify_thread import notifying

    with notifying(config, on_failure=_failed, finish=finish) as notifier:
        err.print("notify delivering webhooks in this process", highlight=False)
        yield
    stats = notifier.stats
    err.print(
        f"notify stopped: {stats.delivered:,} delivered, {stats.retried:,} retries, "
        f"{stats.failed:,} failed",
        highlight=False,
    )
