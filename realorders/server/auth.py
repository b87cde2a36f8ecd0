"""Bearer tokens as a FastAPI security dependency with scopes.

A route says what it needs in its signature (``services: Writer``, that is
``Security(access, scopes=["write"])``), so its access shows in the code and
in the OpenAPI document alike. The dependency checks the token and hands the
route the process's :class:`~realorders.server.services.Services`: one
dependency per request, because FastAPI's resolution of each one costs more
than the route itself on the hot path (``POST /v1/orders``). Lookups go
through the Client (:meth:`~realorders.Client.authenticate`: constant-time
compare, revoked tokens refused) and are remembered for half a second, so a
busy server does not read the store per request and a revoked token still
stops working within a second.
"""

import hashlib
import time
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase

from realorders.server.problems import Problem
from realorders.server.store import Store
from realorders.tokens import Scope, TokenRecord

if TYPE_CHECKING:  # services.py imports this module
    from realorders.server.services import Services

__all__ = ["BearerAccess", "TokenCache", "access"]


class TokenCache:
    """Answers remembered for ``ttl`` seconds, keyed by the token's hash, bounded in size."""

    def __init__(self, store: Store, ttl: float = 0.5, size: int = 10_000) -> None:
        self._store = store
        self._ttl = ttl
        self._size = size
        self._seen: dict[bytes, tuple[float, TokenRecord | None]] = {}

    async def lookup(self, token: str) -> TokenRecord | None:
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = time.monotonic()
        hit = self._seen.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = await self._store.call(lambda client: client.authenticate(token))
        if len(self._seen) >= self._size:
            self._seen = {k: v for k, v in self._seen.items() if v[0] > now}
            if len(self._seen) >= self._size:
                self._seen.clear()
        self._seen[key] = (now + self._ttl, record)
        return record


class BearerAccess(SecurityBase):
    """The ``Authorization: Bearer`` check: 401 without a valid token, 403 for too small a
    scope; gives the route the process's services (and logs the token's name)."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(
            description="A token from `realorders tokens create NAME --scope read|write|admin`."
        )
        self.scheme_name = "HTTPBearer"

    # Real (not string) annotations: FastAPI reads them from an instance's __call__,
    # which has no module globals to resolve strings against.
    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> "Services":
        services: Services = request.app.state.services
        if not services.options.auth:
            return services
        record = await self._record(services, request.headers.get("authorization"))
        needed = Scope(security_scopes.scopes[-1]) if security_scopes.scopes else Scope.READ
        if not record.scope.allows(needed):
            raise Problem(
                403,
                "forbidden",
                f"token {record.name!r} has scope {record.scope.value}; this needs {needed.value}",
                headers={
                    "WWW-Authenticate": f'Bearer realm="realorders", error="insufficient_scope", '
                    f'scope="{needed.value}"'
                },
            )
        request.state.token = record.name
        return services

    @staticmethod
    async def _record(services: "Services", authorization: str | None) -> TokenRecord:
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise Problem(
                401,
                "unauthorized",
                "send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="realorders"'},
            )
        record = await services.tokens.lookup(credentials)
        if record is None:
            raise Problem(
                401,
                "unauthorized",
                "the token is not valid (unknown, revoked or malformed)",
                headers={"WWW-Authenticate": 'Bearer realm="realorders", error="invalid_token"'},
            )
        return record


access = BearerAccess()
