"""The peers' venv, and what a result needs to say about where it was measured.

The peers (DBOS, huey, matplotlib, …) are not realorders dependencies, so they
live in a venv of their own, ``.cache/peers-venv`` (git-ignored), with
realorders installed editable beside them and pip's cache in ``.cache/pip``.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV = ROOT / ".cache" / "peers-venv"
REQUIREMENTS = HERE / "requirements.txt"
REEXEC = "PEERS_RUN_REEXEC"  # set when ensure_peers_env appended --no-install


def pins() -> dict[str, str]:
    """``name==version`` lines of requirements.txt."""
    found = {}
    for raw in REQUIREMENTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.strip()] = version.strip()
    return found


_CHECK = """
import importlib.metadata as m, json, sys
want = json.loads(sys.argv[1])
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
ok = all(version(k) == v for k, v in want.items()) and version("realorders") is not None
sys.exit(0 if ok else 1)
"""


def has_peers(python: str | Path) -> bool:
    """Whether ``python`` has realorders and every pinned peer at its pinned version."""
    import json

    proc = subprocess.run(
        [str(python), "-c", _CHECK, json.dumps(pins())], capture_output=True, check=False
    )
    return proc.returncode == 0


def ensure_peers_env(argv: list[str]) -> None:
    """Run on an interpreter with the peers: this one if it has them, else the peers' venv.

    Creates or updates ``.cache/peers-venv`` as needed, then re-executes the
    command there (with ``--no-install``). Returns only when this interpreter
    already has everything.
    """
    if has_peers(sys.executable):
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not has_peers(python):
        print(f"installing realorders and the peers into {VENV}", file=sys.stderr)
        env = {**os.environ, "PIP_CACHE_DIR": str(ROOT / ".cache" / "pip")}
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-e", str(ROOT), "-r", str(REQUIREMENTS)],
            env=env,
            check=True,
        )
    run = HERE / "run"
    os.environ[REEXEC] = "1"
    os.execv(str(python), [str(python), str(run), *argv, "--no-install"])


def _git(*args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def describe(argv: list[str]) -> dict[str, Any]:
    """Machine, versions, commit and command: what the README's results must state."""
    versions = {}
    for name in ("realorders", *pins()):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    if os.environ.get(REEXEC) and argv[-1:] == ["--no-install"]:
        argv = argv[:-1]  # the command as typed, not as re-executed in the peers' venv
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "benchmarks/peers/run " + " ".join(argv),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "interpreter": sys.executable,
        "sqlite": sqlite3.sqlite_version,
        "versions": versions,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(dirty),
        "load_before": os.getloadavg(),
    }
