"""Bearer tokens: scopes, the plaintext format and its parser, the digest check, and the
Client's token methods (on a SQLite file; tests/contract runs the store on every backend)."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realorders import Client
from realorders.engine.backends.sqlite.backend import SqliteBackend
from realorders.engine.backends.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, connect
from realorders.errors import ConflictError, InputError, NotFoundError
from realorders.tokens import (
    Scope,
    TokenRecord,
    check_name,
    digest,
    new_token,
    parse_token,
    verify,
)

VALID = "ro_0123456789ab_" + "A" * 43

# -- scopes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        (Scope.READ, {Scope.READ}),
        (Scope.WRITE, {Scope.READ, Scope.WRITE}),
        (Scope.ADMIN, {Scope.READ, Scope.WRITE, Scope.ADMIN}),
    ],
)
def test_each_scope_includes_the_ones_below(scope: Scope, allowed: set[Scope]) -> None:
    assert {needed for needed in Scope if scope.allows(needed)} == allowed


def test_scopes_are_their_names() -> None:
    assert [s.value for s in Scope] == ["read", "write", "admin"]
    assert Scope("write") is Scope.WRITE


# -- the plaintext format ------------------------------------------------------------------


def test_a_new_token_parses_back_to_its_id_and_verifies() -> None:
    record, plaintext, stored = new_token("ci", Scope.WRITE, 1_764_000_000.5)
    assert record == TokenRecord(record.token_id, "ci", Scope.WRITE, 1_764_000_000.5, None)
    assert len(record.token_id) == 12
    assert set(record.token_id) <= set("0123456789abcdef")
    assert plaintext.startswith(f"ro_{record.token_id}_")
    parsed = parse_token(plaintext)
    assert parsed is not None
    token_id, secret = parsed
    assert token_id == record.token_id
    assert stored == hashlib.sha256(secret.encode()).hexdigest() == digest(secret)
    assert secret not in stored
    assert verify(stored, secret)
    assert not verify(stored, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert not verify(digest("other"), secret)


def test_tokens_are_unique() -> None:
    minted = [new_token("ci", Scope.READ, 0.0) for _ in range(200)]
    assert len({plaintext for _, plaintext, _ in minted}) == 200
    assert len({record.token_id for record, _, _ in minted}) == 200


def test_secrets_may_hold_underscores_and_dashes() -> None:
    secret = "_-" * 21 + "_"
    assert parse_token(f"ro_0123456789ab_{secret}") == ("0123456789ab", secret)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "ro_",
        "ro__",
        VALID + "A",  # one character too many
        VALID[:-1],  # one too few
        VALID + "\n",
        "\n" + VALID[1:],
        " " + VALID[1:],
        "RO" + VALID[2:],
        "rx" + VALID[2:],
        "ro-0123456789ab_" + "A" * 43,
        "ro_0123456789AB_" + "A" * 43,  # the id is lowercase hex
        "ro_0123456789ag_" + "A" * 43,
        "ro_0123456789ab-" + "A" * 43,
        "ro_0123456789ab_" + "A" * 42 + "=",  # padding is not in the alphabet
        "ro_0123456789ab_" + "A" * 42 + "+",
        "ro_0123456789ab_" + "A" * 42 + "\x00",
        "ro_0123456789ab_" + "A" * 42 + "é",
        "ro_0123456789ab_" + "A" * 42 + "\ud800",  # a lone surrogate
        "ro_٠١٢٣٤٥٦٧٨٩ab_" + "A" * 43,  # Arabic-Indic digits are \d, not hex
        "Bearer " + VALID,
        VALID.replace("_", " "),
        "\x00" * 59,
        "ro_" + "a" * 10_000_000,  # huge: refused by length before any regex runs
    ],
)
def test_parse_token_refuses_garbage(garbage: str) -> None:
    assert parse_token(garbage) is None


@pytest.mark.parametrize("thing", [None, b"ro_0123456789ab_" + b"A" * 43, 42, ["ro_"], object()])
def test_parse_token_refuses_what_is_not_a_string(thing: object) -> None:
    assert parse_token(thing) is None


def test_parse_token_is_fast_on_huge_strings() -> None:
    huge = "ro_0123456789ab_" + "A" * 10_000_000
    started = time.perf_counter()
    assert parse_token(huge) is None
    assert time.perf_counter() - started < 0.01


@given(st.text())
def test_parse_token_never_raises_on_any_text(text: str) -> None:
    parsed = parse_token(text)
    if parsed is not None:
        assert f"ro_{parsed[0]}_{parsed[1]}" == text


@given(st.text(alphabet=st.characters(exclude_categories=())), st.text())
def test_verify_never_raises(secret: str, stored: str) -> None:
    assert verify(digest(secret), secret)
    assert isinstance(verify(stored, secret), bool)


@pytest.mark.parametrize("secret", ["", "\ud800", "\x00", "é" * 100, "A" * 1_000_000])
def test_verify_takes_any_secret(secret: str) -> None:
    assert verify(digest(secret), secret)
    assert not verify(digest(secret + "x"), secret)
    assert not verify("", secret)
    assert not verify("\udfff", secret)


@given(st.text(alphabet="0123456789abcdef", min_size=12, max_size=12), st.text())
def test_only_the_exact_shape_parses(token_id: str, secret: str) -> None:
    parsed = parse_token(f"ro_{token_id}_{secret}")
    well_formed = len(secret) == 43 and all(
        c.isascii() and (c.isalnum() or c in "_-") for c in secret
    )
    assert (parsed is not None) == well_formed
    if parsed is not None:
        assert parsed == (token_id, secret)


# -- names and records ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ci", "a", "deploy.prod-2_b", "A" * 64, "0123456789ab"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "A" * 65, "with space", "slash/y", "naïve", "tab\t", "new\nline", "nul\x00"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InputError, match="token name"):
        check_name(name)


def test_a_record_as_a_dict_has_iso_utc_times_and_no_secret() -> None:
    record = TokenRecord("0123456789ab", "ci", Scope.ADMIN, 0.25, 86_400.0)
    assert record.revoked
    assert record.to_dict() == {
        "token_id": "0123456789ab",
        "name": "ci",
        "scope": "admin",
        "created_at": "1970-01-01T00:00:00.250Z",
        "revoked_at": "1970-01-02T00:00:00.000Z",
    }
    assert TokenRecord("0123456789ab", "ci", Scope.READ, 0.0).to_dict()["revoked_at"] is None


# -- the Client ----------------------------------------------------------------------------


def test_the_client_creates_authenticates_and_revokes(client: Client) -> None:
    record, plaintext = client.create_token("ci", "write")
    assert record.scope is Scope.WRITE
    assert client.authenticate(plaintext) == record
    assert client.tokens() == [record]

    parsed = parse_token(plaintext)
    assert parsed is not None
    token_id, secret = parsed
    wrong = f"ro_{token_id}_{'A' * 43 if secret != 'A' * 43 else 'B' * 43}"
    unknown = f"ro_{'f' * 12 if token_id != 'f' * 12 else 'e' * 12}_{secret}"
    for bad in (wrong, unknown, plaintext + "x", "", "\x00", plaintext.upper()):
        assert client.authenticate(bad) is None, bad

    with pytest.raises(ConflictError, match="'ci'"):
        client.create_token("ci", Scope.READ)
    assert client.revoke_token("ci") == 1
    assert client.authenticate(plaintext) is None
    with pytest.raises(NotFoundError, match="'ci'"):
        client.revoke_token("ci")
    with pytest.raises(NotFoundError):
        client.revoke_token(token_id)

    again, again_plaintext = client.create_token("ci")  # the name is free again
    assert again.scope is Scope.READ
    assert client.authenticate(again_plaintext) == again
    assert client.revoke_token(again.token_id) == 1
    assert [t.revoked for t in client.tokens()] == [True, True]


def test_the_client_refuses_bad_names_and_scopes(client: Client) -> None:
    with pytest.raises(InputError, match="token name"):
        client.create_token("no spaces", Scope.READ)
    with pytest.raises(InputError, match="unknown scope 'root'"):
        client.create_token("ci", "root")
    assert client.tokens() == []


def test_the_stored_digest_is_not_the_secret(tmp_path: Path) -> None:
    with Client(tmp_path / "shop.db") as shop:
        _, plaintext = shop.create_token("ci", Scope.ADMIN)
    with closing(sqlite3.connect(tmp_path / "shop.db")) as conn:
        dump = "\n".join(conn.iterdump())
    parsed = parse_token(plaintext)
    assert parsed is not None
    assert parsed[1] not in dump
    assert digest(parsed[1]) in dump


def test_a_database_from_before_tokens_gets_the_table_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(connect(path)) as conn:  # schema v1, as the previous release left it
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO products VALUES ('A', 'a thing', 2.0)")
    for _ in range(2):  # idempotent: a second open changes nothing
        with closing(SqliteBackend(path, create=False)) as backend:
            assert backend.catalogue.list() == [
                {"product_id": "A", "name": "a thing", "price": 2.0}
            ]
    with Client(path, create=False) as shop:
        record, plaintext = shop.create_token("ci")
        assert shop.authenticate(plaintext) == record
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
