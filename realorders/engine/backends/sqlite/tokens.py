"""Bearer tokens on SQLite: the ``tokens`` table (schema v2), written directly.

No order state depends on a token, so like the catalogue it bypasses the
engine. One active token per name is a partial unique index, so two
``tokens create`` racing on one file cannot both win; a lookup is one probe
of the ``token_id`` index.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from realorders.engine.backends.sqlite.schema import WriteTx
from realorders.errors import ConflictError
from realorders.tokens import Scope, TokenRecord

__all__ = ["SqliteTokens"]

_COLUMNS = "token_id, name, scope, created_at, revoked_at"


def _record(row: tuple[Any, ...]) -> TokenRecord:
    token_id, name, scope, created_at, revoked_at = row
    return TokenRecord(token_id, name, Scope(scope), created_at, revoked_at)


class SqliteTokens:
    """Token records and digests; see the module docstring."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, record: TokenRecord, digest: str) -> None:
        try:
            with WriteTx(self._conn) as conn:
                conn.execute(
                    "INSERT INTO tokens (token_id, name, scope, digest, created_at, revoked_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.token_id,
                        record.name,
                        record.scope.value,
                        digest,
                        record.created_at,
                        record.revoked_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if "token_id" in str(exc):  # 48 random bits met again: vanishingly rare
                raise ConflictError(f"token id {record.token_id} exists already") from None
            raise ConflictError(_conflict(record)) from None

    def find(self, token_id: str) -> tuple[TokenRecord, str] | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS}, digest FROM tokens WHERE token_id = ?", (token_id,)
        ).fetchone()
        return None if row is None else (_record(row[:5]), row[5])

    def list(self) -> list[TokenRecord]:
        return [
            _record(row)
            for row in self._conn.execute(f"SELECT {_COLUMNS} FROM tokens ORDER BY created_at, id")
        ]

    def revoke(self, name_or_id: str, at: float) -> int:
        with WriteTx(self._conn) as conn:
            return conn.execute(
                "UPDATE tokens SET revoked_at = ? "
                "WHERE revoked_at IS NULL AND (name = ? OR token_id = ?)",
                (at, name_or_id, name_or_id),
            ).rowcount


def _conflict(record: TokenRecord) -> str:
    return (
        f"an active token named {record.name!r} exists already; "
        "revoke it first or choose another name"
    )
