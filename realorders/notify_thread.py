"""A deliverer beside something else in one process: ``run --notify``, ``serve --notify``.

It gets a thread, an event loop and a Client of its own, so neither the engine
nor the server shares a connection or a loop with it; stopping it waits for the
requests on their way (a few seconds at most).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from realorders.client import Client
from realorders.config import Config
from realorders.deliveries import Delivery
from realorders.delivery import Attempt
from realorders.notifier import STOP_GRACE, Notifier, NotifierOptions

__all__ = ["notifying"]

_START_TIMEOUT = 60.0


@contextmanager
def notifying(
    config: Config,
    options: NotifierOptions | None = None,
    *,
    on_failure: Callable[[Delivery, Attempt], None] | None = None,
    finish: bool = False,
) -> Iterator[Notifier]:
    """A deliverer running for the life of the block; its start's error is raised here.
    ``finish``: on leaving, it first sends what is due (what the block made), then stops."""
    ready = threading.Event()
    handles: dict[str, object] = {}
    failed: list[BaseException] = []

    async def serve(notifier: Notifier) -> None:
        finish_event = asyncio.Event()
        stop = asyncio.Event()
        handles["stop"] = (asyncio.get_running_loop(), finish_event if finish else stop)
        await notifier.run(stop, started=ready.set, finish=finish_event)

    def main() -> None:
        try:
            with Client(config=config) as client:
                notifier = Notifier(client, options, on_failure=on_failure)
                handles["notifier"] = notifier
                asyncio.run(serve(notifier))
        except BaseException as exc:  # reported to the block, or on leaving it
            failed.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="realorders-notify", daemon=True)
    thread.start()
    ready.wait(_START_TIMEOUT)
    if failed:
        raise failed[0]
    notifier = handles["notifier"]
    assert isinstance(notifier, Notifier)
    try:
        yield notifier
    finally:
        stopping = handles.get("stop")
        if isinstance(stopping, tuple):
            loop, stop = stopping
            loop.call_soon_threadsafe(stop.set)
        thread.join(None if finish else STOP_GRACE + 10)
