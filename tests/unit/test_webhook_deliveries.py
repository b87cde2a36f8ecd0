"""What operators see and fix of webhook deliveries: the Client's ``webhook_deliveries`` and
``replay_webhook`` (on a SQLite file), and the CLI's parsing of ``--since`` and its table
cells. Both backends through the console script: ``test_webhook_deliveries`` in
tests/e2e/test_command_table.py; the store's rules: tests/contract/test_deliveries.py."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from realorders import Client
from realorders._webhooks import MAX_HISTORY
from realorders.cli.webhook_deliveries import _cut, _next_try, _result, _span, parse_since
from realorders.deliveries import MAX_EXCERPT, Delivery, DeliveryStatus
from realorders.delivery import new_delivery
from realorders.errors import InputError, NotFoundError, UsageError

NOW = 1_764_000_000.0
UNKNOWN = "we_000000000000"


def settle(client: Client, d: Delivery, status: DeliveryStatus, at: float) -> None:
    assert client.backend.deliveries.record(
        d.endpoint_id, d.order_id, d.seq, status=status, attempts=1, next_at=None,
        last_code=200 if status is DeliveryStatus.DELIVERED else 500, last_error=None,
        last_latency_ms=5.0, response_excerpt="ok", at=at,
    )  # fmt: skip


@pytest.fixture
def endpoint_id(client: Client) -> str:
    return client.add_webhook("https://crm.example/in")[0].endpoint_id


# -- the Client ----------------------------------------------------------------------------


def test_deliveries_are_newest_first_and_filtered(client: Client, endpoint_id: str) -> None:
    other = client.add_webhook("https://ops.example/in")[0].endpoint_id
    made = [
        new_delivery(endpoint_id, "A", 1, 1, NOW),
        new_delivery(endpoint_id, "A", 2, 2, NOW + 1),
        new_delivery(other, "A", 1, 1, NOW + 2),
    ]
    client.backend.deliveries.enqueue(made, 2)
    settle(client, made[0], DeliveryStatus.FAILED, NOW + 10)
    assert [d.key for d in client.webhook_deliveries()] == [m.key for m in (made[0], *made[:0:-1])]
    assert [d.key for d in client.webhook_deliveries(endpoint_id)] == [made[0].key, made[1].key]
    assert [d.key for d in client.webhook_deliveries(failed_only=True)] == [made[0].key]
    assert [d.key for d in client.webhook_deliveries(other, order_id="A")] == [made[2].key]
    assert len(client.webhook_deliveries(limit=1)) == 1
    assert client.webhook_deliveries(order_id="B") == []


@pytest.mark.parametrize("limit", [0, -1, MAX_HISTORY + 1, 2.5, True])
def test_a_bad_limit_is_refused(client: Client, limit: object) -> None:
    with pytest.raises(InputError, match="limit must be between 1 and 10000"):
        client.webhook_deliveries(limit=limit)  # type: ignore[arg-type]  # the bad cases


def test_an_unknown_endpoint_is_not_found_rather_than_empty(client: Client) -> None:
    with pytest.raises(NotFoundError, match=f"no webhook endpoint '{UNKNOWN}'"):
        client.webhook_deliveries(UNKNOWN)
    with pytest.raises(NotFoundError, match=f"no webhook endpoint '{UNKNOWN}'"):
        client.replay_webhook(UNKNOWN)


def test_replay_requeues_settled_ones_even_of_a_disabled_endpoint(
    client: Client, endpoint_id: str
) -> None:
    old, new, waiting = (
        new_delivery(endpoint_id, "A", 1, 1, NOW - 7200),
        new_delivery(endpoint_id, "B", 1, 2, time.time() - 60),
        new_delivery(endpoint_id, "C", 1, 3, NOW),
    )
    client.backend.deliveries.enqueue([old, new, waiting], 3)
    settle(client, old, DeliveryStatus.FAILED, NOW)
    settle(client, new, DeliveryStatus.DELIVERED, time.time())
    client.disable_webhook(endpoint_id, "receiver down")
    assert client.replay_webhook(endpoint_id, since=time.time() - 3600) == 1  # B
    assert client.replay_webhook(endpoint_id, failed_only=True, order_id="B") == 0
    assert client.replay_webhook(endpoint_id) == 1  # A; C was never settled
    replayed = client.webhook_deliveries(endpoint_id)
    assert {(d.status, d.attempts) for d in replayed} == {(DeliveryStatus.PENDING, 0)}
    assert next(d for d in replayed if d.order_id == "A").last_code == 500  # kept: why it failed
    assert client.webhook(endpoint_id).enabled is False  # a replay does not enable it


@pytest.mark.parametrize("since", [math.nan, math.inf, "2026-12-03", True])
def test_since_must_be_epoch_seconds(client: Client, endpoint_id: str, since: object) -> None:
    with pytest.raises(InputError, match="since must be a time in epoch seconds"):
        client.replay_webhook(endpoint_id, since=since)  # type: ignore[arg-type]  # bad cases


# -- --since -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-24T16:00:00Z", datetime(2025, 11, 24, 16, tzinfo=UTC).timestamp()),
        ("2025-11-24T17:00:00+01:00", datetime(2025, 11, 24, 16, tzinfo=UTC).timestamp()),
        ("2025-11-24", datetime(2025, 11, 24).timestamp()),  # no offset: local time
        ("30m", NOW - 1800),
        (" 2h ", NOW - 7200),
        ("90s", NOW - 90),
    ],
)
def test_since_is_an_iso_time_or_a_duration_ago(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("yesterday", "'yesterday' is neither an ISO 8601 time"),
        ("-1h", "neither an ISO 8601 time"),
        ("90", "'90' needs a unit"),  # seconds ago, or epoch seconds? neither guessed
        ("1764000000", "needs a unit"),
        ("2025-11-25T00:00:00Z", "is in the future"),
        ("", "neither an ISO 8601 time"),
        ("0001-01-01", "neither an ISO 8601 time"),  # before the clock's first year
        ("1e400h", "too long ago"),
    ],
)
def test_a_bad_since_is_a_usage_error_naming_the_option(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as caught:
        parse_since(text, NOW)
    assert str(caught.value).startswith("--since: ")
    assert caught.value.exit_code == 2


# -- the table's cells ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "1s"), (12, "12s"), (250, "4m 10s"), (3600, "1h"), (3725, "1h 2m"), (90000, "1d 1h")],
)
def test_a_span_is_two_units_at_most(seconds: float, text: str) -> None:
    assert _span(seconds) == text


def test_cells_say_what_happened_on_one_line() -> None:
    d = new_delivery("we_1", "A", 1, 1, NOW)
    assert (_result(d), _next_try(d, NOW), _cut(d.response_excerpt)) == ("-", "due now", "-")
    retry = replace(d, attempts=1, next_at=NOW + 250, last_code=503, last_error="busy")
    assert (_result(retry), _next_try(retry, NOW)) == ("503: busy", "in 4m 10s")
    failed = replace(d, status=DeliveryStatus.FAILED, next_at=None, last_error="timed out")
    assert (_result(failed), _next_try(failed, NOW)) == ("timed out", "-")
    assert _cut("") == "(empty)"
    answer = '{"error":\n\t"boom"}\x1b[31m' + "x" * MAX_EXCERPT
    assert _cut(answer) == '{"error": "boom"} [31m' + "x" * 17 + "…"
