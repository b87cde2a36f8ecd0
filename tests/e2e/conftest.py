"""Helpers for the end-to-end CLI tests.

Every test drives the real console script through the shared ``cli`` fixture
(tests/conftest.py). This module adds:

- ``ok`` / ``fails``: run a command and assert its exit code, that stderr never
  holds a traceback and (for failures) that the error is one line;
- ``engine``: start ``realorders run`` in the background, wait until it holds
  the engine lock, and always stop it (SIGTERM, then kill) when the test ends;
- ``shop``: a database with a small deterministic catalogue (our own file, so
  edits to examples/ do not change expected statuses);
- ``seeded``: a database with every example file imported and processed, built
  once through the CLI and copied per test (the CLI costs ~0.3 s per call).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from realorders import Client
from realorders.errors import NotFoundError

# A catalogue whose stock levels the tests rely on (examples/ may change).
CATALOGUE = [
    ("KB-01", "Mechanical keyboard", 89.0, 40),
    ("MS-02", "Wireless mouse", 24.5, 60),
    ("SP-07", "Desk speakers", 69.0, 2),
    ("HD-03", "Headphones", 179.0, 3),
]
ENGINE_START_TIMEOUT = 15.0


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def ok(cli: Any, *args: str, **kwargs: Any) -> Any:
    """Run a command that must succeed (exit 0)."""
    result = cli(*args, **kwargs)
    no_traceback(result)
    assert result.returncode == 0, (
        f"realorders {' '.join(args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def fails(cli: Any, *args: str, code: int = 1, one_line: bool = True, **kwargs: Any) -> Any:
    """Run a command that must fail with ``code``; by default its error is one stderr line."""
    result = cli(*args, **kwargs)
    no_traceback(result)
    assert result.returncode == code, (
        f"realorders {' '.join(args)} exited {result.returncode}, expected {code}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    if one_line:
        lines = error_lines(result.stderr)
        assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
        assert lines[0].startswith("error: "), lines[0]
    return result


def as_json(result: Any) -> Any:
    return json.loads(result.stdout)


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


def status_of(db: Path, order_id: str) -> str | None:
    """Current status through the Python API (cheap polling; assertions use the CLI)."""
    with Client(db, create=False) as client:
        try:
            return client.get(order_id).status.value
        except NotFoundError:
            return None


def engine_running(db: Path) -> bool:
    if not db.exists():
        return False
    with Client(db, create=False) as client:
        return client.engine_running()


def write_catalogue(path: Path, rows: list[tuple[str, str, float, int]] = CATALOGUE) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["product_id", "name", "price", "stock"])
        writer.writerows(rows)
    return path


def order_line(order_id: str | None, customer: str, *items: tuple[str, int], **extra: Any) -> str:
    data: dict[str, Any] = {} if order_id is None else {"id": order_id}
    data["customer_id"] = customer
    data["items"] = [{"product_id": p, "quantity": q} for p, q in items]
    data.update(extra)
    return json.dumps(data, ensure_ascii=False)


@dataclass
class Stopped:
    returncode: int
    stdout: str
    stderr: str


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> Stopped:
    """Stop a background process (SIGTERM, then kill after 10 s) and collect its output."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return Stopped(proc.returncode, out.decode(), err.decode())


def finish(proc: subprocess.Popen[bytes], timeout: float = 30) -> Stopped:
    """Wait for a background process to exit on its own and collect its output."""
    out, err = proc.communicate(timeout=timeout)
    return Stopped(proc.returncode, out.decode(), err.decode())


@dataclass
class Background:
    """Background processes of one test; all are stopped when the test ends."""

    cli: Any
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        proc = self.cli.popen(*args)
        self.procs.append(proc)
        return proc

    def engine(self, delays: str | None = None, *extra: str) -> subprocess.Popen[bytes]:
        """``realorders run`` in the background, returned once it holds the engine lock."""
        args = ["run", *extra] + (["--delays", delays] if delays else [])
        proc = self.start(*args)
        deadline = time.monotonic() + ENGINE_START_TIMEOUT
        while not engine_running(self.cli.db):
            if proc.poll() is not None:
                done = stop(proc)
                raise AssertionError(f"engine exited {done.returncode}: {done.stderr}")
            if time.monotonic() >= deadline:
                raise AssertionError("engine did not start")
            time.sleep(0.05)
        return proc

    def follower(self, *args: str) -> subprocess.Popen[bytes]:
        """A background reader (``watch``), returned once it has the database open.

        ``watch`` takes its starting cursor right after opening the database, so
        events committed after this returns are guaranteed to reach it.
        """
        proc = self.start(*args)
        target = str(self.cli.db.resolve())

        def opened() -> bool:
            if proc.poll() is not None:
                return True
            try:
                fds = os.listdir(f"/proc/{proc.pid}/fd")
            except FileNotFoundError:
                return False
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{proc.pid}/fd/{fd}") == target:
                        return True
                except OSError:
                    continue
            return False

        wait_until(opened, ENGINE_START_TIMEOUT, what=f"{args[0]} to open the database")
        time.sleep(0.3)  # from open to its first read: migrate, then the cursor
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            stop(proc)


@pytest.fixture
def background(cli: Any) -> Iterator[Background]:
    bg = Background(cli)
    try:
        yield bg
    finally:
        bg.stop_all()


_TEMPLATES: dict[str, Path] = {}


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("templates")


def _copy_db(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{source}{suffix}")
        if src.exists():
            shutil.copyfile(src, f"{target}{suffix}")


@pytest.fixture
def shop(cli: Any, template_dir: Path) -> Any:
    """An initialised database with the deterministic :data:`CATALOGUE`.

    Built with ``realorders init --inventory`` once, then copied per test.
    """
    catalogue = write_catalogue(cli.cwd / "catalogue.csv")
    template = _TEMPLATES.get("shop")
    if template is None:
        ok(cli, "init", "--inventory", str(catalogue))
        template = template_dir / "shop.db"
        _copy_db(cli.db, template)
        _TEMPLATES["shop"] = template
    else:
        _copy_db(template, cli.db)
    return cli


@pytest.fixture
def seeded(cli: Any, examples: Path, template_dir: Path) -> Any:
    """Example inventory + orders.ndjson, orders.csv, orders.json imported and processed."""
    template = _TEMPLATES.get("seeded")
    if template is None:
        ok(cli, "init", "--inventory", str(examples / "inventory.csv"))
        for name in ("orders.ndjson", "orders.csv", "orders.json"):
            ok(cli, "import", str(examples / name))
        ok(cli, "run", "--until-idle")
        template = template_dir / "seeded.db"
        _copy_db(cli.db, template)
        _TEMPLATES["seeded"] = template
    else:
        _copy_db(template, cli.db)
    return cli
