"""What ``realorders serve`` was asked for, in a form that survives the trip to a worker.

With ``--workers N`` uvicorn starts N processes that import the app by name;
they learn the store and the server's limits from one environment variable
holding these options as JSON, so every worker serves the same thing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from realorders.config import Config
from realorders.errors import UsageError

__all__ = [
    "ENV_OPTIONS",
    "Compat",
    "ServerOptions",
    "is_loopback",
    "store_config",
    "store_fields",
]

#: where a worker process finds the options its parent was started with
ENV_OPTIONS = "REALORDERS_SERVE_OPTIONS"

MIB = 1024 * 1024


class Compat(StrEnum):
    """Which earlier interfaces the server answers besides its own (``--compat``)."""

    EARLIER_API = "earlier-api"  # the earlier C# system's /api/order and /api/product
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """The server's own settings; the store comes from ``store`` (the resolved Config)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    auth: bool = True
    max_body: int = MIB
    max_backlog: int | None = None  # unprocessed commands above which intake answers 503
    heartbeat: float = 15.0  # seconds between SSE keep-alive comments
    subscriber_buffer: int = 10_000  # events a live subscriber may lag before it is dropped
    intake_window: float = 0.002  # seconds a POST waits for others to share its commit
    intake_batch: int = 500  # orders per intake commit at most
    read_threads: int = 8  # threads (each with its own store handle) for blocking reads
    client_timeout: float = 10.0  # seconds a client may stall sending headers or a body
    access_log: bool = True
    certfile: Path | None = None
    keyfile: Path | None = None
    compat: Compat = Compat.EARLIER_API
    store: dict[str, Any] = field(default_factory=dict)  # Config fields, see Config.to_dict

    def check(self) -> None:
        """Refuse what would be unsafe or meaningless, in one line each."""
        if not self.auth and not is_loopback(self.host):
            raise UsageError(
                f"--no-auth serves without tokens and is refused on {self.host}; "
                "it is allowed only on a loopback address (127.0.0.1, ::1, localhost)"
            )
        if (self.certfile is None) != (self.keyfile is None):
            raise UsageError("--certfile and --keyfile go together")
        for path in (self.certfile, self.keyfile):
            if path is not None and not path.is_file():
                raise UsageError(f"{path}: no such file")
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")
        if self.max_body < 1024:
            raise UsageError("--max-body must be at least 1024 bytes")

    @property
    def scheme(self) -> str:
        return "https" if self.certfile is not None else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def to_env(self) -> str:
        return orjson.dumps(dataclasses.asdict(self), default=str).decode()

    @classmethod
    def from_env(cls) -> ServerOptions:
        raw = os.environ.get(ENV_OPTIONS)
        if raw is None:
            raise UsageError(f"{ENV_OPTIONS} is not set: start the server with `realorders serve`")
        data = orjson.loads(raw)
        for key in ("certfile", "keyfile"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        if "compat" in data:
            data["compat"] = Compat(data["compat"])
        return cls(**data)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def store_fields(config: Config) -> dict[str, Any]:
    """A Config as plain JSON-able values (paths as text), for :attr:`ServerOptions.store`."""
    data: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        if item.compare:  # config_file and sources describe where values came from
            value = getattr(config, item.name)
            data[item.name] = str(value) if isinstance(value, Path) else value
    return data


def store_config(fields: dict[str, Any]) -> Config:
    """The Config :func:`store_fields` described."""
    values = dict(fields)
    for item in dataclasses.fields(Config):
        if "Path" in str(item.type) and values.get(item.name) is not None:
            values[item.name] = Path(values[item.name])
    return Config(**values)
