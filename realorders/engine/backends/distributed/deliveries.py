"""The outbox of webhook deliveries of the distributed mode, in Redis.

A delivery is the hash ``dlv:<E>\\0<O>\\0<seq>`` (E the endpoint, O the order;
neither holds a NUL). Indexes, all kept by the scripts of ``deliveries_lua.py``:

- ``dlv_pend:<E>\\0<O>``: the order's pending seqs (score = seq); its lowest is
  the *head*, the only delivery of the order that may be due;
- ``dlv_wait`` (heads by ``next_at``) and ``dlv_ready`` (heads due, by cursor):
  each head is in exactly one. :data:`~deliveries_lua.DUE` first moves the heads whose time
  has come from wait to ready, then reads ready from the oldest cursor, so a
  call costs what it returns plus what became due since the last one, never
  a scan of the backlog. ``dlv_clock`` (the latest ``now`` asked) sends a head
  that is due already straight to ready;
- ``dlv_ep:<E>`` (all of an endpoint's deliveries by ``updated_at``) and
  ``dlv_failed:<E>`` (its failed ones): history newest first, failed counts,
  replays and ``forget_endpoint``. Their members are ``<cursor, 20 digits>\\0<key>``,
  so ties in time fall back to the cursor as on SQLite;
- ``dlv_grp:<E>\\0<O>``: all of an order's seqs (history and replay per order);
- ``dlv_npend`` (pending count per endpoint), ``dlv_eps`` (endpoints with
  deliveries), ``dlv_scan`` (the event-log cursor enqueued up to), ``dlv_lease``
  (the deliverer holding the lease, expiring by itself).

Enqueue (rows and scan cursor) and every outcome are one script each, so a
crash never leaves half of one. Numbers travel as Python's ``repr`` (exact:
Lua only compares them and hands the strings back to Redis).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import redis

from realorders.deliveries import Delivery, DeliveryStatus, Recorded, check_new, checked_outcome
from realorders.engine.backends.distributed import deliveries_lua as lua

__all__ = ["RedisDeliveries"]

_PAGE = 1000  # deliveries per script call or index read when walking an endpoint's rows


def _key(endpoint_id: str, order_id: str, seq: int) -> str:
    return f"{endpoint_id}\0{order_id}\0{seq}"


def _rank(cursor: int, key: str) -> str:
    """The member of the per-endpoint indexes: ties in time sort by cursor, then key."""
    return f"{cursor:020d}\0{key}"


def _split(key: str) -> tuple[str, str, int]:
    """(endpoint, order, seq) of a key; the order may be anything but a NUL."""
    endpoint_id, rest = key.split("\0", 1)
    order_id, seq = rest.rsplit("\0", 1)
    return endpoint_id, order_id, int(seq)


def _num(value: float) -> str:
    return repr(float(value))


def _opt(value: object) -> str:
    """'' for None, else '=' and the value (so that an empty text stays one)."""
    if value is None:
        return ""
    return "=" + (_num(value) if isinstance(value, float) else str(value))


def _decode(key: str, raw: dict[bytes, bytes]) -> Delivery:
    f = {k.decode(): v.decode() for k, v in raw.items()}
    endpoint_id, order_id, seq = _split(key)

    def number(name: str) -> float | None:
        return None if name not in f else float(f[name])

    code = f.get("last_code")
    return Delivery(
        endpoint_id=endpoint_id,
        order_id=order_id,
        seq=seq,
        cursor=int(f["cursor"]),
        msg_id=f["msg_id"],
        status=DeliveryStatus(f["status"]),
        attempts=int(f["attempts"]),
        next_at=number("next_at"),
        created_at=float(f["created_at"]),
        updated_at=float(f["updated_at"]),
        last_code=None if code is None else int(code),
        last_error=f.get("last_error"),
        last_latency_ms=number("last_latency_ms"),
        response_excerpt=f.get("response_excerpt"),
    )


def _newest_first(delivery: Delivery) -> tuple[float, bytes]:
    """Redis's order of ``dlv_ep`` read backwards: time, then the member's bytes."""
    key = _key(delivery.endpoint_id, delivery.order_id, delivery.seq)
    return delivery.updated_at, _rank(delivery.cursor, key).encode()


class RedisDeliveries:
    """Deliveries and the scan cursor in Redis; see the module docstring."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self._r: Any = r  # redis-py types replies as bytes | str | Awaitable: checked here instead
        self._p = prefix
        self._enqueue = r.register_script(lua.ENQUEUE)
        self._due = r.register_script(lua.DUE)
        self._record = r.register_script(lua.RECORD)
        self._requeue = r.register_script(lua.REQUEUE)
        self._forget = r.register_script(lua.FORGET)
        self._take_lease = r.register_script(lua.TAKE_LEASE)
        self._release_lease = r.register_script(lua.RELEASE_LEASE)

    def take_lease(self, owner: str, ttl: float, now: float) -> str | None:
        """Redis's clock ends the lease (``PX``): ``now`` is not needed here."""
        holder = self._take_lease(keys=[f"{self._p}dlv_lease"], args=[owner, int(ttl * 1000)])
        return None if holder is None else bytes(holder).decode()

    def release_lease(self, owner: str) -> bool:
        return bool(self._release_lease(keys=[f"{self._p}dlv_lease"], args=[owner]))

    def scan_cursor(self) -> int:
        return int(self._r.get(f"{self._p}dlv_scan") or 0)

    def enqueue(self, deliveries: Sequence[Delivery], scan_cursor: int) -> int:
        args: list[str | int] = [self._p, int(scan_cursor)]
        for d in deliveries:
            check_new(d)
            key = _key(d.endpoint_id, d.order_id, d.seq)
            assert d.next_at is not None  # check_new
            args += [
                key,
                d.endpoint_id,
                f"{d.endpoint_id}\0{d.order_id}",
                d.seq,
                d.cursor,
                _rank(d.cursor, key),
                d.msg_id,
                d.attempts,
                _num(d.next_at),
                _num(d.created_at),
                _num(d.updated_at),
            ]
        return int(self._enqueue(args=args))

    def due(self, now: float, limit: int, *, hold: float = 0.0) -> list[Delivery]:
        if limit <= 0:
            return []
        until = _num(now + hold) if hold > 0 else ""
        flat = self._due(args=[self._p, _num(now), int(limit), until])
        found = [_decode(key.decode(), _pairs(raw)) for key, raw in _pairs(flat).items()]
        return [replace(d, next_at=float(until)) for d in found] if until else found

    def record(
        self,
        endpoint_id: str,
        order_id: str,
        seq: int,
        *,
        status: DeliveryStatus,
        attempts: int,
        next_at: float | None,
        last_code: int | None,
        last_error: str | None,
        last_latency_ms: float | None,
        response_excerpt: str | None,
        at: float,
    ) -> bool:
        outcome = Recorded(
            *(endpoint_id, order_id, seq, status, attempts, next_at, last_code, last_error),
            *(last_latency_ms, response_excerpt, at),
        )
        return self.record_many([outcome]) == 1

    def record_many(self, outcomes: Sequence[Recorded]) -> int:
        """One script call (atomic) per chunk of :data:`_PAGE` outcomes."""
        fields = [self._record_fields(o) for o in outcomes]  # checked before anything is sent
        known = 0
        for start in range(0, len(fields), _PAGE):
            args: list[str | int] = [self._p]
            for one in fields[start : start + _PAGE]:
                args += one
            known += int(self._record(args=args))
        return known

    def _record_fields(self, o: Recorded) -> list[str | int]:
        status, next_at, last_error, response_excerpt = checked_outcome(
            o.status, o.next_at, o.last_error, o.response_excerpt
        )
        return [
            _key(o.endpoint_id, o.order_id, o.seq),
            o.endpoint_id,
            f"{o.endpoint_id}\0{o.order_id}",
            o.seq,
            status.value,
            o.attempts,
            _opt(None if next_at is None else float(next_at)),
            _num(o.at),
            _opt(o.last_code),
            _opt(last_error),
            _opt(None if o.last_latency_ms is None else float(o.last_latency_ms)),
            _opt(response_excerpt),
        ]

    def pending_count(self, endpoint_id: str | None = None) -> int:
        if endpoint_id is not None:
            return int(self._r.hget(f"{self._p}dlv_npend", endpoint_id) or 0)
        return sum(int(n) for n in self._r.hvals(f"{self._p}dlv_npend"))

    def failed_count(self, endpoint_id: str | None = None) -> int:
        endpoints = self._endpoints(endpoint_id)
        pipe = self._r.pipeline(transaction=False)
        for endpoint in endpoints:
            pipe.zcard(f"{self._p}dlv_failed:{endpoint}")
        return sum(int(n) for n in pipe.execute())

    def history(
        self,
        endpoint_id: str | None = None,
        *,
        order_id: str | None = None,
        failed_only: bool = False,
        limit: int = 100,
    ) -> list[Delivery]:
        if limit <= 0:
            return []
        endpoints = self._endpoints(endpoint_id)
        if order_id is not None:  # an order's deliveries are few: read them all, then sort
            keys = [k for e in endpoints for k in self._order_keys(e, order_id)]
        else:  # the newest `limit` of each endpoint's index, merged
            index = "dlv_failed" if failed_only else "dlv_ep"
            pipe = self._r.pipeline(transaction=False)
            for endpoint in endpoints:
                pipe.zrevrange(f"{self._p}{index}:{endpoint}", 0, limit - 1)
            keys = [m.decode()[21:] for members in pipe.execute() for m in members]
        found = [
            d for d in self._fetch(keys) if not failed_only or d.status is DeliveryStatus.FAILED
        ]
        found.sort(key=_newest_first, reverse=True)
        return found[:limit]

    def requeue(
        self,
        endpoint_id: str,
        *,
        order_id: str | None = None,
        since: float | None = None,
        failed_only: bool = False,
        now: float,
    ) -> int:
        if order_id is not None:
            keys = self._order_keys(endpoint_id, order_id)
        else:  # no index by created_at: the script checks `since` on each delivery
            index = "dlv_failed" if failed_only else "dlv_ep"
            keys = [m[21:] for m in self._members(f"{self._p}{index}:{endpoint_id}")]
        head: list[str | int] = [
            self._p,
            endpoint_id,
            _num(now),
            "1" if failed_only else "0",
            "" if since is None else _num(since),
        ]
        done = 0
        for start in range(0, len(keys), _PAGE):
            args = list(head)
            for key in keys[start : start + _PAGE]:
                group, seq = key.rsplit("\0", 1)
                args += [key, group, seq]
            done += int(self._requeue(args=args))
        return done

    def forget_endpoint(self, endpoint_id: str) -> int:
        index = f"{self._p}dlv_ep:{endpoint_id}"
        forgotten = 0
        while True:  # in pages: one script per 1,000 keeps Redis answering others meanwhile
            members = self._r.zrange(index, 0, _PAGE - 1)
            forgotten += int(self._forget(args=[self._p, endpoint_id, *members]))
            if not members:
                return forgotten

    # -- reading helpers ----------------------------------------------------------------

    def _endpoints(self, endpoint_id: str | None) -> list[str]:
        if endpoint_id is not None:
            return [endpoint_id]
        return sorted(e.decode() for e in self._r.smembers(f"{self._p}dlv_eps"))

    def _order_keys(self, endpoint_id: str, order_id: str) -> list[str]:
        group = f"{endpoint_id}\0{order_id}"
        seqs = self._r.zrange(f"{self._p}dlv_grp:{group}", 0, -1)
        return [f"{group}\0{seq.decode()}" for seq in seqs]

    def _members(self, index: str) -> list[str]:
        """Every member of a sorted set, in pages (``ZSCAN``: members that other writers
        move meanwhile are still seen, at least once)."""
        scanned = self._r.zscan_iter(index, count=_PAGE)
        return list(dict.fromkeys(member.decode() for member, _ in scanned))

    def _fetch(self, keys: Iterable[str]) -> list[Delivery]:
        keys = list(keys)
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(f"{self._p}dlv:{key}")
        return [_decode(key, raw) for key, raw in zip(keys, pipe.execute(), strict=True) if raw]


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    """``[k1, v1, k2, v2, ...]`` (a Lua reply) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))
