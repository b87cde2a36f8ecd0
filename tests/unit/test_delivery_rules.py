"""The webhook delivery rules (realorders.delivery): who gets what, signed how, retried when."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from realorders.deliveries import DeliveryStatus
from realorders.delivery import (
    RETRY_DELAYS,
    Attempt,
    Next,
    classify,
    encode,
    message,
    outcome,
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


def test_the_outcome_of_an_attempt_is_what_the_store_keeps() -> None:
    rng = random.Random(3)
    done = outcome(0, Attempt(204), now=100.0, rng=rng)
    assert (done.status, done.next_at) == (DeliveryStatus.DELIVERED, None)
    gone = outcome(0, Attempt(410), now=100.0, rng=rng)
    assert (gone.status, gone.next_at) == (DeliveryStatus.FAILED, None)
    assert gone.attempt == Attempt(410, "410 Gone: the endpoint was disabled")
    retry = outcome(0, Attempt(None, "timeout after 15 s"), now=100.0, rng=rng)
    assert retry.status is DeliveryStatus.PENDING
    assert retry.next_at is not None
    assert 104.0 <= retry.next_at <= 106.0
    assert retry.attempt.error == "timeout after 15 s"
    scaled = outcome(1, Attempt(500), now=100.0, time_scale=0.01, rng=rng)
    assert scaled.next_at is not None
    assert 102.4 <= scaled.next_at <= 103.6
    spent = outcome(len(RETRY_DELAYS), Attempt(500), now=100.0, rng=rng)
    assert (spent.status, spent.next_at, spent.attempt) == (
        DeliveryStatus.FAILED,
        None,
        Attempt(500),
    )
