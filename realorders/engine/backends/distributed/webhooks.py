"""Webhook endpoints of the distributed mode, in Redis.

Two hashes keyed by endpoint id: ``webhooks`` (the record as JSON) and
``webhook_secrets`` (the secrets as JSON), so a record is rewritten without
reading or touching its secrets. Writes are Lua scripts that act only while
the record exists, so an ``update`` or a rotation racing a ``remove`` cannot
bring the endpoint back half-made; ``add`` writes both hashes in one script.
Lua only moves the JSON made here (its cjson would round the timestamps).
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from realorders.domain import Status
from realorders.errors import ConflictError
from realorders.webhooks import WebhookEndpoint, WebhookSecrets

__all__ = ["RedisWebhooks"]

#: ARGV: prefix, endpoint_id, record JSON, secrets JSON. 1 added, 0 id taken.
_ADD = r"""
local P, id = ARGV[1], ARGV[2]
if redis.call('HEXISTS', P..'webhooks', id) == 1 then return 0 end
redis.call('HSET', P..'webhooks', id, ARGV[3])
redis.call('HSET', P..'webhook_secrets', id, ARGV[4])
return 1
"""

#: ARGV: prefix, endpoint_id, hash name (after the prefix), JSON. 1 written, 0 unknown id.
_SET_IF_KNOWN = r"""
local P, id = ARGV[1], ARGV[2]
if redis.call('HEXISTS', P..'webhooks', id) == 0 then return 0 end
redis.call('HSET', P..ARGV[3], id, ARGV[4])
return 1
"""

#: ARGV: prefix, endpoint_id. 1 removed, 0 unknown id.
_REMOVE = r"""
local P, id = ARGV[1], ARGV[2]
redis.call('HDEL', P..'webhook_secrets', id)
return redis.call('HDEL', P..'webhooks', id)
"""


def _encode(endpoint: WebhookEndpoint) -> bytes:
    events = None if endpoint.events is None else [s.value for s in Status if s in endpoint.events]
    return orjson.dumps(
        {
            "url": endpoint.url,
            "events": events,
            "customer_id": endpoint.customer_id,
            "description": endpoint.description,
            "enabled": endpoint.enabled,
            "disabled_reason": endpoint.disabled_reason,
            "created_at": endpoint.created_at,
            "updated_at": endpoint.updated_at,
        }
    )


def _decode(endpoint_id: str, raw: bytes) -> WebhookEndpoint:
    d = orjson.loads(raw)
    events = d["events"]
    return WebhookEndpoint(
        endpoint_id=endpoint_id,
        url=d["url"],
        events=None if events is None else frozenset(Status(s) for s in events),
        customer_id=d["customer_id"],
        description=d["description"],
        enabled=d["enabled"],
        disabled_reason=d["disabled_reason"],
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def _encode_secrets(secrets: WebhookSecrets) -> bytes:
    return orjson.dumps(
        {
            "current": secrets.current,
            "previous": secrets.previous,
            "previous_until": secrets.previous_until,
        }
    )


def _decode_secrets(raw: bytes) -> WebhookSecrets:
    d = orjson.loads(raw)
    return WebhookSecrets(d["current"], d["previous"], d["previous_until"])


class RedisWebhooks:
    """Endpoint records and their secrets in Redis; see the module docstring."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self._r: Any = r  # redis-py types replies as bytes | str | Awaitable: checked here instead
        self._p = prefix
        self._add = r.register_script(_ADD)
        self._set = r.register_script(_SET_IF_KNOWN)
        self._remove = r.register_script(_REMOVE)

    def add(self, endpoint: WebhookEndpoint, secrets: WebhookSecrets) -> None:
        args: list[str | bytes] = [
            self._p,
            endpoint.endpoint_id,
            _encode(endpoint),
            _encode_secrets(secrets),
        ]
        if self._add(args=args) == 0:
            raise ConflictError(f"webhook endpoint {endpoint.endpoint_id} exists already")

    def get(self, endpoint_id: str) -> tuple[WebhookEndpoint, WebhookSecrets] | None:
        pipe = self._r.pipeline(transaction=True)  # MULTI: the record and secrets of one moment
        pipe.hget(f"{self._p}webhooks", endpoint_id)
        pipe.hget(f"{self._p}webhook_secrets", endpoint_id)
        raw, raw_secrets = pipe.execute()
        if raw is None or raw_secrets is None:
            return None
        return _decode(endpoint_id, raw), _decode_secrets(raw_secrets)

    def list(self) -> list[WebhookEndpoint]:
        rows = self._r.hgetall(f"{self._p}webhooks")
        endpoints = [_decode(endpoint_id.decode(), raw) for endpoint_id, raw in rows.items()]
        return sorted(endpoints, key=lambda e: (e.created_at, e.endpoint_id))

    def replace(self, endpoint: WebhookEndpoint) -> bool:
        args: list[str | bytes] = [self._p, endpoint.endpoint_id, "webhooks", _encode(endpoint)]
        return bool(self._set(args=args) == 1)

    def set_secrets(self, endpoint_id: str, secrets: WebhookSecrets) -> bool:
        args: list[str | bytes] = [
            self._p,
            endpoint_id,
            "webhook_secrets",
            _encode_secrets(secrets),
        ]
        return bool(self._set(args=args) == 1)

    def remove(self, endpoint_id: str) -> bool:
        return bool(self._remove(args=[self._p, endpoint_id]) == 1)
