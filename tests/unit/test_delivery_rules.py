"""The webhook delivery rules (realorders.delivery): who gets what, signed how, retried when."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from realorders.delivery import (
    RETRY_DELAYS,
    Attempt,
    Next,
    OrderedQueue,
    classify,
    encode,
    message,
    retry_delay,
    sign,
    wants,
    webhook_id,
)
from realorders.domain import Event, OrderState, Status
from realorders.webhooks import WebhookEndpoint, new_secret


def endpoint(**changes: object) -> WebhookEndpoint:
    fields: dict[str, object] = {
        "endpoint_id": "we_0123456789ab",
        "url": "http://127.0.0.1:9/hook",
        "events": None,
        "customer_id": None,
        "description": None,
        "enabled": True,
        "disabled_reason": None,
        "created_at": 0.0,
        "updated_at": 0.0,
    }
    fields.update(changes)
    return WebhookEndpoint(**fields)  # type: ignore[arg-type]


SHIPPED = Event("o-1", 4, Status.SHIPPED, 1_700_000_000.5)
ORDER = OrderState(
    id="o-1",
    customer_id="ada",
    items=[{"product_id": "KB-01", "quantity": 2, "price": 89.0}],
    notes=None,
    status=Status.SHIPPED,
    version=4,
    created_at=1_700_000_000.0,
    updated_at=1_700_000_000.5,
    arrival=1,
    total=178.0,
)


def test_an_endpoint_gets_the_statuses_and_customer_it_asked_for() -> None:
    assert wants(endpoint(), SHIPPED, "ada")
    assert wants(endpoint(events=frozenset({Status.SHIPPED})), SHIPPED, "ada")
    assert not wants(endpoint(events=frozenset({Status.DELIVERED})), SHIPPED, "ada")
    assert wants(endpoint(customer_id="ada"), SHIPPED, "ada")
    assert not wants(endpoint(customer_id="bob"), SHIPPED, "ada")
    assert not wants(endpoint(enabled=False, disabled_reason="410 Gone"), SHIPPED, "ada")


def test_webhook_ids_are_stable_distinct_and_header_safe() -> None:
    odd = "ünï/../'; DROP TABLE orders;--\u2028"
    first = webhook_id("we_1", odd, 3)
    assert first == webhook_id("we_1", odd, 3)  # every retry, every process
    assert first.startswith("msg_")
    assert first.isascii()
    assert first.isprintable()
    others = {webhook_id("we_2", odd, 3), webhook_id("we_1", odd, 4), webhook_id("we_1", "x", 3)}
    assert first not in others
    assert len(others) == 3
    assert webhook_id("we_1", "a\0b", 1) != webhook_id("we_1", "a", 0)  # no ambiguity


def test_the_message_says_what_changed_and_for_whom() -> None:
    body = message(SHIPPED, ORDER, Status.PACKED)
    assert body == {
        "type": "order.shipped",
        "timestamp": "2023-11-14T22:13:20.500Z",
        "data": {
            "order_id": "o-1",
            "customer_id": "ada",
            "status": "shipped",
            "previous_status": "packed",
            "seq": 4,
            "items": [{"product_id": "KB-01", "quantity": 2, "price": 89.0}],
            "total": 178.0,
            "reason": None,
        },
    }
    rejected = Event("o-1", 2, Status.REJECTED, 1.0, {"reason": "unknown product"})
    assert message(rejected, ORDER, None)["data"]["reason"] == "unknown product"


def test_signatures_verify_with_the_reference_library_also_across_a_rotation() -> None:
    old, new = new_secret(), new_secret()
    body = encode(message(SHIPPED, ORDER, Status.PACKED))
    now = time.time()
    headers = sign([new, old], "msg_abc", now, body)
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == str(int(now))
    for secret in (new, old):  # receivers on either secret accept it
        assert Webhook(secret).verify(body, headers)["type"] == "order.shipped"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body.replace(b"shipped", b"delivered"), headers)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, Next.DONE), (204, Next.DONE), (299, Next.DONE), (410, Next.GONE),
     (301, Next.RETRY), (400, Next.RETRY), (429, Next.RETRY), (500, Next.RETRY),
     (503, Next.RETRY), (None, Next.RETRY)],
)  # fmt: skip
def test_only_2xx_delivers_and_410_means_gone(status: int | None, expected: Next) -> None:
    assert classify(Attempt(status, None if status else "connection refused")) is expected


def test_retries_follow_the_schedule_with_jitter_then_give_up() -> None:
    rng = random.Random(7)
    failed = Attempt(500)
    for done, base in enumerate(RETRY_DELAYS):
        delay = retry_delay(done, failed, now=0.0, rng=rng)
        assert delay is not None
        assert base * 0.8 <= delay <= base * 1.2
    assert retry_delay(len(RETRY_DELAYS), failed, now=0.0) is None
    assert 2.5 * 24 * 3600 < sum(RETRY_DELAYS) < 3.5 * 24 * 3600  # about three days in all
    scaled = retry_delay(1, failed, now=0.0, time_scale=0.001, rng=rng)
    assert scaled is not None
    assert 0.24 <= scaled <= 0.36  # 5 min at a thousandth


def test_retry_after_is_honoured_on_429_and_503_only() -> None:
    rng = random.Random(1)
    assert retry_delay(0, Attempt(429, retry_after="120"), now=0.0, rng=rng) == 120.0
    assert retry_delay(0, Attempt(503, retry_after="999999999"), now=0.0, rng=rng) == 86400.0
    later = datetime(2030, 1, 1, 0, 10, tzinfo=UTC)
    now = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    asked = retry_delay(0, Attempt(503, retry_after=format_datetime(later, usegmt=True)), now=now)
    assert asked == 600.0
    ignored = retry_delay(0, Attempt(500, retry_after="120"), now=0.0, rng=rng)
    assert ignored is not None
    assert ignored <= 6.0
    garbage = retry_delay(0, Attempt(429, retry_after="soon"), now=0.0, rng=rng)
    assert garbage is not None
    assert garbage <= 6.0


def test_the_queue_holds_an_order_back_until_its_last_event_settles() -> None:
    queue: OrderedQueue[str, int] = OrderedQueue()
    queue.extend([("a", 1), ("b", 1), ("a", 2)])
    assert queue.take() == ("a", 1)
    assert queue.take() == ("b", 1)
    assert queue.take() is None  # a's second waits for its first
    assert queue.in_flight == 2
    queue.settle("a")
    assert queue.take() == ("a", 2)
    queue.settle("a")
    queue.settle("b")
    assert queue.take() is None
    assert len(queue) == 0


@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers()), max_size=60),
    st.randoms(use_true_random=False),
)
def test_every_item_comes_out_once_in_order_per_key_one_in_flight_each(
    pairs: list[tuple[str, int]], rnd: random.Random
) -> None:
    queue: OrderedQueue[str, tuple[int, int]] = OrderedQueue()
    numbered = [(key, (i, value)) for i, (key, value) in enumerate(pairs)]
    half = len(numbered) // 2
    queue.extend(numbered[:half])
    out: list[tuple[str, tuple[int, int]]] = []
    flying: list[str] = []
    late = numbered[half:]
    while True:
        if late and rnd.random() < 0.3:
            queue.add(*late.pop(0))  # more arrive while some are in flight
        taken = queue.take()
        if taken is not None:
            assert taken[0] not in flying  # one in flight per key
            flying.append(taken[0])
            out.append(taken)
        elif flying:
            queue.settle(flying.pop(rnd.randrange(len(flying))))
        elif late:
            queue.add(*late.pop(0))
        else:
            break
    assert sorted(out, key=lambda kv: kv[1][0]) == numbered  # each once
    for key in "abcd":
        mine = [item[0] for k, item in out if k == key]
        assert mine == sorted(mine)  # in arrival order per key
