"""Records of the events topic: the readable form written now, and the older one still read.

The bytes here are recorded, not rebuilt by the code under test: the record is a
contract with consumers outside realorders (docs/events.schema.json), and topics
written before issue 16 hold the positional form forever.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from realorders.domain import Event, Status, fold
from realorders.engine.backends.distributed.records import (
    SCHEMA,
    decode_record,
    encode_batch,
    encode_event,
    stored_event,
)

ROOT = Path(__file__).resolve().parents[2]
AT = 1764694800.1234567  # a float as time.time() gives it: it must come back bit for bit
PENDING: dict[str, Any] = {
    "customer_id": "ada",
    "items": [{"product_id": "KB-01", "quantity": 2, "price": 89.0}],
    "created_at": 1764694799.9876542,
    "arrival": 7,
    "notes": "gift",
}

#: a record as realorders wrote it before issue 16 (one order, one batch)
V1_RECORD = (
    b'[["ORD-1",1,"pending",1764694800.1234567,{"customer_id":"ada","items":'
    b'[{"product_id":"KB-01","quantity":2,"price":89.0}],"created_at":1764694799.9876542,'
    b'"arrival":7,"notes":"gift"}],["ORD-1",2,"backordered",1764694800.25,'
    b'{"reason":"not enough stock: KB-01 needs 2, 0 available"}]]'
)
#: the same events as realorders writes them now
V2_RECORD = (
    b'{"schema":"realorders.events/2","order_id":"ORD-1","events":['
    b'{"seq":1,"status":"pending","at":1764694800.1234567,"data":{"customer_id":"ada","items":'
    b'[{"product_id":"KB-01","quantity":2,"price":89.0}],"created_at":1764694799.9876542,'
    b'"arrival":7,"notes":"gift"}},{"seq":2,"status":"backordered","at":1764694800.25,'
    b'"data":{"reason":"not enough stock: KB-01 needs 2, 0 available"}}]}'
)
REASON = "not enough stock: KB-01 needs 2, 0 available"
EVENTS = [
    Event("ORD-1", 1, Status.PENDING, AT, PENDING),
    Event("ORD-1", 2, Status.BACKORDERED, 1764694800.25, {"reason": REASON}),
]


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads((ROOT / "docs" / "events.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def lifecycle(order_id: str, start: float) -> list[Event]:
    statuses = [Status.RESERVED, Status.PACKED, Status.SHIPPED, Status.DELIVERED]
    events = [Event(order_id, 1, Status.PENDING, start, PENDING)]
    events += [Event(order_id, i + 2, s, start + i + 1, None) for i, s in enumerate(statuses)]
    return events


def test_the_record_written_is_the_documented_object() -> None:
    encoded, records = encode_batch(EVENTS)
    assert records == [
        (
            "ORD-1",
            V2_RECORD,
            [
                ("content-type", b"application/json"),
                ("event-types", b"order.pending,order.backordered"),
            ],
        )
    ]
    assert encoded == [encode_event(e) for e in EVENTS]  # what the projection stores
    assert orjson.loads(V2_RECORD)["schema"] == SCHEMA


def test_both_forms_decode_to_the_same_events() -> None:
    assert decode_record(V1_RECORD) == EVENTS
    assert decode_record(V2_RECORD) == EVENTS
    assert decode_record(V2_RECORD)[0].at == AT  # exact: ``check`` folds these values


def test_a_batch_becomes_one_record_per_order_and_round_trips() -> None:
    events = lifecycle("A", 1_700_000_000.5)[:3] + lifecycle("B", 1_700_000_001.25)
    events += [
        Event("C", 1, Status.PENDING, 1_700_000_002.0, PENDING | {"items": []}),
        Event("C", 2, Status.REJECTED, 1_700_000_002.5, {"reason": "unknown product 'X'"}),
        Event("A", 4, Status.CANCELLED, 1_700_000_003.0, {"reason": "cancelled by request"}),
    ]
    encoded, records = encode_batch(events)
    assert len(encoded) == len(events)
    assert [order_id for order_id, _, _ in records] == ["A", "B", "C"]
    decoded = {order_id: decode_record(value) for order_id, value, _ in records}
    for order_id, got in decoded.items():
        assert got == [e for e in events if e.order_id == order_id]
    assert fold(decoded["B"]) == fold(lifecycle("B", 1_700_000_001.25))
    types = {order_id: dict(headers)["event-types"] for order_id, _, headers in records}
    assert types["A"] == b"order.pending,order.reserved,order.packed,order.cancelled"
    assert types["C"] == b"order.pending,order.rejected"


def test_every_record_validates_against_the_documented_schema(
    validator: Draft202012Validator,
) -> None:
    events = lifecycle("A", 1_700_000_000.5) + EVENTS
    no_notes = {k: v for k, v in PENDING.items() if k != "notes"}
    events.append(
        Event(
            "R",
            1,
            Status.PENDING,
            1.0,
            no_notes | {"items": [{**PENDING["items"][0], "price": None}]},
        )
    )
    events.append(Event("R", 2, Status.REJECTED, 2.0, {"reason": "unknown product 'X'"}))
    _, records = encode_batch(events)
    for _, value, _ in records:
        validator.validate(orjson.loads(value))
    validator.validate(orjson.loads(V2_RECORD))


@pytest.mark.parametrize(
    "document",
    [
        orjson.loads(V1_RECORD),  # the old form is not the documented one
        {"schema": "realorders.events/3", "order_id": "A", "events": []},
        {"schema": SCHEMA, "order_id": "A", "events": [{"seq": 1, "status": "pending"}]},
        {
            "schema": SCHEMA,
            "order_id": "A",
            "events": [{"seq": 2, "status": "shipped", "at": 1.0, "data": {"reason": "x"}}],
        },
        {
            "schema": SCHEMA,
            "order_id": "A",
            "events": [{"seq": 1, "status": "pending", "at": 1.0, "data": {"reason": "x"}}],
        },
    ],
)
def test_the_schema_refuses_what_is_not_a_record(
    validator: Draft202012Validator, document: Any
) -> None:
    assert not validator.is_valid(document)


def test_a_record_of_another_schema_is_refused_not_misread() -> None:
    with pytest.raises(ValueError, match=r"realorders\.events/3"):
        decode_record(b'{"schema":"realorders.events/3","order_id":"A","events":[]}')
    with pytest.raises(ValueError, match="None"):
        decode_record(b'{"order_id":"A"}')


def test_redis_keeps_either_form_per_event() -> None:
    old = orjson.loads(V1_RECORD)[1]  # projected before issue 16: the array, id inside
    new = orjson.loads(encode_event(EVENTS[1]))  # now: the object, id beside it
    assert "order_id" not in new
    assert stored_event("ORD-1", old) == stored_event("ORD-1", new) == EVENTS[1]
