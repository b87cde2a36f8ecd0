"""Backends: one package per deployment, each exporting its Backend class.

:func:`open_backend` is the one way in; the distributed package (and with it
kafka-python and redis-py) is imported only when a config asks for it.
"""

from __future__ import annotations

from realorders.config import Config
from realorders.engine.ports import Backend

__all__ = ["open_backend"]


def open_backend(config: Config, *, create: bool = False) -> Backend:
    """The store ``config`` names; ``create`` makes an empty one (idempotent) if missing."""
    if config.scales_out:
        from realorders.engine.backends.distributed import KafkaBackend

        return KafkaBackend(config, create=create)
    from realorders.engine.backends.sqlite import SqliteBackend

    return SqliteBackend(config.db, create=create)
