"""What a server process holds while it runs, opened in the app's lifespan.

Routes receive it by their access dependency (``services: Reader``) and reach the store only
through it: the thread pool of Clients, the intake's group commit, the shared
event tail and the token cache.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Security

from realorders.server.auth import TokenCache, access
from realorders.server.hub import Hub
from realorders.server.metrics import Metrics
from realorders.server.options import ServerOptions
from realorders.server.problems import Problem
from realorders.server.store import Intake, Store

__all__ = ["Admin", "Reader", "Services", "Writer"]


@dataclass(slots=True)
class Services:
    options: ServerOptions
    store: Store
    intake: Intake
    hub: Hub
    tokens: TokenCache
    metrics: Metrics
    imports: ThreadPoolExecutor  # one thread per import streaming in
    where: str  # the store, as messages name it
    _backlog: tuple[float, int] = field(default=(0.0, 0))

    async def backlog(self) -> int:
        """Commands appended and not yet processed, read at most every half second."""
        at, value = self._backlog
        now = time.monotonic()
        if now - at > 0.5:
            info = await self.store.call(lambda client: client.engine_info())
            value = info.backlog
            self._backlog = (now, value)
        return value

    async def admit(self) -> None:
        """Push back (503, Retry-After) when the engine is further behind than allowed."""
        limit = self.options.max_backlog
        if limit is None:
            return
        backlog = await self.backlog()
        if backlog > limit:
            self.metrics.refused.inc()
            raise Problem(
                503,
                "overloaded",
                f"{backlog} commands wait for the engine (limit {limit}); retry later",
                headers={"Retry-After": "1"},
                backlog=backlog,
            )


#: what a route declares to get the services: the scope it needs is checked first
Reader = Annotated[Services, Security(access, scopes=["read"])]
Writer = Annotated[Services, Security(access, scopes=["write"])]
Admin = Annotated[Services, Security(access, scopes=["admin"])]
