"""``realorders serve``: the HTTP API on uvicorn (see :mod:`realorders.server`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import Any

import typer

from realorders.errors import UsageError
from realorders.server.options import ENV_OPTIONS, MIB, Compat, ServerOptions, store_fields

from .app import app, err, settings
from .notify import delivering


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(
        8080, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Server processes sharing the port (each its own tail)."
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve without tokens (refused unless --host is loopback)."
    ),
    max_body: int = typer.Option(
        MIB, "--max-body", min=1024, help="Largest request body in bytes (imports: per line)."
    ),
    max_backlog: int | None = typer.Option(
        None,
        "--max-backlog",
        min=0,
        help="Answer 503 + Retry-After to submissions while more commands wait unprocessed.",
    ),
    heartbeat: float = typer.Option(
        15.0, "--heartbeat", min=0.1, help="Seconds between keep-alive comments on idle streams."
    ),
    stream_buffer: int = typer.Option(
        10_000,
        "--stream-buffer",
        min=10,
        help="Events a live stream may fall behind before it is dropped (it may resume).",
    ),
    client_timeout: float = typer.Option(
        10.0,
        "--client-timeout",
        min=0.1,
        help="Seconds a client may stall while sending headers or a body (slow clients).",
    ),
    certfile: Path | None = typer.Option(None, "--certfile", help="TLS certificate (PEM)."),
    keyfile: Path | None = typer.Option(None, "--keyfile", help="TLS private key (PEM)."),
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="One log line per request on stderr."
    ),
    notify: bool = typer.Option(
        False, "--notify", help="Also deliver webhooks, as `realorders notify` does."
    ),
    compat: Compat = typer.Option(
        Compat.EARLIER_API,
        "--compat",
        help="Also answer the earlier C# system's routes (/api/order, /api/product) for its "
        "clients, or none.",
    ),
) -> None:
    """Serve the HTTP API (orders, live SSE status, catalogue, stock) until Ctrl-C.

    Run an engine beside it (`realorders run`) to process what it accepts.
    Routes, tokens and limits: see /docs on the running server, or the README.
    """

    from realorders.server.app import configure_logging
    from realorders.server.protocol import DeadlineProtocol, set_header_timeout

    cfg = settings(ctx)
    options = ServerOptions(
        host=host,
        port=port,
        workers=workers,
        auth=not no_auth,
        max_body=max_body,
        max_backlog=max_backlog,
        heartbeat=heartbeat,
        client_timeout=client_timeout,
        subscriber_buffer=stream_buffer,
        access_log=access_log,
        certfile=certfile,
        keyfile=keyfile,
        compat=compat,
        store=store_fields(cfg.store_config),
    )
    options.check()
    with cfg.client() as client:  # fail now, in one line, if the store is not there
        client.probe()
        where = client.where()
        engine = client.engine_running()
    sock = _bind(host, port)
    bound = ServerOptions(**{**_fields(options), "port": sock.getsockname()[1]})
    configure_logging()
    set_header_timeout(client_timeout)
    err.print(
        f"serving {where} at {bound.url} (API docs: {bound.url}/docs)"
        + ("" if options.auth else "; no tokens needed (--no-auth)")
        + ("" if engine else "; note: no engine is running (start one: realorders run)"),
        highlight=False,
    )
    common = {
        "fd": sock.fileno(),
        "http": DeadlineProtocol,
        "access_log": False,  # ours has the request id: realorders.server.access
        "log_config": None,
        "ssl_certfile": None if certfile is None else str(certfile),
        "ssl_keyfile": None if keyfile is None else str(keyfile),
        "timeout_graceful_shutdown": 5,
        "lifespan": "on",
    }
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again; ours
    # answers it, so that stopping the server is a clean exit 0, as for `run`
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    delivery = delivering(cfg.store_config) if notify else contextlib.nullcontext()
    try:
        with delivery:
            _run_uvicorn(bound, workers, common)
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    err.print("server stopped", highlight=False)


def _run_uvicorn(bound: ServerOptions, workers: int, common: dict[str, Any]) -> None:
    import uvicorn

    from realorders.server.app import create_app

    if workers == 1:
        uvicorn.run(create_app(bound), **common)
    else:
        os.environ[ENV_OPTIONS] = bound.to_env()
        uvicorn.run("realorders.server.app:worker_app", factory=True, workers=workers, **common)


class _Stopped(Exception):
    """SIGINT or SIGTERM, after uvicorn's graceful shutdown."""


def _stopped(signum: int, frame: object) -> None:
    raise _Stopped


def _fields(options: ServerOptions) -> dict[str, object]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: a response's header and body writes go out at
    # once instead of the body waiting ~40 ms for the client's delayed ACK (Nagle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
