"""Bearer tokens of the distributed mode, in Redis.

``tokens`` is a hash of token_id → JSON (the record and the digest of the
secret), so a server's lookup is one ``HGET``; ``token_names`` maps each
active token's name to its id, which makes "one active token per name" one
atomic check in :data:`_ADD`. A revocation rewrites the record only if it is
still the one read (:data:`_REVOKE`, compare-and-set), because Lua's cjson
would round the timestamps if the script rewrote the JSON itself.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from realorders.errors import ConflictError
from realorders.tokens import Scope, TokenRecord

__all__ = ["RedisTokens"]

#: ARGV: prefix, token_id, name, record JSON. 1 added, 0 name taken, -1 id taken.
_ADD = r"""
local P, id, name = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', P..'token_names', name) == 1 then return 0 end
if redis.call('HEXISTS', P..'tokens', id) == 1 then return -1 end
redis.call('HSET', P..'tokens', id, ARGV[4])
redis.call('HSET', P..'token_names', name, id)
return 1
"""

#: ARGV: prefix, token_id, the JSON read, the revoked JSON, name. 1 done, 0 changed meanwhile.
_REVOKE = r"""
local P, id, name = ARGV[1], ARGV[2], ARGV[5]
if redis.call('HGET', P..'tokens', id) ~= ARGV[3] then return 0 end
redis.call('HSET', P..'tokens', id, ARGV[4])
if redis.call('HGET', P..'token_names', name) == id then
  redis.call('HDEL', P..'token_names', name)
end
return 1
"""


def _encode(record: TokenRecord, digest: str) -> bytes:
    return orjson.dumps(
        {
            "name": record.name,
            "scope": record.scope.value,
            "created_at": record.created_at,
            "revoked_at": record.revoked_at,
            "digest": digest,
        }
    )


def _decode(token_id: str, raw: bytes) -> tuple[TokenRecord, str]:
    d = orjson.loads(raw)
    record = TokenRecord(token_id, d["name"], Scope(d["scope"]), d["created_at"], d["revoked_at"])
    return record, d["digest"]


class RedisTokens:
    """Token records and digests in Redis; see the module docstring."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self._r: Any = r  # redis-py types replies as bytes | str | Awaitable: checked here instead
        self._p = prefix
        self._add = r.register_script(_ADD)
        self._revoke = r.register_script(_REVOKE)

    def add(self, record: TokenRecord, digest: str) -> None:
        outcome = self._add(args=[self._p, record.token_id, record.name, _encode(record, digest)])
        if outcome == 0:
            raise ConflictError(
                f"an active token named {record.name!r} exists already; "
                "revoke it first or choose another name"
            )
        if outcome == -1:
            raise ConflictError(f"token id {record.token_id} exists already")

    def find(self, token_id: str) -> tuple[TokenRecord, str] | None:
        raw = self._r.hget(f"{self._p}tokens", token_id)
        return None if raw is None else _decode(token_id, raw)

    def list(self) -> list[TokenRecord]:
        rows = self._r.hgetall(f"{self._p}tokens")
        records = [_decode(token_id.decode(), raw)[0] for token_id, raw in rows.items()]
        return sorted(records, key=lambda r: (r.created_at, r.token_id))

    def revoke(self, name_or_id: str, at: float) -> int:
        targets = {name_or_id}
        named = self._r.hget(f"{self._p}token_names", name_or_id)
        if named is not None:
            targets.add(named.decode())
        return sum(self._revoke_one(token_id, at) for token_id in sorted(targets))

    def _revoke_one(self, token_id: str, at: float) -> int:
        """1 if this call revoked ``token_id``; 0 if unknown or revoked already."""
        while True:
            raw = self._r.hget(f"{self._p}tokens", token_id)
            if raw is None:
                return 0
            record, digest = _decode(token_id, raw)
            if record.revoked:
                return 0
            revoked = TokenRecord(record.token_id, record.name, record.scope, record.created_at, at)
            done = self._revoke(
                args=[self._p, token_id, raw, _encode(revoked, digest), record.name]
            )
            if done == 1:
                return 1
            # changed between the read and the script (another revoke): look again
