"""The Client's dead-letter methods (distributed mode): poison commands set aside.

A part of :class:`realorders.Client` kept in its own module. A replay goes
through the Client's own intake methods, so it is validated and deduplicated
like any input; on a store without dead letters every method is one
``UsageError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from realorders.domain import Order
from realorders.engine.capabilities import DeadLetter, DeadLetters
from realorders.engine.ports import Backend, CommandKind, IntakeResult
from realorders.errors import NotFoundError, RefusedError, UsageError

__all__ = ["DeadLetterMixin"]

_NO_DEAD_LETTERS = (
    "dead letters exist in the distributed mode only (--backend kafka): "
    "the embedded mode refuses bad input at intake"
)


class DeadLetterMixin:
    """Dead letters, over the ``backend`` of the :class:`~realorders.Client`."""

    backend: Backend

    if TYPE_CHECKING:  # the intake the Client provides

        def submit(self, order: Order | None = None) -> IntakeResult: ...

        def cancel(self, order_id: str, reason: str | None = None) -> int: ...

        def restock(self, product_id: str, quantity: int) -> int: ...

        def set_stock(self, product_id: str, quantity: int) -> int: ...

    def _dead_letter_store(self) -> DeadLetters:
        if not isinstance(self.backend, DeadLetters):
            raise UsageError(_NO_DEAD_LETTERS)
        return self.backend

    def dead_letters(self) -> list[DeadLetter]:
        """Poison commands the engines set aside, oldest first."""
        return self._dead_letter_store().dead_letters()

    def replay_dead_letter(self, offset: int, value: bytes | None = None) -> str:
        """Re-drive one dead letter (or a corrected ``value``) through normal intake.

        Refused when it is still not a command, or was replayed already. Returns
        what was done, in words.
        """
        store = self._dead_letter_store()
        letter = next((d for d in store.dead_letters() if d.offset == offset), None)
        if letter is None:
            raise NotFoundError(f"no dead letter at offset {offset}")
        if letter.replayed:
            raise RefusedError(f"dead letter {offset} was replayed already")
        command = store.decode_dead_letter(letter.value if value is None else value, offset)
        body = command.body
        if command.kind is CommandKind.SUBMIT:
            result = self.submit(Order.from_dict(body))
            done = f"order {result.order_id} {result.outcome.value}"
        elif command.kind is CommandKind.CANCEL:
            assert command.order_id is not None
            self.cancel(command.order_id, body.get("reason"))
            done = f"cancel of {command.order_id} queued"
        elif command.kind is CommandKind.RESTOCK:
            self.restock(body["product_id"], int(body["quantity"]))
            done = f"restock of {body['product_id']} queued"
        elif command.kind is CommandKind.SET_STOCK:
            self.set_stock(body["product_id"], int(body["quantity"]))
            done = f"stock of {body['product_id']} set"
        else:
            raise RefusedError(f"dead letter {offset}: a {command.kind.value} is not replayed")
        store.mark_replayed(offset)
        return done
