"""Bearer tokens for the HTTP server: scopes, records, the plaintext format and its check.

Pure: no I/O and no backend. A token is shown once, as ``ro_<token_id>_<secret>``;
the store keeps the record and a SHA-256 digest of the secret, never the secret.
The id travels in the clear so that a lookup is one read by key (a revoked
token stops working as soon as the server's short cache expires); only the
secret is compared, in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from realorders.errors import InputError
from realorders.views import iso

__all__ = [
    "PREFIX",
    "Scope",
    "TokenRecord",
    "check_name",
    "digest",
    "new_token",
    "parse_token",
    "verify",
]

PREFIX = "ro_"
_ID_HEX_BYTES = 6  # 12 lowercase hex characters
_SECRET_BYTES = 32  # token_urlsafe(32): 43 characters of the URL-safe base64 alphabet
_TOKEN = re.compile(r"ro_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_TOKEN_LENGTH = len(PREFIX) + 2 * _ID_HEX_BYTES + 1 + 43
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Scope(StrEnum):
    """What a token may do; each scope includes the ones before it."""

    READ = "read"  # GET and subscribe
    WRITE = "write"  # also submit, import, cancel
    ADMIN = "admin"  # also change the catalogue and stock

    def allows(self, needed: Scope) -> bool:
        """Whether a token of this scope may do what needs ``needed`` (admin ⊇ write ⊇ read)."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as stored and listed: everything but its secret."""

    token_id: str
    name: str
    scope: Scope
    created_at: float
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable record (snake_case keys, times ISO 8601 UTC)."""
        return {
            "token_id": self.token_id,
            "name": self.name,
            "scope": self.scope.value,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
        }


def check_name(name: str) -> str:
    """The name, if it is 1-64 letters, digits, ``.``, ``_`` or ``-``; InputError otherwise."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InputError(
            f"token name {name!r} is not valid: use 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return name


def digest(secret: str) -> str:
    """What the store keeps instead of the secret: SHA-256, hex.

    The secret is 256 random bits, so a plain hash suffices (no salt or slow
    hash needed: there is no dictionary to guess from).
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_token(name: str, scope: Scope, at: float) -> tuple[TokenRecord, str, str]:
    """A fresh token: (record, plaintext to show once, digest to store)."""
    token_id = secrets.token_hex(_ID_HEX_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    record = TokenRecord(token_id=token_id, name=name, scope=scope, created_at=at)
    return record, f"{PREFIX}{token_id}_{secret}", digest(secret)


def parse_token(plaintext: object) -> tuple[str, str] | None:
    """(token_id, secret) of a well-formed token; None for anything else, never an error.

    The length is checked first, so a huge header costs nothing.
    """
    if not isinstance(plaintext, str) or len(plaintext) != _TOKEN_LENGTH:
        return None
    found = _TOKEN.fullmatch(plaintext)
    if found is None:
        return None
    return found.group(1), found.group(2)


def verify(stored_digest: str, secret: str) -> bool:
    """Whether ``secret`` hashes to ``stored_digest``, compared in constant time."""
    expected = stored_digest.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected, digest(secret).encode("ascii"))
