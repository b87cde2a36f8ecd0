"""A fix for one kafka-python 3.0.x bug the engine hits on every rebalance.

``BaseCoordinator.join_group_async`` keeps the JoinGroup/SyncGroup round trip
as a task so that a short ``poll`` can give up and the next one wait on the
same task. But when that task *finishes between two polls*, the next poll sees
``is_done`` and starts a new join instead of applying the assignment it got:
the member keeps its old (often empty) assignment, stops heartbeating, and the
broker expels it after the session timeout. Seen here as "SyncGroup answered,
assignment never applied" on engines joining a group, and as the survivor of a
``kill -9`` never taking the dead engine's partitions over.

The patch applies a finished, successful join (a done task while the member is
still marked as rebalancing) the way kafka-python's own code does after
awaiting it. Installed once, on import of the Kafka backend; it
checks the attributes it relies on and stays out of the way when they are
missing (another kafka-python version).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("realorders.kafka")

__all__ = ["install_join_fix"]

_installed = False


def install_join_fix() -> bool:
    """Patch kafka-python's group join (idempotent); False when the version is not the one fixed."""
    global _installed  # noqa: PLW0603  (once per process, by design)
    if _installed:
        return True
    try:
        from kafka.coordinator.base import BaseCoordinator
        from kafka.structs import MemberState
    except ImportError:  # pragma: no cover
        return False
    original = getattr(BaseCoordinator, "join_group_async", None)
    original_need = getattr(BaseCoordinator, "need_rejoin", None)
    if (
        original is None
        or original_need is None
        or not hasattr(BaseCoordinator, "_on_join_complete_async")
    ):
        return False

    def unapplied_join(self: Any) -> bool:
        task = getattr(self, "_join_task", None)
        finished = task is not None and task.is_done and task.exception is None
        return bool(finished and self.state is not MemberState.STABLE)

    def need_rejoin(self: Any) -> Any:
        # a finished join nobody applied yet must bring poll() back into the join path
        return unapplied_join(self) or original_need(self)

    async def join_group_async(self: Any, timeout_ms: Any = None) -> Any:
        task = self._join_task
        if unapplied_join(self):
            self._join_task = None
            with self._lock:
                self.rejoining = False
                self.rejoin_needed = False
                self.state = MemberState.STABLE
                self._enable_heartbeat()
            await self._on_join_complete_async(
                self._generation.generation_id,
                self._generation.member_id,
                self._generation.protocol,
                task.value,
            )
            return True
        return await original(self, timeout_ms)

    BaseCoordinator.join_group_async = join_group_async
    BaseCoordinator.need_rejoin = need_rejoin
    _installed = True
    return True
