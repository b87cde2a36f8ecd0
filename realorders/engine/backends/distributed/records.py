"""The records of ``PREFIX.events``: the form the engine writes, and both forms it reads.

A record holds the events one batch made for one order. Since issue 16 it is a
self-describing JSON object, ``realorders.events/2``, that any Kafka consumer
can read without realorders (schema: ``docs/events.schema.json``)::

    {"schema": "realorders.events/2", "order_id": "A-1",
     "events": [{"seq": 1, "status": "pending", "at": 1764694800.123456, "data": {...}}, ...]}

with headers ``content-type: application/json`` and ``event-types:
order.pending,order.reserved,...`` (webhooks' ``order.<status>`` names, in
record order), so a consumer can filter without parsing. ``at`` is Unix time in
seconds, exactly the float realorders folds (an ISO string would round it, and
cost CPU and Redis memory on every event).

Records written before are positional arrays, ``[[order_id, seq, status, at,
data], ...]``; the topic is kept forever, so every reader takes both. Additive
changes keep the schema name (readers ignore fields they do not know); a record
naming another schema is refused rather than misread.

Each event's JSON (no order id) is encoded once per batch and used twice: spliced
into its order's record, and stored as is by the Redis projection (``ev:<id>``,
the tail), which keeps the order id beside it.
"""

from __future__ import annotations

from typing import Any

import orjson

from realorders.domain import Event, Status

__all__ = [
    "CONTENT_TYPE",
    "SCHEMA",
    "EventRecord",
    "decode_record",
    "encode_batch",
    "encode_event",
    "event_from_dict",
    "event_from_list",
    "stored_event",
]

SCHEMA = "realorders.events/2"
CONTENT_TYPE = "application/json"

#: (order id, value, headers): one record of the events topic, ready for ``send``
EventRecord = tuple[str, bytes, list[tuple[str, bytes]]]

_STATUSES = {s.value: s for s in Status}
_HEAD = b'{"schema":"' + SCHEMA.encode() + b'","order_id":'
_EVENTS = b',"events":['
_END = b"]}"
_CONTENT_TYPE = ("content-type", CONTENT_TYPE.encode())
#: headers by sequence of statuses: a handful of lifecycle paths, built once each
_HEADERS: dict[tuple[Status, ...], list[tuple[str, bytes]]] = {}


def encode_event(event: Event) -> bytes:
    """One event as records and Redis hold it: ``{"seq", "status", "at", "data"}``."""
    return orjson.dumps(
        {"seq": event.seq, "status": event.status, "at": event.at, "data": event.data}
    )


def encode_batch(events: list[Event]) -> tuple[list[bytes], list[EventRecord]]:
    """Each event's JSON (in ``events``' order, for the projection) and a record per order."""
    dumps = orjson.dumps
    encoded = [
        dumps({"seq": e.seq, "status": e.status, "at": e.at, "data": e.data}) for e in events
    ]
    groups: dict[str, tuple[list[bytes], list[Status]]] = {}
    for event, raw in zip(events, encoded, strict=True):
        group = groups.get(event.order_id)
        if group is None:
            groups[event.order_id] = group = ([], [])
        group[0].append(raw)
        group[1].append(event.status)
    records = [
        (
            order_id,
            b"".join((_HEAD, dumps(order_id), _EVENTS, b",".join(raws), _END)),
            _headers(tuple(statuses)),
        )
        for order_id, (raws, statuses) in groups.items()
    ]
    return encoded, records


def _headers(statuses: tuple[Status, ...]) -> list[tuple[str, bytes]]:
    headers = _HEADERS.get(statuses)
    if headers is None:
        types = ",".join(f"order.{s.value}" for s in statuses).encode()
        headers = _HEADERS[statuses] = [_CONTENT_TYPE, ("event-types", types)]
    return headers


def decode_record(value: bytes) -> list[Event]:
    """The events of one record, in either form."""
    doc = orjson.loads(value)
    if isinstance(doc, list):  # before issue 16: [[order_id, seq, status, at, data], ...]
        return [event_from_list(fields) for fields in doc]
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema != SCHEMA:
        raise ValueError(f"an events record of schema {schema!r}; this realorders reads {SCHEMA}")
    order_id = doc["order_id"]
    return [event_from_dict(order_id, fields) for fields in doc["events"]]


def event_from_dict(order_id: str, fields: dict[str, Any]) -> Event:
    return Event(order_id, fields["seq"], _STATUSES[fields["status"]], fields["at"], fields["data"])


def event_from_list(fields: list[Any]) -> Event:
    order_id, seq, status, at, data = fields
    return Event(order_id, seq, _STATUSES[status], at, data)


def stored_event(order_id: str, fields: Any) -> Event:
    """An event as Redis stores it: the object (order id kept beside it) or, older, the array."""
    if isinstance(fields, dict):
        return event_from_dict(order_id, fields)
    return event_from_list(fields)
