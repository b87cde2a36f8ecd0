"""``realorders serve``: the HTTP API, a front over :class:`realorders.Client` like the CLI.

>>> from realorders.server import ServerOptions, create_app, store_fields  # doctest: +SKIP
>>> app = create_app(ServerOptions(store=store_fields(config)))   # any ASGI server runs it

FastAPI and uvicorn load only when the app is made: ``realorders --help`` and
every other command stay as quick to start as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from realorders.server.options import ServerOptions, store_config, store_fields

if TYPE_CHECKING:
    from realorders.server.app import create_app

__all__ = ["ServerOptions", "create_app", "store_config", "store_fields"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from realorders.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
