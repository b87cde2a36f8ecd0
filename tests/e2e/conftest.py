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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from waiting import cpu_state, cpu_ticks, wait_exit, wait_for

from realorders import Client
from realorders.errors import NotFoundError

if TYPE_CHECKING:
    from conftest import Cli  # tests/conftest.py: the `cli` fixture

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


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "",
    progress: Callable[[], object] | None = None,
) -> Any:
    """Until ``predicate()`` is truthy (returned); fails after ``timeout`` seconds without
    progress. ``progress()``, if given, measures the work (e.g. :func:`db_progress`): while
    it still changes the wait goes on, up to :data:`waiting.HARD_BOUND`."""

    def look() -> tuple[Any, object]:
        return predicate(), None if progress is None else progress()

    value, _ = wait_for(
        look,
        lambda seen: bool(seen[0]),
        progress=lambda seen: seen[1],
        idle_timeout=timeout,
        what=what or repr(predicate),
    )
    return value


def db_progress(db: Path) -> tuple[int, int, int]:
    """A measure of the work on ``db``: commands appended, commands processed, events."""
    with Client(db, create=False) as client:
        info = client.engine_info()
        return info.head, info.position, client.head()


def on_a_timer(pid: int) -> bool:
    """Whether the process sleeps in ``time.sleep`` (nanosleep), as /proc/PID/wchan says.

    Start-up may sleep too (on a pipe, a lock), never on a timer. True where the kernel
    does not tell (wchan ``0``).
    """
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return False
    return wchan in ("", "0") or "sleep" in wchan


def wait_idle(proc: subprocess.Popen[bytes], what: str) -> None:
    """Until ``proc`` idles in its poll loop: asleep on a timer over three looks 0.25 s
    apart, using under 10% of a CPU meanwhile.

    Start-up (imports, opening the database, a first read) takes what it takes on this
    machine, which a fixed sleep could only guess. While its CPU time still moves this
    keeps waiting; it gives up after a minute without.
    """
    looks: list[tuple[str, int]] = []
    quiet = 0.1 * 0.5 * os.sysconf("SC_CLK_TCK")  # ticks in 0.5 s at 10% of a CPU

    def look() -> tuple[str, int] | None:
        if proc.poll() is not None:
            return None
        state = cpu_state(proc.pid)
        if state is not None and state[0] == "S" and not on_a_timer(proc.pid):
            return "S-other", state[1]  # asleep, but not in its poll loop's time.sleep
        return state

    def idle(now: tuple[str, int] | None) -> bool:
        if now is None:
            return True  # it exited: nothing left to wait for
        looks.append(now)
        last = looks[-3:]
        return (
            len(last) == 3
            and all(state == "S" for state, _ in last)
            and last[-1][1] - last[0][1] <= quiet
        )

    wait_for(look, idle, progress=lambda now: now and now[1], interval=0.25, what=what)


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


def order_line(
    order_id: str | None, customer: str, *items: tuple[str, object], **extra: Any
) -> str:
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


def finish(
    proc: subprocess.Popen[bytes],
    timeout: float = 30,
    progress: Callable[[], object] | None = None,
) -> Stopped:
    """Wait for a background process to exit on its own and collect its output.

    Without ``progress``, for ``timeout`` seconds in all; with it (e.g. :func:`db_progress`),
    for as long as it still changes and at most ``timeout`` seconds without a change.
    """
    if progress is None:
        out, err = proc.communicate(timeout=timeout)
    else:
        out, err = wait_exit(proc, progress, idle_timeout=timeout)
    return Stopped(proc.returncode, out.decode(), err.decode())


@dataclass
class Background:
    """Background processes of one test; all are stopped when the test ends."""

    cli: Cli
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        proc = self.cli.popen(*args)
        self.procs.append(proc)
        return proc

    def engine(self, delays: str | None = None, *extra: str) -> subprocess.Popen[bytes]:
        """``realorders run`` in the background, returned once it holds the engine lock."""
        args = ["run", *extra] + (["--delays", delays] if delays else [])
        proc = self.start(*args)

        def started() -> bool:
            if proc.poll() is not None:
                done = stop(proc)
                raise AssertionError(f"engine exited {done.returncode}: {done.stderr}")
            return engine_running(self.cli.db)

        # while it still starts up (its CPU time moves), however slowly, keep waiting
        wait_until(
            started,
            ENGINE_START_TIMEOUT,
            what="the engine to start",
            progress=lambda: cpu_ticks(proc.pid),
        )
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

        wait_until(
            opened,
            ENGINE_START_TIMEOUT,
            what=f"{args[0]} to open the database",
            progress=lambda: cpu_ticks(proc.pid),
        )
        # from open to its first read (migrate, then the cursor): until it idles, polling
        wait_idle(proc, what=f"{args[0]} to take its cursor")
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            stop(proc)


@pytest.fixture
def background(cli: Cli) -> Iterator[Background]:
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
def shop(cli: Cli, template_dir: Path) -> Cli:
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
def seeded(cli: Cli, examples: Path, template_dir: Path) -> Cli:
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
