"""The embedded backend: every port on one SQLite file (see ``backend.py``)."""

from realorders.engine.backends.sqlite.backend import SqliteBackend

__all__ = ["SqliteBackend"]
