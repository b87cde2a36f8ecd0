"""The Client's webhook methods: the registry of endpoints, their signing secrets, and
what an operator sees and fixes of their deliveries (history, replay).

A part of :class:`realorders.Client` kept in its own module. Every check of
what an operator gives (URL, events, customer, texts) is made here, once for
every front, and so are the delivery figures they all show. A secret is
returned only by :meth:`WebhookMixin.add_webhook` and
:meth:`WebhookMixin.rotate_webhook_secret` (to show once) and by
:meth:`WebhookMixin.webhook_secrets` (for whatever signs the deliveries).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import replace
from enum import Enum
from typing import Any, Final

from realorders.deliveries import Delivery
from realorders.domain import Status
from realorders.engine.ports import Backend
from realorders.errors import InputError, NotFoundError
from realorders.webhooks import (
    DEFAULT_GRACE,
    WebhookEndpoint,
    WebhookFigures,
    WebhookSecrets,
    WebhookTotals,
    check_customer,
    check_events,
    check_grace,
    check_text_field,
    check_url,
    new_endpoint_id,
    new_secret,
)

__all__ = ["MAX_HISTORY", "UNSET", "WebhookMixin"]

#: deliveries one history call may return: a screenful to a big export, not a whole outbox
MAX_HISTORY = 10_000


class _Unset(Enum):
    UNSET = "unset"


#: "not given" for :meth:`WebhookMixin.update_webhook`, where None clears a field
UNSET: Final = _Unset.UNSET

Events = Iterable[Status | str] | str | None


class WebhookMixin:
    """Webhook endpoints, over the ``backend`` of the :class:`~realorders.Client`."""

    backend: Backend

    def add_webhook(
        self,
        url: str,
        events: Events = None,
        customer_id: str | None = None,
        description: str | None = None,
    ) -> tuple[WebhookEndpoint, str]:
        """A new, enabled endpoint and its secret, which is shown this once only.

        ``events``: statuses (names, or ``"shipped,delivered"``), or None / ``"all"``
        for every status; ``customer_id``: only that customer's orders.
        """
        now = time.time()
        endpoint = WebhookEndpoint(
            endpoint_id=new_endpoint_id(),
            url=check_url(url),
            events=check_events(events),
            customer_id=check_customer(customer_id),
            description=check_text_field(description, "description"),
            enabled=True,
            disabled_reason=None,
            created_at=now,
            updated_at=now,
        )
        secret = new_secret()
        self.backend.webhooks.add(endpoint, WebhookSecrets(secret))
        return endpoint, secret

    def webhooks(self) -> list[WebhookEndpoint]:
        """Every endpoint, oldest first (never a secret)."""
        return self.backend.webhooks.list()

    def webhook(self, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint; NotFoundError if there is none with this id."""
        return self._webhook_and_secrets(endpoint_id)[0]

    def update_webhook(
        self,
        endpoint_id: str,
        *,
        url: str | _Unset = UNSET,
        events: Events | _Unset = UNSET,
        customer_id: str | _Unset | None = UNSET,
        description: str | _Unset | None = UNSET,
    ) -> WebhookEndpoint:
        """Change the fields given, and only those (None clears customer and description;
        events=None means every status). Returns the endpoint as stored."""
        changes: dict[str, Any] = {}
        if url is not UNSET:
            changes["url"] = check_url(url)
        if events is not UNSET:
            changes["events"] = check_events(events)
        if customer_id is not UNSET:
            changes["customer_id"] = check_customer(customer_id)
        if description is not UNSET:
            changes["description"] = check_text_field(description, "description")
        if not changes:
            raise InputError("nothing to update: give url, events, customer_id or description")
        return self._rewrite(endpoint_id, changes)

    def disable_webhook(
        self, endpoint_id: str, reason: str = "disabled by an operator"
    ) -> WebhookEndpoint:
        """Keep the endpoint but send it nothing until it is enabled again; says why."""
        checked = check_text_field(reason, "reason")
        if not checked:
            raise InputError("reason must not be empty")
        return self._rewrite(endpoint_id, {"enabled": False, "disabled_reason": checked})

    def enable_webhook(self, endpoint_id: str) -> WebhookEndpoint:
        """Enable the endpoint again (its disabled reason is cleared)."""
        return self._rewrite(endpoint_id, {"enabled": True, "disabled_reason": None})

    def remove_webhook(self, endpoint_id: str) -> None:
        """Delete the endpoint, its secrets and its deliveries (pending ones are dropped:
        there is nowhere left to send them); NotFoundError if there is none."""
        if not self.backend.webhooks.remove(endpoint_id):
            raise _not_found(endpoint_id)
        self.backend.deliveries.forget_endpoint(endpoint_id)

    def rotate_webhook_secret(self, endpoint_id: str, grace: float = DEFAULT_GRACE) -> str:
        """A new secret, returned this once; the old one stays valid ``grace`` seconds more
        (0: at once). Only one old secret is kept: rotating again ends the one before."""
        grace = check_grace(grace)
        _, secrets = self._webhook_and_secrets(endpoint_id)
        secret = new_secret()
        if not self.backend.webhooks.set_secrets(
            endpoint_id, secrets.rotated(secret, time.time(), grace)
        ):
            raise _not_found(endpoint_id)
        return secret

    def webhook_secrets(self, endpoint_id: str) -> list[str]:
        """The secrets to sign with now, the current one first; NotFoundError if unknown."""
        return self._webhook_and_secrets(endpoint_id)[1].valid(time.time())

    # -- deliveries ------------------------------------------------------------------

    def webhook_deliveries(
        self,
        endpoint_id: str | None = None,
        *,
        order_id: str | None = None,
        failed_only: bool = False,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries newest first (by their latest attempt or change), of one endpoint or all.

        NotFoundError for an unknown endpoint: an empty answer would hide a typo.
        InputError for a ``limit`` outside 1..:data:`MAX_HISTORY`.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_HISTORY:
            raise InputError(f"limit must be between 1 and {MAX_HISTORY}, not {limit!r}")
        if endpoint_id is not None:
            self.webhook(endpoint_id)
        return self.backend.deliveries.history(
            endpoint_id, order_id=order_id, failed_only=failed_only, limit=limit
        )

    def replay_webhook(
        self,
        endpoint_id: str,
        *,
        since: float | None = None,
        order_id: str | None = None,
        failed_only: bool = False,
    ) -> int:
        """Send settled deliveries again (delivered or failed), as new: due now, no attempts.

        The filters combine; none replays every settled delivery of the endpoint.
        ``since`` (epoch seconds) is when a delivery was enqueued, about when its
        order changed. Same ``webhook-id`` as before, so a receiver that keeps
        them sees a repeat it may drop. A disabled endpoint's deliveries are
        requeued too and go out once it is enabled. Returns how many.
        """
        number = isinstance(since, int | float) and not isinstance(since, bool)
        if since is not None and not (number and math.isfinite(since)):
            raise InputError(f"since must be a time in epoch seconds, not {since!r}")
        self.webhook(endpoint_id)
        return self.backend.deliveries.requeue(
            endpoint_id,
            order_id=order_id,
            since=None if since is None else float(since),
            failed_only=failed_only,
            now=time.time(),
        )

    # -- figures -------------------------------------------------------------------

    def webhook_figures(self) -> list[WebhookFigures]:
        """Every endpoint with its backlog and failed count, oldest first.

        Two indexed counts per endpoint (an O(1) read each on Redis; on SQLite a
        count over the endpoint's entries of a partial index that holds only pending,
        or only failed, rows), so ``stats``, the dashboard and ``/metrics`` may ask
        often, whatever the backlog.
        """
        deliveries = self.backend.deliveries
        return [
            WebhookFigures(
                endpoint,
                backlog=deliveries.pending_count(endpoint.endpoint_id),
                failed=deliveries.failed_count(endpoint.endpoint_id),
            )
            for endpoint in self.backend.webhooks.list()
        ]

    def webhook_totals(self) -> WebhookTotals:
        """The sums of :meth:`webhook_figures`: no id or URL (``stats`` shows it to readers)."""
        return WebhookTotals.of(self.webhook_figures())

    def _webhook_and_secrets(self, endpoint_id: str) -> tuple[WebhookEndpoint, WebhookSecrets]:
        found = self.backend.webhooks.get(endpoint_id)
        if found is None:
            raise _not_found(endpoint_id)
        return found

    def _rewrite(self, endpoint_id: str, changes: dict[str, Any]) -> WebhookEndpoint:
        endpoint = self.webhook(endpoint_id)
        updated = replace(endpoint, **changes, updated_at=max(time.time(), endpoint.updated_at))
        if not self.backend.webhooks.replace(updated):
            raise _not_found(endpoint_id)  # removed meanwhile
        return updated


def _not_found(endpoint_id: str) -> NotFoundError:
    return NotFoundError(f"no webhook endpoint {endpoint_id!r}")
