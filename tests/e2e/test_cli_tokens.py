"""``realorders tokens`` on a SQLite file through the real console script.

Both backends, every flag: ``test_tokens`` in test_command_table.py. Here: what only a
file shows (a database from before tokens, the secret nowhere in it) and output that
scripts rely on.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

from realorders import Client
from realorders.engine.backends.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from realorders.tokens import parse_token

from .conftest import as_json, fails, ok

if TYPE_CHECKING:
    from conftest import Cli  # tests/conftest.py: the `cli` fixture


def test_a_database_from_before_tokens_gets_them(cli: Cli) -> None:
    with closing(sqlite3.connect(cli.db)) as conn:  # schema v1: the previous release's file
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    created = ok(cli, "tokens", "create", "ci", "--scope", "admin")
    assert ok(cli, "tokens", "list", "--format", "json").stdout.count('"ci"') == 1
    assert f"(schema v{SCHEMA_VERSION})" in ok(cli, "init").stderr
    with Client(cli.db, create=False) as shop:
        record = shop.authenticate(created.stdout.strip())
    assert record is not None
    assert record.name == "ci"


def test_the_token_alone_goes_to_stdout_and_the_secret_is_not_stored(cli: Cli) -> None:
    ok(cli, "init")
    token = ok(cli, "tokens", "create", "deploy.prod-1").stdout
    parsed = parse_token(token.removesuffix("\n"))
    assert parsed is not None, token
    with closing(sqlite3.connect(cli.db)) as conn:
        dump = "\n".join(conn.iterdump())
    assert parsed[1] not in dump
    listed = as_json(ok(cli, "tokens", "list", "--format", "json"))
    assert [(t["name"], t["token_id"], t["scope"]) for t in listed] == [
        ("deploy.prod-1", parsed[0], "read")
    ]
    revoked = ok(cli, "tokens", "revoke", parsed[0])
    assert revoked.stdout == ""
    assert revoked.stderr.strip() == f"revoked token {parsed[0]}"


def test_tokens_without_a_database_is_one_line(cli: Cli) -> None:
    missing = fails(cli, "tokens", "create", "ci")
    assert "realorders init" in missing.stderr
    assert not cli.db.exists()
