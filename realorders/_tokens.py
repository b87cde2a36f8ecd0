"""The Client's token methods: bearer tokens for the HTTP server.

A part of :class:`realorders.Client` kept in its own module. The plaintext of
a token exists only in what :meth:`TokenMixin.create_token` returns; the store
keeps its record and a digest, and :meth:`TokenMixin.authenticate` is the one
place a presented token is checked, for every front.
"""

from __future__ import annotations

import time

from realorders.engine.ports import Backend
from realorders.errors import InputError, NotFoundError
from realorders.tokens import Scope, TokenRecord, check_name, new_token, parse_token, verify

__all__ = ["TokenMixin"]

#: compared against when a token id is unknown, so that a miss costs what a hit costs
_NO_DIGEST = "0" * 64


class TokenMixin:
    """Bearer tokens, over the ``backend`` of the :class:`~realorders.Client`."""

    backend: Backend

    def create_token(self, name: str, scope: Scope | str = Scope.READ) -> tuple[TokenRecord, str]:
        """A new token: its record and its plaintext, which is shown this once only.

        ``name`` is 1-64 letters, digits, ``.``, ``_`` or ``-`` (InputError
        otherwise); ConflictError while an active token has the same name.
        """
        check_name(name)
        try:
            scope = Scope(scope)
        except ValueError:
            choices = ", ".join(s.value for s in Scope)
            raise InputError(f"unknown scope {scope!r}: use one of {choices}") from None
        record, plaintext, digest = new_token(name, scope, time.time())
        self.backend.tokens.add(record, digest)
        return record, plaintext

    def tokens(self) -> list[TokenRecord]:
        """Every token, oldest first, revoked ones included (never a secret or digest)."""
        return self.backend.tokens.list()

    def revoke_token(self, name_or_id: str) -> int:
        """Revoke the active token with this name or id; NotFoundError if there is none."""
        revoked = self.backend.tokens.revoke(name_or_id, time.time())
        if revoked == 0:
            raise NotFoundError(f"no active token named {name_or_id!r} or with that id")
        return revoked

    def authenticate(self, plaintext: str) -> TokenRecord | None:
        """The record of a valid, active token; None for anything else.

        Malformed, unknown, revoked and wrong-secret tokens all give None (the
        caller should not tell them apart to the client). The secret is
        compared in constant time, also when the id is unknown.
        """
        parsed = parse_token(plaintext)
        if parsed is None:
            return None
        token_id, secret = parsed
        found = self.backend.tokens.find(token_id)
        record, stored = (None, _NO_DIGEST) if found is None else found
        matches = verify(stored, secret)
        if record is None or record.revoked or not matches:
            return None
        return record
