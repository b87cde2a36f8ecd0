"""Webhook endpoints: ids, secrets (checked with the Standard Webhooks reference library),
URL and events checks, rotation, and the Client's webhook methods (on a SQLite file;
tests/contract runs the store on every backend)."""

from __future__ import annotations

import base64
import re
import sqlite3
import time
from contextlib import closing
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from realorders import Client
from realorders.delivery import new_delivery
from realorders.domain import Status
from realorders.engine.backends.sqlite.backend import SqliteBackend
from realorders.engine.backends.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, connect
from realorders.errors import InputError, NotFoundError
from realorders.tokens import Scope, new_token
from realorders.webhooks import (
    MAX_URL,
    WebhookEndpoint,
    WebhookSecrets,
    check_events,
    check_grace,
    check_url,
    events_text,
    new_endpoint_id,
    new_secret,
    parse_events,
)

SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")

# -- ids and secrets -----------------------------------------------------------------------


def test_endpoint_ids_are_we_and_12_hex_characters_and_unique() -> None:
    ids = [new_endpoint_id() for _ in range(200)]
    assert all(re.fullmatch(r"we_[0-9a-f]{12}", i) for i in ids), ids[:3]
    assert len(set(ids)) == 200


def test_a_secret_is_whsec_and_standard_base64_of_32_random_bytes() -> None:
    minted = [new_secret() for _ in range(200)]
    assert len(set(minted)) == 200
    for secret in minted:
        assert SECRET.fullmatch(secret), secret
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_the_reference_library_signs_and_verifies_with_a_new_secret() -> None:
    secret = new_secret()
    body = '{"type":"order.shipped","data":{"order_id":"o-1"}}'
    now = datetime.now(tz=UTC)
    signature = Webhook(secret).sign("msg_1", now, body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert Webhook(secret).verify(body, headers) == {
        "type": "order.shipped",
        "data": {"order_id": "o-1"},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("o-1", "o-2"), headers)


def test_secrets_never_show_in_a_repr() -> None:
    current, previous = new_secret(), new_secret()
    kept = WebhookSecrets(current, previous, 1_764_000_000.0)
    for text in (repr(kept), str(kept), f"{kept!r}"):
        assert current not in text
        assert previous not in text
        assert "whsec_" not in text
    # the record has no secret to show: they are a value of their own
    assert not any("secret" in f.name for f in fields(WebhookEndpoint))


def test_the_previous_secret_is_valid_until_its_time() -> None:
    kept = WebhookSecrets("whsec_new", "whsec_old", 1000.0)
    assert kept.valid(999.999) == ["whsec_new", "whsec_old"]
    assert kept.valid(1000.0) == ["whsec_new"]
    assert kept.valid(5000.0) == ["whsec_new"]
    assert WebhookSecrets("whsec_only").valid(0.0) == ["whsec_only"]


def test_a_rotation_keeps_one_previous_secret_for_the_grace() -> None:
    first = WebhookSecrets("whsec_1")
    second = first.rotated("whsec_2", 100.0, 60.0)
    assert second == WebhookSecrets("whsec_2", "whsec_1", 160.0)
    third = second.rotated("whsec_3", 110.0, 60.0)  # within the grace: whsec_1 ends now
    assert third.valid(111.0) == ["whsec_3", "whsec_2"]
    assert first.rotated("whsec_2", 100.0, 0.0) == WebhookSecrets("whsec_2")


@pytest.mark.parametrize("grace", [0, 0.0, 1.5, 86_400, 10**9])
def test_valid_graces(grace: float) -> None:
    assert check_grace(grace) == float(grace)


@pytest.mark.parametrize("grace", [-1, -0.001, float("inf"), float("nan"), True, "60"])
def test_invalid_graces(grace: object) -> None:
    with pytest.raises(InputError, match="grace"):
        check_grace(grace)  # type: ignore[arg-type]  # what a caller might pass


# -- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/realorders",
        "http://127.0.0.1:8080/in?token=abc&x=1",
        "HTTPS://Example.COM",
        "http://[::1]:9000/hook",
        "https://xn--bcher-kva.example/path#frag",
        "https://bücher.example/ünïcode",
        "https://h/" + "a" * (MAX_URL - len("https://h/")),
    ],
)
def test_valid_urls(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("ftp://files.example/x", "http:// or https://, not ftp:"),
        ("file:///etc/passwd", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("hooks.example.com/x", "http:// or https://"),
        ("//hooks.example.com/x", "http:// or https://"),
        ("http://", "no host"),
        ("https:///path", "no host"),
        ("http://:80/x", "no host"),
        ("https://user:s3cr3t@hooks.example/x", "user name or password"),
        ("https://user@hooks.example/x", "user name or password"),
        ("https://hooks.example/a b", "whitespace"),
        (" https://hooks.example/", "whitespace"),
        ("https://hooks.example/\n", "whitespace"),
        ("https://hooks.example/\t", "whitespace"),
        ("https://hooks.example/\x00", "control character"),
        ("https://hooks.example/\x7f", "control character"),
        ("https://hooks.example/\u00a0", "whitespace"),
        ("https://hooks.example/\ud800", "surrogate"),
        ("http://hooks.example:99999/", "malformed"),
        ("http://hooks.example:port/", "malformed"),
        ("http://[::1/", "malformed"),
        ("https://h/" + "a" * (MAX_URL + 1 - len("https://h/")), f"at most {MAX_URL}"),
    ],
)
def test_invalid_urls(url: str, why: str) -> None:
    with pytest.raises(InputError, match=re.escape(why)) as refused:
        check_url(url)
    assert "s3cr3t" not in str(refused.value)  # a credential in the URL is never repeated


@pytest.mark.parametrize("thing", [None, b"https://x/", 42])
def test_a_url_that_is_not_text_is_refused(thing: object) -> None:
    with pytest.raises(InputError, match="webhook URL must be text"):
        check_url(thing)


def test_a_huge_url_is_refused_by_its_length_first() -> None:
    with pytest.raises(InputError, match=f"at most {MAX_URL}"):
        check_url("https://h/ " + "a" * 10_000_000)


# -- events --------------------------------------------------------------------------------


def test_all_is_every_status() -> None:
    assert parse_events("all") is None
    assert parse_events(" all ") is None
    assert check_events(None) is None
    assert check_events("all") is None
    assert events_text(None) == "all"


def test_statuses_are_comma_separated_names() -> None:
    wanted = frozenset({Status.SHIPPED, Status.DELIVERED})
    assert parse_events("shipped,delivered") == wanted
    assert parse_events(" delivered , shipped,shipped ") == wanted
    assert check_events([Status.SHIPPED, "delivered"]) == wanted
    assert check_events(("shipped", "delivered")) == wanted
    assert events_text(wanted) == "shipped,delivered"  # lifecycle order, whatever was given


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no events given"),
        (" , ,", "no events given"),
        ("shipped,teleported", "unknown event 'teleported'"),
        ("SHIPPED", "unknown event 'SHIPPED'"),
        ("all,shipped", "unknown event 'all'"),
        ("shipped;delivered", "unknown event 'shipped;delivered'"),
    ],
)
def test_invalid_events_name_the_valid_ones(text: str, why: str) -> None:
    with pytest.raises(InputError, match=re.escape(why)) as refused:
        parse_events(text)
    assert "pending, reserved, backordered, packed, shipped, delivered" in str(refused.value)


def test_an_empty_list_of_events_is_refused() -> None:
    with pytest.raises(InputError, match="no events given"):
        check_events([])


@given(st.sets(st.sampled_from(list(Status)), min_size=1))
def test_events_text_parses_back(events: set[Status]) -> None:
    assert parse_events(events_text(frozenset(events))) == frozenset(events)


def test_a_record_as_a_dict_has_iso_utc_times_and_no_secret() -> None:
    record = WebhookEndpoint(
        "we_0123456789ab", "https://x.example/", frozenset({Status.DELIVERED, Status.PENDING}),
        "ada", "crm", False, "410 Gone", 0.25, 86_400.0,
    )  # fmt: skip
    assert record.to_dict() == {
        "endpoint_id": "we_0123456789ab",
        "url": "https://x.example/",
        "events": ["pending", "delivered"],
        "customer_id": "ada",
        "description": "crm",
        "enabled": False,
        "disabled_reason": "410 Gone",
        "created_at": "1970-01-01T00:00:00.250Z",
        "updated_at": "1970-01-02T00:00:00.000Z",
    }


# -- the Client ----------------------------------------------------------------------------


def test_the_client_adds_lists_and_shows_without_secrets(client: Client) -> None:
    endpoint, secret = client.add_webhook(
        "https://crm.example/hook", "shipped,delivered", "ada", "the CRM"
    )
    assert SECRET.fullmatch(secret)
    assert endpoint.enabled
    assert endpoint.events == frozenset({Status.SHIPPED, Status.DELIVERED})
    assert (endpoint.customer_id, endpoint.description) == ("ada", "the CRM")
    assert endpoint.created_at == endpoint.updated_at
    assert client.webhooks() == [endpoint]
    assert client.webhook(endpoint.endpoint_id) == endpoint
    assert client.webhook_secrets(endpoint.endpoint_id) == [secret]
    every, _ = client.add_webhook("http://localhost:9000/")
    assert (every.events, every.customer_id, every.description) == (None, None, None)
    assert client.webhooks() == [endpoint, every]
    for shown in (repr(client.webhooks()), str(endpoint.to_dict())):
        assert secret not in shown


def test_update_changes_only_what_is_given(client: Client) -> None:
    endpoint, secret = client.add_webhook("https://a.example/", ["shipped"], "ada", "first")
    moved = client.update_webhook(endpoint.endpoint_id, url="https://b.example/")
    assert moved.url == "https://b.example/"
    assert (moved.events, moved.customer_id, moved.description) == (
        frozenset({Status.SHIPPED}),
        "ada",
        "first",
    )
    assert moved.updated_at >= endpoint.updated_at
    assert moved.created_at == endpoint.created_at
    cleared = client.update_webhook(
        endpoint.endpoint_id, events=None, customer_id=None, description=None
    )
    assert (cleared.url, cleared.events, cleared.customer_id, cleared.description) == (
        "https://b.example/",
        None,
        None,
        None,
    )
    again = client.update_webhook(endpoint.endpoint_id, events="cancelled", customer_id="bob")
    assert again.events == frozenset({Status.CANCELLED})
    assert client.webhook(endpoint.endpoint_id) == again
    assert client.webhook_secrets(endpoint.endpoint_id) == [secret]  # the secret stays


def test_disable_and_enable(client: Client) -> None:
    endpoint, _ = client.add_webhook("https://a.example/")
    off = client.disable_webhook(endpoint.endpoint_id)
    assert (off.enabled, off.disabled_reason) == (False, "disabled by an operator")
    off = client.disable_webhook(endpoint.endpoint_id, "receiver answers 410")
    assert client.webhook(endpoint.endpoint_id).disabled_reason == "receiver answers 410"
    on = client.enable_webhook(endpoint.endpoint_id)
    assert (on.enabled, on.disabled_reason) == (True, None)
    assert client.webhooks() == [on]


def test_rotation_keeps_the_old_secret_for_the_grace(client: Client) -> None:
    endpoint, first = client.add_webhook("https://a.example/")
    second = client.rotate_webhook_secret(endpoint.endpoint_id)
    assert SECRET.fullmatch(second)
    assert second != first
    assert client.webhook_secrets(endpoint.endpoint_id) == [second, first]
    third = client.rotate_webhook_secret(endpoint.endpoint_id, grace=0)
    assert client.webhook_secrets(endpoint.endpoint_id) == [third]
    assert client.webhook(endpoint.endpoint_id) == endpoint  # the record is untouched
    with pytest.raises(InputError, match="grace"):
        client.rotate_webhook_secret(endpoint.endpoint_id, grace=-5)
    assert client.webhook_secrets(endpoint.endpoint_id) == [third]


def test_remove(client: Client) -> None:
    endpoint, _ = client.add_webhook("https://a.example/")
    other, _ = client.add_webhook("https://b.example/")
    owed = [new_delivery(e.endpoint_id, "A", 1, 1, time.time()) for e in (endpoint, other)]
    client.backend.deliveries.enqueue(owed, 1)
    client.remove_webhook(endpoint.endpoint_id)
    assert client.webhooks() == [other]
    # its deliveries went with it: nowhere left to send them
    assert [d.endpoint_id for d in client.webhook_deliveries()] == [other.endpoint_id]
    assert client.backend.deliveries.pending_count() == 1
    with pytest.raises(NotFoundError, match=endpoint.endpoint_id):
        client.remove_webhook(endpoint.endpoint_id)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.webhook("we_000000000000"),
        lambda c: c.update_webhook("we_000000000000", url="https://a.example/"),
        lambda c: c.disable_webhook("we_000000000000"),
        lambda c: c.enable_webhook("we_000000000000"),
        lambda c: c.remove_webhook("we_000000000000"),
        lambda c: c.rotate_webhook_secret("we_000000000000"),
        lambda c: c.webhook_secrets("we_000000000000"),
    ],
)
def test_an_unknown_endpoint_is_not_found(client: Client, call: object) -> None:
    with pytest.raises(NotFoundError, match="no webhook endpoint 'we_000000000000'"):
        call(client)  # type: ignore[operator]  # the parametrised lambdas


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"url": "ftp://a.example/"}, "http:// or https://"),
        ({"url": "https://a.example/", "events": "teleported"}, "unknown event"),
        ({"url": "https://a.example/", "events": []}, "no events given"),
        ({"url": "https://a.example/", "customer_id": ""}, "customer id must not be empty"),
        ({"url": "https://a.example/", "customer_id": "x" * 201}, "customer id is longer"),
        ({"url": "https://a.example/", "description": "two\nlines"}, "control character"),
        ({"url": "https://a.example/", "description": "x" * 501}, "longer than 500"),
    ],
)
def test_the_client_refuses_bad_input_and_adds_nothing(
    client: Client, kwargs: dict[str, object], why: str
) -> None:
    with pytest.raises(InputError, match=re.escape(why)):
        client.add_webhook(**kwargs)  # type: ignore[arg-type]  # the parametrised cases
    assert client.webhooks() == []


def test_update_refuses_bad_input_and_nothing_to_do(client: Client) -> None:
    endpoint, _ = client.add_webhook("https://a.example/", customer_id="ada")
    with pytest.raises(InputError, match="nothing to update"):
        client.update_webhook(endpoint.endpoint_id)
    with pytest.raises(InputError, match="user name or password"):
        client.update_webhook(endpoint.endpoint_id, url="https://u:p@a.example/")
    with pytest.raises(InputError, match="reason must not be empty"):
        client.disable_webhook(endpoint.endpoint_id, "")
    assert client.webhook(endpoint.endpoint_id) == endpoint


# -- the SQLite schema ---------------------------------------------------------------------


def test_a_database_from_before_webhooks_gets_the_table_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    token, plaintext, digest = new_token("ci", Scope.WRITE, 1_764_000_000.5)
    with closing(connect(path)) as conn:  # schema v2, as the release with tokens left it
        for script in MIGRATIONS[:2]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 2")
        conn.execute("INSERT INTO products VALUES ('A', 'a thing', 2.0)")
        conn.execute(
            "INSERT INTO tokens (token_id, name, scope, digest, created_at) VALUES (?, ?, ?, ?, ?)",
            (token.token_id, token.name, token.scope.value, digest, token.created_at),
        )
    for _ in range(2):  # idempotent: a second open changes nothing
        with closing(SqliteBackend(path, create=False)) as backend:
            assert backend.catalogue.list() == [
                {"product_id": "A", "name": "a thing", "price": 2.0}
            ]
            assert backend.webhooks.list() == []
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with Client(path, create=False) as shop:
        assert shop.authenticate(plaintext) == token
        endpoint, secret = shop.add_webhook("https://a.example/")
        assert shop.webhooks() == [endpoint]
        assert shop.webhook_secrets(endpoint.endpoint_id) == [secret]
