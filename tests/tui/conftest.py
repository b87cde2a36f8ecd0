"""Fixtures for dashboard tests against a real store: a stocked shop and a real engine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from waiting import cpu_ticks, wait_for

from realorders import Client

ROOT = Path(__file__).resolve().parent.parent.parent
INVENTORY = ROOT / "examples" / "inventory.csv"
#: the engine keeps each order a few seconds per stage, so tests can act on it
DELAYS = "pack=3,ship=3,deliver=3"
#: reserved orders stay reserved (for the test's whole length): acting on one, however
#: slowly the machine gets through the keys, does not race the clock
HELD = "pack=3600"
#: a product that is always sold out, for backorders
SOLD_OUT = "OUT-01"


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "realorders"
    if script.exists():
        return [str(script)]
    found = shutil.which("realorders")
    return [found] if found else [sys.executable, "-m", "realorders"]


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    """examples/inventory.csv plus a product with no stock; no engine yet."""
    db = tmp_path / "shop.db"
    with Client(db) as client:
        client.init(inventory=INVENTORY)
        client.add_product(SOLD_OUT, "Sold out gadget", 12.5, 0)
    return db


class EngineProcess:
    """``realorders --db DB run --delays ...`` as a real subprocess."""

    def __init__(self, db: Path, delays: str = DELAYS) -> None:
        self.db = db
        self.log = db.parent / "engine.log"
        env = {**os.environ, "NO_COLOR": "1"}
        env.pop("REALORDERS_DEBUG", None)
        env.pop("REALORDERS_DB", None)
        with self.log.open("ab") as log:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                [*_console_script(), "--db", str(db), "run", "--delays", delays],
                cwd=db.parent,
                env=env,
                stdout=log,
                stderr=log,
            )

    def wait_running(self, timeout: float = 15.0) -> None:
        """Until it holds the engine lock: while it still starts up (its CPU time moves),
        however slowly; it fails after ``timeout`` seconds without."""

        def running(client: Client) -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"the engine exited with {self.proc.returncode}:\n{self.output()}")
            return client.engine_running()

        with Client(self.db, create=False) as client:
            try:
                wait_for(
                    lambda: (running(client), cpu_ticks(self.proc.pid)),
                    lambda seen: seen[0],
                    progress=lambda seen: seen[1],
                    idle_timeout=timeout,
                    what="the engine to start",
                )
            except AssertionError as exc:
                pytest.fail(f"{exc}:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def start_engine(shop_db: Path) -> Iterator[Callable[..., EngineProcess]]:
    """Starts engines on ``shop_db`` on demand (``start(delays=DELAYS)``); each is stopped
    by its pid (SIGTERM) after."""
    started: list[EngineProcess] = []

    def start(delays: str = DELAYS) -> EngineProcess:
        process = EngineProcess(shop_db, delays)
        started.append(process)
        process.wait_running()
        return process

    yield start
    for process in started:
        process.stop()
    for process in started:
        assert process.proc.returncode == 0, process.output()


@pytest.fixture
def engine(start_engine: Callable[..., EngineProcess]) -> EngineProcess:
    """A running engine on ``shop_db`` for the whole test."""
    return start_engine()
