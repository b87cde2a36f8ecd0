"""Which engines run, and whether their broker answers: the distributed mode's liveness.

Kept apart from the batch commit (``kafka``): neither shares the group
consumer or the transactional producer. The registry is a Redis hash, one
heartbeat record per engine (``engine list``, ``stats`` and the dashboard read
it); the broker watch makes a lost broker visible in the engine's log even
while kafka-python retries quietly or holds the engine's loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from realorders.config import Config
from realorders.engine.backends.distributed.connect import probe_kafka
from realorders.errors import ServiceUnavailableError

__all__ = ["BrokerWatch", "EngineRegistry"]

log = logging.getLogger("realorders.kafka")

#: Seconds without a heartbeat before an engine counts as gone.
ENGINE_STALE = 15.0
_PROBE_EVERY = 2.0  # seconds between two probes, whoever asks
_PROBE_TIMEOUT = 2.0


class EngineRegistry:
    """One heartbeat record per running engine, in the hash ``<prefix>engines``."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._r = redis
        self._key = f"{prefix}engines"
        self.engine_id: str | None = None  # this process's engine, while it runs one

    def register(self) -> str:
        """A new id for this process's engine (also its transactional id's suffix)."""
        self.engine_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return self.engine_id

    def beat(self, position: int, partitions: Iterable[int]) -> None:
        if self.engine_id is None:
            return
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self._started_at(),
            "heartbeat_at": time.time(),
            "position": position,
            "partitions": sorted(partitions),
        }
        self._r.hset(self._key, self.engine_id, orjson.dumps(record))

    def _started_at(self) -> float:
        raw = self._r.hget(self._key, self.engine_id or "")
        return float(orjson.loads(raw)["started_at"]) if raw else time.time()

    def engines(self) -> list[dict[str, Any]]:
        """Every engine with a fresh heartbeat (one Redis read)."""
        now = time.time()
        records = [orjson.loads(v) for v in self._r.hvals(self._key)]
        return [e for e in records if now - e["heartbeat_at"] < ENGINE_STALE]

    def leave(self) -> None:
        if self.engine_id is not None:
            with contextlib.suppress(Exception):  # Redis may be the service that is down
                self._r.hdel(self._key, self.engine_id)
            self.engine_id = None


class BrokerWatch:
    """Notices a lost broker, and its return, with one log line each.

    kafka-python only retries quietly, and the engine's loop can block inside
    it for a whole outage (a group rejoin, a transaction waiting for its
    coordinator) and then carry on as if nothing happened; the operator must
    still see the pause. So a thread probes every second while the engine
    runs, and the idle loop asks too (:meth:`reachable`); a lock keeps the two
    from probing at once.
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self._probed_at = 0.0
        self.lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reachable(self) -> bool:
        """Whether the broker answered its last probe (probing again if that was a while ago)."""
        now = time.monotonic()
        if now - self._probed_at < _PROBE_EVERY or not self._lock.acquire(blocking=False):
            return not self.lost  # probed lately, or the watch thread is at it
        try:
            self._probed_at = now
            try:
                probe_kafka(self._config, timeout=_PROBE_TIMEOUT)
            except ServiceUnavailableError as exc:
                if not self.lost:
                    log.warning("engine paused: %s; waiting for it to come back", exc)
                self.lost = True
                return False
            if self.lost:
                log.info("engine resuming: Kafka at %s answers again", self._config.kafka_bootstrap)
            self.lost = False
            return True
        finally:
            self._lock.release()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def watch() -> None:
            while not self._stop.wait(1.0):
                with contextlib.suppress(Exception):
                    self.reachable()

        self._thread = threading.Thread(target=watch, name="realorders-broker-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
