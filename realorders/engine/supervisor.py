"""Running the engine in the foreground: signals, and in the distributed mode, outages.

A lost broker or Redis ends the engine's loop with an error; the supervisor
logs one line (``engine paused: …; retrying in N s``), waits (1 s, doubling up
to 30 s), opens the store again and starts a new engine, which resumes from
what Kafka committed: exactly what a restarted process would do. The embedded
store has no outage to ride out, so there an error ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from realorders.engine.actors import Delays
from realorders.engine.engine import Engine, EngineStats
from realorders.engine.ports import Backend
from realorders.engine.resilience import outage_reason

__all__ = ["Supervisor"]

log = logging.getLogger("realorders.engine")

_FIRST_BACKOFF = 1.0
_MAX_BACKOFF = 30.0


class Supervisor:
    """Runs engines on ``backend`` until stopped; ``reopen`` makes outages pauses.

    After :meth:`run`, ``backend`` is the store the last engine ran on (a new
    one when an outage made the supervisor reopen it).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        reopen: Callable[[], Backend] | None = None,
        where: str = "",
    ) -> None:
        self.backend = backend
        self._reopen = reopen
        self._where = where

    def run(
        self,
        *,
        until_idle: bool = False,
        delays: Delays | None = None,
        batch_size: int = 2000,
        handle_signals: bool = True,
    ) -> EngineStats:
        """Run in this thread until SIGINT/SIGTERM (with ``handle_signals``) or idle."""
        return asyncio.run(self._run(until_idle, delays, batch_size, handle_signals))

    async def _run(
        self, until_idle: bool, delays: Delays | None, batch_size: int, handle_signals: bool
    ) -> EngineStats:
        total = EngineStats()
        stopping = asyncio.Event()
        backoff = _FIRST_BACKOFF
        while True:
            engine = Engine(self.backend, delays=delays, batch_size=batch_size)
            if handle_signals:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, _stopper(engine, stopping))
            try:
                _add(total, await engine.run(until_idle=until_idle))
                return total
            except Exception as exc:
                reason = outage_reason(exc) if self._reopen is not None else None
                if reason is None:
                    raise
                _add(total, engine.stats)
            while True:  # pause, then reopen; a reopen that fails is one more pause
                log.warning("engine paused: %s; retrying in %.0f s", reason, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), backoff)
                if stopping.is_set():
                    return total
                backoff = min(_MAX_BACKOFF, backoff * 2)
                reason = self._reconnect()
                if reason is None:
                    break

    def _reconnect(self) -> str | None:
        """Open the store again; the outage's reason when it is still out."""
        assert self._reopen is not None
        with contextlib.suppress(Exception):
            self.backend.close()
        try:
            self.backend = self._reopen()
        except Exception as exc:
            reason = outage_reason(exc)
            if reason is None:
                raise
            return reason
        log.info("engine resuming on %s", self._where)
        return None


def _add(total: EngineStats, part: EngineStats) -> None:
    total.batches += part.batches
    total.commands += part.commands
    total.events += part.events
    total.finished += part.finished


def _stopper(engine: Engine, stopping: asyncio.Event) -> Callable[[], None]:
    def stop() -> None:
        stopping.set()
        engine.stop()

    return stop
