"""Webhook endpoints: the registry of URLs that order changes are meant for, and their secrets.

Pure: no I/O and no backend. An endpoint's secret is in the Standard Webhooks
format (``whsec_`` + base64 of 32 random bytes), so receivers can check
signatures with any Standard Webhooks library. Unlike a bearer token's, the
secret itself must be kept (a signer needs it, not a digest), so it lives
apart from the record: :class:`WebhookSecrets` never shows in a record's
repr, a listing or ``show``.
"""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from realorders._textio import check_text, encodable
from realorders.domain import Status
from realorders.errors import InputError
from realorders.intake import MAX_ID_LENGTH
from realorders.views import iso

__all__ = [
    "DEFAULT_GRACE",
    "ID_PREFIX",
    "MAX_TEXT",
    "MAX_URL",
    "SECRET_PREFIX",
    "WebhookEndpoint",
    "WebhookFigures",
    "WebhookSecrets",
    "WebhookTotals",
    "check_customer",
    "check_events",
    "check_grace",
    "check_text_field",
    "check_url",
    "events_text",
    "new_endpoint_id",
    "new_secret",
    "parse_events",
]

ID_PREFIX = "we_"
SECRET_PREFIX = "whsec_"
_ID_HEX_BYTES = 6  # 12 lowercase hex characters
_SECRET_BYTES = 32  # what Standard Webhooks asks for: 24 to 64 bytes
MAX_URL = 2000  # the conventional safe length: well within any server's request line
MAX_TEXT = 500  # a description or a disabled reason: one line for a table
#: how long the old secret stays valid after a rotation: receivers have a day to switch
DEFAULT_GRACE = 86_400.0
_SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """An endpoint as stored, listed and shown: everything but its secrets."""

    endpoint_id: str
    url: str
    #: the statuses whose changes it wants; None: every status
    events: frozenset[Status] | None
    #: only this customer's orders; None: every customer's
    customer_id: str | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable record (snake_case keys, times ISO 8601 UTC, events in
        lifecycle order or null for every status)."""
        return {
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "events": None if self.events is None else [s.value for s in _ordered(self.events)],
            "customer_id": self.customer_id,
            "description": self.description,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    """An endpoint's signing secrets: the current one and, for a grace period after a
    rotation, the one before it (receivers that still hold it keep verifying)."""

    current: str = field(repr=False)
    previous: str | None = field(default=None, repr=False)
    previous_until: float | None = None

    def valid(self, now: float) -> list[str]:
        """The secrets to sign with at ``now``: the current one first."""
        until = self.previous_until
        if self.previous is not None and until is not None and now < until:
            return [self.current, self.previous]
        return [self.current]

    def rotated(self, new: str, now: float, grace: float) -> WebhookSecrets:
        """``new`` becomes current; the current one stays valid for ``grace`` seconds.

        Only one previous secret is kept: a second rotation within the grace period
        ends the first one's old secret at once.
        """
        if grace <= 0:
            return WebhookSecrets(new)
        return WebhookSecrets(new, self.current, now + grace)


@dataclass(frozen=True, slots=True)
class WebhookFigures:
    """An endpoint and its delivery counts: what operators watch (stats, dashboard, /metrics)."""

    endpoint: WebhookEndpoint
    #: deliveries still owed to it (pending, retries included)
    backlog: int
    #: deliveries given up on (retries spent, or the receiver answered 410)
    failed: int

    @property
    def failing(self) -> bool:
        """Needs an operator: some deliveries were given up on, or it was disabled."""
        return self.failed > 0 or not self.endpoint.enabled


@dataclass(frozen=True, slots=True)
class WebhookTotals:
    """The sums over every endpoint: one line of ``stats``, ids and URLs left out."""

    endpoints: int = 0
    enabled: int = 0
    backlog: int = 0
    failed: int = 0
    failing: int = 0

    @property
    def disabled(self) -> int:
        return self.endpoints - self.enabled

    @classmethod
    def of(cls, figures: Iterable[WebhookFigures]) -> WebhookTotals:
        rows = list(figures)
        return cls(
            endpoints=len(rows),
            enabled=sum(1 for f in rows if f.endpoint.enabled),
            backlog=sum(f.backlog for f in rows),
            failed=sum(f.failed for f in rows),
            failing=sum(1 for f in rows if f.failing),
        )

    def to_dict(self) -> dict[str, int]:
        """The ``webhooks`` key of ``stats --json`` and ``/v1/stats``."""
        return {
            "endpoints": self.endpoints,
            "enabled": self.enabled,
            "disabled": self.disabled,
            "backlog": self.backlog,
            "failed": self.failed,
            "failing": self.failing,
        }


def new_endpoint_id() -> str:
    """``we_`` and 12 random lowercase hex characters."""
    return ID_PREFIX + secrets.token_hex(_ID_HEX_BYTES)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def check_url(url: object) -> str:
    """The URL, if it is http(s) with a host, no user:password@, no whitespace or control
    characters and at most :data:`MAX_URL` characters; InputError saying why otherwise.

    The URL itself is not repeated in the error: it may carry a credential.
    """
    if not isinstance(url, str):
        raise InputError(f"webhook URL must be text, got {type(url).__name__}")
    if not url:
        raise InputError("webhook URL is empty: give an http:// or https:// URL")
    if len(url) > MAX_URL:
        raise InputError(f"webhook URL is {len(url)} characters long: at most {MAX_URL}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InputError("webhook URL contains whitespace or a control character")
    if not encodable(url):
        raise InputError("webhook URL contains an unpaired surrogate")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number 0-65535)
    except ValueError as exc:
        raise InputError(f"webhook URL is malformed ({exc})") from None
    if parts.scheme.lower() not in _SCHEMES:
        got = f", not {parts.scheme}:" if parts.scheme and len(parts.scheme) <= 20 else ""
        raise InputError(f"webhook URL must start with http:// or https://{got}")
    if "@" in parts.netloc:
        raise InputError("webhook URL may not carry a user name or password (user:pass@host)")
    if not parts.hostname:
        raise InputError("webhook URL has no host: use http://HOST[:PORT]/PATH")
    return url


def parse_events(text: str) -> frozenset[Status] | None:
    """``all`` → None (every status); else comma-separated statuses (``shipped,delivered``)."""
    if text.strip() == "all":
        return None
    return check_events([name.strip() for name in text.split(",") if name.strip()])


def check_events(events: Iterable[Status | str] | str | None) -> frozenset[Status] | None:
    """None, ``all`` or a comma-separated string, or status names and Statuses: the set
    (None for every status); InputError naming the valid names otherwise."""
    if events is None:
        return None
    if isinstance(events, str):
        return parse_events(events)
    found: set[Status] = set()
    unknown: list[str] = []
    for event in events:
        try:
            found.add(Status(event))
        except ValueError:
            unknown.append(repr(event))
    if unknown:
        raise InputError(
            f"unknown event {', '.join(unknown)}: use 'all' or statuses among {_names()}"
        )
    if not found:
        raise InputError(f"no events given: use 'all' or statuses among {_names()}")
    return frozenset(found)


def events_text(events: frozenset[Status] | None) -> str:
    """``all``, or the statuses comma-separated in lifecycle order (what parse_events reads)."""
    return "all" if events is None else ",".join(s.value for s in _ordered(events))


def check_customer(customer_id: str | None) -> str | None:
    """None (every customer), or a customer id as orders carry them."""
    if customer_id is None:
        return None
    return _checked(customer_id, "customer id", MAX_ID_LENGTH)


def check_text_field(value: str | None, name: str) -> str | None:
    """None, or one line of at most :data:`MAX_TEXT` characters (a description, a reason)."""
    if value is None:
        return None
    return _checked(value, name, MAX_TEXT)


def check_grace(grace: float) -> float:
    """Seconds the old secret stays valid after a rotation: finite, 0 or more."""
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not math.isfinite(grace):
        raise InputError(f"grace must be a number of seconds, got {grace!r}")
    if grace < 0:
        raise InputError(f"grace must be 0 or more seconds, got {grace!r}")
    return float(grace)


def _checked(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InputError(f"{name} must be text, got {type(value).__name__}")
    try:
        check_text(value, name, limit)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError(f"{name} contains a control character (one line, no tabs)")
    return value


def _ordered(events: frozenset[Status]) -> list[Status]:
    return [s for s in Status if s in events]


def _names() -> str:
    return ", ".join(s.value for s in Status)
