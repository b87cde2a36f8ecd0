"""Webhook deliveries, the rules without the I/O: who gets an event, what is sent, when to retry.

The deliverer (``realorders notify``) reads the event log, asks this module
which endpoints want each event, builds the Standard Webhooks message and,
after each attempt, what to do next. Keeping the rules here, pure, lets the
unit tests pin them (the retry schedule, ``Retry-After``, ``410``, the order
per order) and keeps the deliverer a loop of I/O.

- **Identity.** A delivery's ``webhook-id`` is derived from the endpoint, the
  order and the event's ``seq``: the same on every retry, in every ``notify``
  process and after a replay, so receivers de-duplicate by it.
- **Order per order** is the outbox's: ``DeliveryStore.due`` hands out an
  order's next event only once the one before is settled.
- **Retries.** The Standard Webhooks schedule (immediately, 5 s, 5 min, 30 min,
  2 h, 5 h, 10 h, 10 h) stretched with two daily attempts to about three days,
  each delay with up to 20% jitter, a ``time_scale`` for tests and demos, and
  the receiver's ``Retry-After`` honoured on ``429``/``503``.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook

from realorders.deliveries import Delivery, DeliveryStatus
from realorders.domain import Event, OrderState, Status
from realorders.views import iso
from realorders.webhooks import WebhookEndpoint

__all__ = [
    "RETRY_DELAYS",
    "Attempt",
    "Next",
    "Outcome",
    "classify",
    "message",
    "new_delivery",
    "outcome",
    "retry_delay",
    "sign",
    "wants",
    "webhook_id",
]

#: seconds before each retry (the first attempt is immediate); about 3 days in all
RETRY_DELAYS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000, 86400, 86400)
_JITTER = 0.2
_MAX_RETRY_AFTER = 86400.0  # a receiver may ask for a pause, not for a week


def wants(endpoint: WebhookEndpoint, event: Event, customer_id: str) -> bool:
    """Whether ``endpoint`` gets ``event`` of an order of ``customer_id``."""
    if not endpoint.enabled:
        return False
    if endpoint.events is not None and event.status not in endpoint.events:
        return False
    return endpoint.customer_id is None or endpoint.customer_id == customer_id


def webhook_id(endpoint_id: str, order_id: str, seq: int) -> str:
    """``msg_`` and a digest of (endpoint, order, seq): stable across retries and processes.

    Order ids may hold any text; a header value may not, hence the digest.
    """
    key = f"{endpoint_id}\0{order_id}\0{seq}".encode("utf-8", "surrogatepass")
    return "msg_" + hashlib.sha256(key).hexdigest()[:32]


def new_delivery(endpoint_id: str, order_id: str, seq: int, cursor: int, at: float) -> Delivery:
    """What the event at ``cursor`` owes ``endpoint_id``: pending, due at once, no attempt yet."""
    return Delivery(
        endpoint_id=endpoint_id,
        order_id=order_id,
        seq=seq,
        cursor=cursor,
        msg_id=webhook_id(endpoint_id, order_id, seq),
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_at=at,
        created_at=at,
        updated_at=at,
    )


def message(event: Event, order: OrderState, previous: Status | None) -> dict[str, Any]:
    """The body of a delivery: ``{"type": "order.<status>", "timestamp", "data"}``."""
    return {
        "type": f"order.{event.status.value}",
        "timestamp": iso(event.at),
        "data": {
            "order_id": event.order_id,
            "customer_id": order.customer_id,
            "status": event.status.value,
            "previous_status": None if previous is None else previous.value,
            "seq": event.seq,
            "items": order.items,
            "total": order.total,
            "reason": event.reason,
        },
    }


def sign(secrets: Sequence[str], msg_id: str, timestamp: float, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; one ``v1,`` signature per secret (rotation)."""
    at = datetime.fromtimestamp(int(timestamp), UTC)
    text = body.decode()
    signatures = " ".join(_signer(secret).sign(msg_id, at, text) for secret in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signatures,
    }


@functools.lru_cache(maxsize=256)
def _signer(secret: str) -> Webhook:
    """One per secret: a Webhook decodes its secret when made, not on every signature."""
    return Webhook(secret)


def encode(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)


class Next(enum.Enum):
    """What an attempt's outcome means for the delivery."""

    DONE = "done"  # 2xx: delivered
    RETRY = "retry"  # try again later (or give up once the schedule is spent)
    GONE = "gone"  # 410: the receiver asks never to be called again: disable the endpoint


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try: the status code (None when there was no answer), or the error."""

    status: int | None
    error: str | None = None
    retry_after: str | None = None  # the header, as sent


def classify(attempt: Attempt) -> Next:
    if attempt.status is not None and 200 <= attempt.status < 300:
        return Next.DONE
    if attempt.status == 410:
        return Next.GONE
    return Next.RETRY


def retry_delay(
    retries_done: int,
    attempt: Attempt,
    *,
    now: float,
    time_scale: float = 1.0,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next try after ``retries_done`` retries, or None: give up.

    The schedule's delay with up to 20% jitter (so a recovered receiver is not
    hit by every endpoint's backlog at once), scaled by ``time_scale``; on
    ``429``/``503`` at least the receiver's ``Retry-After`` (seconds or an
    HTTP date; capped at a day), which is not scaled: it is the receiver's.
    """
    if retries_done >= len(RETRY_DELAYS):
        return None
    base = RETRY_DELAYS[retries_done] * time_scale
    delay = base * (1 + (rng or random).uniform(-_JITTER, _JITTER))
    if attempt.status in (429, 503) and attempt.retry_after:
        asked = _retry_after(attempt.retry_after, now)
        if asked is not None:
            delay = max(delay, asked)
    return delay


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to store after an attempt: the delivery's new status, when it is due again
    (pending only) and the attempt as an operator should read it."""

    status: DeliveryStatus
    next_at: float | None
    attempt: Attempt


def outcome(
    attempts_before: int,
    attempt: Attempt,
    *,
    now: float,
    time_scale: float = 1.0,
    rng: random.Random | None = None,
) -> Outcome:
    """2xx delivered; 410 failed (the caller disables the endpoint); else a retry on the
    schedule, or failed once it is spent."""
    verdict = classify(attempt)
    if verdict is Next.DONE:
        return Outcome(DeliveryStatus.DELIVERED, None, attempt)
    if verdict is Next.GONE:
        gone = Attempt(attempt.status, "410 Gone: the endpoint was disabled")
        return Outcome(DeliveryStatus.FAILED, None, gone)
    delay = retry_delay(attempts_before, attempt, now=now, time_scale=time_scale, rng=rng)
    if delay is None:
        return Outcome(DeliveryStatus.FAILED, None, attempt)
    return Outcome(DeliveryStatus.PENDING, now + delay, attempt)


def _retry_after(value: str, now: float) -> float | None:
    text = value.strip()
    if text.isdigit():
        return min(float(text), _MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), _MAX_RETRY_AFTER)
