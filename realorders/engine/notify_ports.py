"""The ports of notifications: webhook endpoints and the outbox of their deliveries.

Apart from :mod:`realorders.engine.ports` (the engine's own ports) because no
order state depends on them: the engine never reads them, the deliverer
(``realorders notify``) and the Client do. Each backend implements both, and
:class:`~realorders.engine.ports.Backend` exposes them as ``webhooks`` and
``deliveries``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from realorders.deliveries import Delivery, DeliveryStatus, Recorded
from realorders.webhooks import WebhookEndpoint, WebhookSecrets

__all__ = ["DeliveryStore", "WebhookStore"]


class WebhookStore(Protocol):
    """Webhook endpoints and their signing secrets, written directly like tokens.

    The secrets are kept apart from the record: :meth:`replace` never touches
    them and :meth:`list` never returns them. Writes to an unknown id change
    nothing (a concurrent ``remove`` is not undone) and return False.
    """

    def add(self, endpoint: WebhookEndpoint, secrets: WebhookSecrets) -> None:
        """Store a new endpoint; ConflictError if its id exists already."""
        ...

    def get(self, endpoint_id: str) -> tuple[WebhookEndpoint, WebhookSecrets] | None: ...

    def list(self) -> list[WebhookEndpoint]:
        """Every endpoint, oldest first."""
        ...

    def replace(self, endpoint: WebhookEndpoint) -> bool:
        """Overwrite the record with ``endpoint``'s id (its secrets stay); False if unknown."""
        ...

    def set_secrets(self, endpoint_id: str, secrets: WebhookSecrets) -> bool: ...

    def remove(self, endpoint_id: str) -> bool:
        """Delete the endpoint and its secrets; False if there was none."""
        ...


class DeliveryStore(Protocol):
    """The outbox of webhook deliveries: what each endpoint is owed and how it went.

    The event log is the source; the deliverer scans it from :meth:`scan_cursor`
    and enqueues what each event owes each endpoint. Written directly (no order
    state depends on a delivery), by any number of ``notify`` processes: every
    write is atomic on its own, and writes to an unknown delivery change nothing.
    """

    def scan_cursor(self) -> int:
        """The event-log cursor up to which deliveries are enqueued (0 at first)."""
        ...

    def enqueue(self, deliveries: Sequence[Delivery], scan_cursor: int) -> int:
        """Insert the new pending deliveries and advance the scan cursor, atomically.

        One transaction, so a crash between the two neither loses deliveries nor
        makes them twice. Idempotent: one already present with the same
        ``(endpoint_id, order_id, seq)`` is left as it is, whatever its state.
        The cursor only moves forward. Returns how many were new.
        """
        ...

    def due(self, now: float, limit: int, *, hold: float = 0.0) -> list[Delivery]:
        """Pending deliveries due at ``now``, oldest cursor first, at most ``limit``.

        Per ``(endpoint_id, order_id)`` only the lowest pending ``seq`` can be due:
        an order's later event waits until its earlier one is settled, so a
        receiver sees an order's changes in their order.

        ``hold`` > 0 claims what is handed out, in the same write: its ``next_at``
        becomes ``now + hold`` (as returned), so no later call, of this deliverer or
        another, hands it out again before then unless an outcome is recorded. A
        deliverer killed while sending lets its claims go when their hold ends.
        """
        ...

    def record(
        self,
        endpoint_id: str,
        order_id: str,
        seq: int,
        *,
        status: DeliveryStatus,
        attempts: int,
        next_at: float | None,
        last_code: int | None,
        last_error: str | None,
        last_latency_ms: float | None,
        response_excerpt: str | None,
        at: float,
    ) -> bool:
        """The outcome of an attempt: still pending (a retry, due at ``next_at``),
        delivered or failed (settled: ``next_at`` is dropped). Texts are bounded
        (``deliveries.checked_outcome``). False, and nothing written, if unknown."""
        ...

    def record_many(self, outcomes: Sequence[Recorded]) -> int:
        """Several outcomes, as :meth:`record` each, in one write (one transaction, one
        round trip): a deliverer records what its requests bring back together.
        Returns how many were known."""
        ...

    def pending_count(self, endpoint_id: str | None = None) -> int:
        """Deliveries still owed (the backlog metric), of one endpoint or all."""
        ...

    def failed_count(self, endpoint_id: str | None = None) -> int:
        """Deliveries given up, of one endpoint or all."""
        ...

    def history(
        self,
        endpoint_id: str | None = None,
        *,
        order_id: str | None = None,
        failed_only: bool = False,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries newest first (by ``updated_at``: the latest attempt or change),
        for an operator asking what happened."""
        ...

    def requeue(
        self,
        endpoint_id: str,
        *,
        order_id: str | None = None,
        since: float | None = None,
        failed_only: bool = False,
        now: float,
    ) -> int:
        """Make ``endpoint_id``'s settled deliveries pending again, due at ``now`` with
        no attempts (a replay): those of ``order_id``, those enqueued at or after
        ``since`` (``created_at``, epoch seconds), only the failed ones, as asked; the
        filters combine, and none means every settled one. Pending ones are left as
        they are. Returns how many were requeued.

        ``since`` is when the delivery was enqueued (its event scanned: about when the
        order changed, unless ``notify`` was behind), the time an operator means by
        "replay since 14:00"; not ``updated_at``, which a replay itself moves."""
        ...

    def forget_endpoint(self, endpoint_id: str) -> int:
        """Drop every delivery of an endpoint (it was removed); returns how many."""
        ...

    def take_lease(self, owner: str, ttl: float, now: float) -> str | None:
        """Take or renew the deliverer's lease for ``ttl`` seconds from ``now``.

        One ``notify`` per store sends at a time; a crashed one's lease ends by
        itself. None when ``owner`` holds the lease after the call; else the
        holder, whose lease has not ended.
        """
        ...

    def release_lease(self, owner: str) -> bool:
        """End the lease if ``owner`` holds it (so a restart need not wait for it)."""
        ...
