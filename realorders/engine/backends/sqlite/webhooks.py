"""Webhook endpoints on SQLite: the ``webhooks`` table (schema v3), written directly.

No order state depends on an endpoint, so like tokens it bypasses the engine.
The secrets sit in columns of the same row that only :meth:`SqliteWebhooks.get`
reads; every write is one statement, so it is atomic without more care, and
an ``UPDATE`` of an id that a concurrent ``remove`` deleted changes nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from realorders.domain import Status
from realorders.engine.backends.sqlite.schema import WriteTx
from realorders.errors import ConflictError
from realorders.webhooks import WebhookEndpoint, WebhookSecrets

__all__ = ["SqliteWebhooks"]

_COLUMNS = (
    "endpoint_id, url, events, customer_id, description, enabled, disabled_reason, "
    "created_at, updated_at"
)
_SECRETS = "secret, previous_secret, previous_until"


def _events(events: frozenset[Status] | None) -> str | None:
    return None if events is None else ",".join(s.value for s in Status if s in events)


def _endpoint(row: tuple[Any, ...]) -> WebhookEndpoint:
    endpoint_id, url, events, customer_id, description, enabled, reason, created, updated = row
    return WebhookEndpoint(
        endpoint_id=endpoint_id,
        url=url,
        events=None if events is None else frozenset(Status(s) for s in events.split(",")),
        customer_id=customer_id,
        description=description,
        enabled=bool(enabled),
        disabled_reason=reason,
        created_at=created,
        updated_at=updated,
    )


def _fields(endpoint: WebhookEndpoint) -> tuple[Any, ...]:
    """The record's columns after ``endpoint_id``, in :data:`_COLUMNS` order."""
    return (
        endpoint.url,
        _events(endpoint.events),
        endpoint.customer_id,
        endpoint.description,
        int(endpoint.enabled),
        endpoint.disabled_reason,
        endpoint.created_at,
        endpoint.updated_at,
    )


class SqliteWebhooks:
    """Endpoint records and their secrets; see the module docstring."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, endpoint: WebhookEndpoint, secrets: WebhookSecrets) -> None:
        try:
            with WriteTx(self._conn) as conn:
                conn.execute(
                    f"INSERT INTO webhooks ({_COLUMNS}, {_SECRETS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        endpoint.endpoint_id,
                        *_fields(endpoint),
                        secrets.current,
                        secrets.previous,
                        secrets.previous_until,
                    ),
                )
        except sqlite3.IntegrityError:  # 48 random bits met again: vanishingly rare
            raise ConflictError(f"webhook endpoint {endpoint.endpoint_id} exists already") from None

    def get(self, endpoint_id: str) -> tuple[WebhookEndpoint, WebhookSecrets] | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS}, {_SECRETS} FROM webhooks WHERE endpoint_id = ?", (endpoint_id,)
        ).fetchone()
        if row is None:
            return None
        return _endpoint(row[:9]), WebhookSecrets(*row[9:])

    def list(self) -> list[WebhookEndpoint]:
        return [
            _endpoint(row)
            for row in self._conn.execute(
                f"SELECT {_COLUMNS} FROM webhooks ORDER BY created_at, id"
            )
        ]

    def replace(self, endpoint: WebhookEndpoint) -> bool:
        with WriteTx(self._conn) as conn:
            return (
                conn.execute(
                    "UPDATE webhooks SET url = ?, events = ?, customer_id = ?, description = ?, "
                    "enabled = ?, disabled_reason = ?, created_at = ?, updated_at = ? "
                    "WHERE endpoint_id = ?",
                    (*_fields(endpoint), endpoint.endpoint_id),
                ).rowcount
                == 1
            )

    def set_secrets(self, endpoint_id: str, secrets: WebhookSecrets) -> bool:
        with WriteTx(self._conn) as conn:
            return (
                conn.execute(
                    "UPDATE webhooks SET secret = ?, previous_secret = ?, previous_until = ? "
                    "WHERE endpoint_id = ?",
                    (secrets.current, secrets.previous, secrets.previous_until, endpoint_id),
                ).rowcount
                == 1
            )

    def remove(self, endpoint_id: str) -> bool:
        with WriteTx(self._conn) as conn:
            deleted: int = conn.execute(
                "DELETE FROM webhooks WHERE endpoint_id = ?", (endpoint_id,)
            ).rowcount
        return deleted == 1
