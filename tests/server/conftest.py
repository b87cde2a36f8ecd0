"""A real ``realorders serve`` process, a real engine beside it, and real HTTP clients.

``api`` is one store per test module and backend (``sqlite``: a database file;
``kafka``: the session's real broker and Redis in a namespace of its own),
with a small catalogue, one token per scope, an engine running with no
fulfilment delays (``realorders run``) and a server on a free loopback port
(``realorders serve --port 0``), all real processes started through the
console script and stopped by PID. Tests use ids of their own (``uid``), so
they share the module's store without seeing each other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from services import _namespace, kafka_config
from waiting import wait_for

from realorders import Client
from realorders.config import SETTINGS, Config
from realorders.tokens import Scope

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("kafka", id="kafka", marks=pytest.mark.services),
]

#: products every server test's store holds: (id, name, price, stock)
CATALOGUE = [
    ("KB-01", "Mechanical keyboard", 89.0, 1_000_000),
    ("MS-02", "Wireless mouse", 24.5, 1_000_000),
    ("SP-07", "Desk speakers", 69.0, 2),
]
ZERO_DELAYS = "pack=0,ship=0,deliver=0"
START_TIMEOUT = 60.0


def console_script() -> str:
    script = Path(sys.executable).parent / "realorders"
    assert script.exists(), "pip install -e '.[dev]' first"
    return str(script)


def config_env(config: Config) -> dict[str, str]:
    """The REALORDERS_* variables that select ``config``'s store (secrets included)."""
    env = {}
    for setting in SETTINGS:
        value = getattr(config, setting.name)
        if value is not None:
            env[setting.env] = str(value)
    return env


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Process:
    """A console-script process whose stderr is collected by a thread (never a full pipe)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [console_script(), *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class Api:
    """One store with a server and an engine on it; see the module docstring."""

    backend: str
    config: Config
    env: dict[str, str]
    cwd: Path
    tokens: dict[Scope, str] = field(default_factory=dict)
    server: Process | None = None
    engine: Process | None = None
    url: str = ""
    serve_args: tuple[str, ...] = ()

    def start_server(self, *args: str, port: int = 0) -> str:
        self.serve_args = args
        self.server = Process(
            ["serve", "--port", str(port), "--heartbeat", "1", *args], self.env, self.cwd
        )
        server = self.server

        def started() -> str | None:
            assert server.proc.poll() is None, f"serve exited:\n{server.stderr}"
            for line in server.lines:
                if line.startswith("serving ") and " at " in line:
                    return line.split(" at ", 1)[1].split()[0]
            return None

        url = wait_for(started, bool, idle_timeout=START_TIMEOUT, hard_bound=START_TIMEOUT)
        assert url is not None
        self.url = url
        wait_for(self._ready, bool, idle_timeout=START_TIMEOUT, hard_bound=START_TIMEOUT)
        return self.url

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2, verify=False).status_code == 200
        except httpx.TransportError:
            return False

    def restart_server(self, sig: int = signal.SIGKILL) -> str:
        """Stop the server (SIGKILL by default) and start it again on the same port."""
        assert self.server is not None
        port = int(self.url.rsplit(":", 1)[1])
        self.server.stop(sig)
        return self.start_server(*self.serve_args, port=port)

    def start_engine(self) -> None:
        self.engine = Process(["run", "--delays", ZERO_DELAYS], self.env, self.cwd)

    def client(
        self, scope: Scope | None = Scope.ADMIN, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Client:
        """An HTTP client with the token of ``scope`` (or ``token``); None: no token."""
        token = token if token is not None else None if scope is None else self.tokens[scope]
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def library(self) -> Client:
        return Client(config=self.config, create=False)

    def stop(self) -> None:
        for process in (self.server, self.engine):
            if process is not None:
                process.stop()


def store_config(backend: str, tmp: Path, request: pytest.FixtureRequest) -> Config:
    if backend == "sqlite":
        return Config(db=tmp / "shop.db")
    kafka = request.getfixturevalue("kafka_server")
    redis = request.getfixturevalue("redis_server")
    return kafka_config(kafka, redis, _namespace())


def make_api(backend: str, tmp: Path, request: pytest.FixtureRequest) -> Api:
    """A store with the catalogue and a token per scope; no processes yet."""
    config = store_config(backend, tmp, request)
    env = {**os.environ, **config_env(config), "NO_COLOR": "1"}
    env.pop("REALORDERS_DEBUG", None)
    api = Api(backend, config, env, tmp)
    with Client(config=config, create=True) as shop:
        shop.init_store()
        for product_id, name, price, stock in CATALOGUE:
            shop.add_product(product_id, name, price, stock)
        for scope in Scope:
            api.tokens[scope] = shop.create_token(f"test-{scope.value}", scope)[1]
    return api


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The module's store, server and engine (see the module docstring)."""
    api = make_api(request.param, tmp_path_factory.mktemp("api"), request)
    api.start_engine()
    try:
        api.start_server()
        yield api
    finally:
        api.stop()


@pytest.fixture
def fresh_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """A store of the test's own; the test starts the server and engine it needs."""
    backend = request.param if hasattr(request, "param") else "sqlite"
    api = make_api(backend, tmp_path, request)
    try:
        yield api
    finally:
        api.stop()


def order_body(order_id: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": "ada", "items": [{"product_id": "KB-01", "quantity": 1}]}
    if order_id is not None:
        body["id"] = order_id
    return {**body, **extra}


def settle(api: Api, order_ids: list[str]) -> dict[str, str]:
    """Wait until every order is terminal, watching progress; their statuses."""
    with api.library() as shop:
        states = shop.wait(order_ids, timeout=120)
    assert set(states) == set(order_ids), f"not settled: {set(order_ids) - set(states)}"
    return {oid: s.status.value for oid, s in states.items()}


def elapsed(since: float) -> float:
    return time.monotonic() - since
