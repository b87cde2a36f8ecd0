"""Time-sortable order ids (ULID layout: 48-bit milliseconds + 80 random bits).

Monotonic within a process: ids made in the same millisecond still sort in
creation order, so ``list`` (newest first) matches submission order.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits per lookup


def _encode(value: int, length: int) -> str:
    """Crockford base32 of ``value``, ``length`` characters (``length`` even)."""
    chars = []
    for _ in range(length // 2):
        value, index = divmod(value, 1024)
        chars.append(_PAIRS[index])
    return "".join(reversed(chars))


def new_id(now: float | None = None) -> str:
    """A new 26-character id that sorts after every id this process made before."""
    global _last_ms, _last_rand  # noqa: PLW0603 - process-wide monotonic state
    ms = int((time.time() if now is None else now) * 1000)
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            _last_rand += 1
        else:
            _last_ms = ms
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
        rand = _last_rand
    return _encode(ms, 10) + _encode(rand, 16)
