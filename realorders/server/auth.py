"""Bearer tokens as a FastAPI security dependency with scopes.

A route says what it needs in its signature (``Security(access, scopes=["write"])``),
so its access shows in the code and in the OpenAPI document alike. Lookups go
through the Client (:meth:`~realorders.Client.authenticate`: constant-time
compare, revoked tokens refused) and are remembered for half a second, so a
busy server does not read the store per request and a revoked token still
stops working within a second.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from realorders.server.problems import Problem
from realorders.server.store import Store
from realorders.tokens import Scope, TokenRecord

if TYPE_CHECKING:  # services.py imports this module
    from realorders.server.services import Services

__all__ = ["ANONYMOUS", "TokenCache", "access"]

#: who every request is when the server runs with ``--no-auth`` (loopback only)
ANONYMOUS = TokenRecord(token_id="-", name="anonymous", scope=Scope.ADMIN, created_at=0.0)

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from `realorders tokens create NAME --scope read|write|admin`.",
)


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


async def access(
    request: Request,
    security_scopes: SecurityScopes,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenRecord:
    """The caller's token record; 401 without a valid token, 403 when its scope is too small."""
    services: Services = request.app.state.services
    if not services.options.auth:
        return ANONYMOUS
    challenge = {"WWW-Authenticate": 'Bearer realm="realorders"'}
    if credentials is None:
        raise Problem(401, "unauthorized", "send Authorization: Bearer <token>", headers=challenge)
    record = await services.tokens.lookup(credentials.credentials)
    if record is None:
        raise Problem(
            401,
            "unauthorized",
            "the token is not valid (unknown, revoked or malformed)",
            headers={"WWW-Authenticate": 'Bearer realm="realorders", error="invalid_token"'},
        )
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
    return record
