"""The Client's webhook methods: the registry of endpoints and their signing secrets.

A part of :class:`realorders.Client` kept in its own module. Every check of
what an operator gives (URL, events, customer, texts) is made here, once for
every front. A secret is returned only by :meth:`WebhookMixin.add_webhook`
and :meth:`WebhookMixin.rotate_webhook_secret` (to show once) and by
:meth:`WebhookMixin.webhook_secrets` (for whatever signs the deliveries).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from enum import Enum
from typing import Any, Final

from realorders.domain import Status
from realorders.engine.ports import Backend
from realorders.errors import InputError, NotFoundError
from realorders.webhooks import (
    DEFAULT_GRACE,
    WebhookEndpoint,
    WebhookSecrets,
    check_customer,
    check_events,
    check_grace,
    check_text_field,
    check_url,
    new_endpoint_id,
    new_secret,
)

__all__ = ["UNSET", "WebhookMixin"]


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
        """Delete the endpoint and its secrets; NotFoundError if there is none."""
        if not self.backend.webhooks.remove(endpoint_id):
            raise _not_found(endpoint_id)

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
