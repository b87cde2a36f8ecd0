"""``realorders webhooks`` on a SQLite file through the real console script.

Both backends, every flag: ``test_webhooks`` in test_command_table.py. Here: what only a
file shows (a database from before webhooks) and output that scripts rely on: the secret
alone on stdout, shown once, never in a listing.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

from realorders import Client
from realorders.engine.backends.sqlite.schema import MIGRATIONS, SCHEMA_VERSION

from .conftest import as_json, error_lines, fails, ok

if TYPE_CHECKING:
    from conftest import Cli  # tests/conftest.py: the `cli` fixture

SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")


def test_a_database_from_before_webhooks_gets_them(cli: Cli) -> None:
    with closing(sqlite3.connect(cli.db)) as conn:  # schema v2: the release with tokens
        for script in MIGRATIONS[:2]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
    secret = ok(cli, "webhooks", "add", "https://crm.example/in").stdout.strip()
    (listed,) = as_json(ok(cli, "webhooks", "list", "--format", "json"))
    assert f"(schema v{SCHEMA_VERSION})" in ok(cli, "init").stderr
    with Client(cli.db, create=False) as shop:
        assert shop.webhook_secrets(listed["endpoint_id"]) == [secret]


def test_the_secret_alone_goes_to_stdout_once(cli: Cli) -> None:
    ok(cli, "init")
    added = ok(cli, "webhooks", "add", "https://crm.example/in", "--events", "delivered")
    assert SECRET.fullmatch(added.stdout.removesuffix("\n")), added.stdout
    secret = added.stdout.strip()
    (note,) = error_lines(added.stderr)
    endpoint_id = re.search(r"webhook endpoint (we_[0-9a-f]{12}) added", note)
    assert endpoint_id is not None, note
    assert "will not be shown again" in note
    shown = [
        ok(cli, "webhooks", "list").stdout,
        ok(cli, "webhooks", "list", "--format", "json").stdout,
        ok(cli, "webhooks", "show", endpoint_id.group(1)).stdout,
        ok(cli, "webhooks", "show", endpoint_id.group(1), "--json").stdout,
    ]
    for text in shown:
        assert endpoint_id.group(1) in text
        assert "whsec_" not in text
        assert secret.removeprefix("whsec_") not in text

    rotated = ok(cli, "webhooks", "rotate-secret", endpoint_id.group(1), "--grace", "60")
    assert SECRET.fullmatch(rotated.stdout.removesuffix("\n")), rotated.stdout
    assert "stays valid 60 s more" in rotated.stderr
    with Client(cli.db, create=False) as shop:
        assert shop.webhook_secrets(endpoint_id.group(1)) == [rotated.stdout.strip(), secret]

    removed = ok(cli, "webhooks", "remove", endpoint_id.group(1))
    assert removed.stdout == ""
    assert removed.stderr.strip() == f"removed {endpoint_id.group(1)}"
    with closing(sqlite3.connect(cli.db)) as conn:  # the secrets went with it
        assert conn.execute("SELECT count(*) FROM webhooks").fetchone() == (0,)


def test_bad_input_is_one_line_and_stores_nothing(cli: Cli) -> None:
    ok(cli, "init")
    refused = fails(cli, "webhooks", "add", "https://ops:s3cr3t@crm.example/", code=2)
    assert "user name or password" in refused.stderr
    assert "s3cr3t" not in refused.stderr
    unknown = fails(cli, "webhooks", "add", "https://crm.example/", "--events", "sent", code=2)
    assert "unknown event 'sent'" in unknown.stderr
    assert ok(cli, "webhooks", "list", "--format", "json").stdout.strip() == "[]"


def test_webhooks_without_a_database_is_one_line(cli: Cli) -> None:
    missing = fails(cli, "webhooks", "add", "https://crm.example/")
    assert "realorders init" in missing.stderr
    assert not cli.db.exists()
