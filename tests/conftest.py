"""Shared fixtures: a fresh database per test and the real console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from realorders import Client

# Real Kafka and Redis fixtures (tests/services.py); tests/ is on sys.path, as for `fakes`.
pytest_plugins = ["services"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


#: pytest started as a background job of a non-interactive shell (nohup, ``cmd &`` in a
#: script) has SIGINT ignored, and a child inherits that: it could not be interrupted. This
#: puts SIGINT back to its default and execs the command (exec keeps the pid).
_SIGINT_AS_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _console_script() -> list[str]:
    """The installed ``realorders`` entry point next to this interpreter (not python -m)."""
    script = Path(sys.executable).parent / "realorders"
    if script.exists():
        return [str(script)]
    found = shutil.which("realorders")
    if found is None:
        pytest.fail("the realorders console script is not installed (pip install -e '.[dev]')")
    return [found]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Cli:
    """Runs the real console script in a temp directory against its own database."""

    cwd: Path
    db: Path

    def __call__(
        self,
        *args: str,
        input: str | bytes | None = None,
        check: bool | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> Result:
        full_env = {
            **os.environ,
            "REALORDERS_DB": str(self.db),
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **(env or {}),
        }
        full_env.pop("REALORDERS_DEBUG", None)
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            [*_console_script(), *args],
            cwd=self.cwd,
            input=data,
            capture_output=True,
            timeout=timeout,
            env=full_env,
            check=False,
        )
        result = Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        if check and result.returncode != 0:
            raise AssertionError(
                f"realorders {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """The console script in the background, Ctrl-C-able as from a terminal (same pid)."""
        full_env = {**os.environ, "REALORDERS_DB": str(self.db), "NO_COLOR": "1", **(env or {})}
        return subprocess.Popen(
            [sys.executable, "-c", _SIGINT_AS_A_TERMINAL, *_console_script(), *args],
            cwd=self.cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(cwd=tmp_path, db=tmp_path / "realorders.db")


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with Client(tmp_path / "shop.db") as shop:
        yield shop
