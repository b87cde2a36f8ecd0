"""The peers' venvs, and what a result needs to say about where it was measured.

The peers (DBOS, huey, faust, matplotlib, …) are not realorders dependencies,
so they live in venvs of their own under ``.cache/`` (git-ignored), with
realorders installed editable beside them and pip's cache in ``.cache/pip``.
One venv per contender group, because the groups' peers cannot share one:
faust-streaming's mode-streaming pins ``croniter<6``, dbos 3.4 needs ``>=6.2.4``.
The harness itself runs in the embedded group's venv (it needs matplotlib).
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import json
import os
import platform
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REEXEC = "PEERS_RUN_REEXEC"  # set when ensure_peers_env appended --no-install


@dataclass(frozen=True, slots=True)
class PeerEnv:
    """A contender group's venv and the pins it is built from."""

    group: str
    venv: Path
    requirements: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def pins(self) -> dict[str, str]:
        """``name==version`` lines of the requirements file."""
        found = {}
        for raw in self.requirements.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                found[name.strip()] = version.strip()
        return found


CACHE = ROOT / ".cache"
ENVS = {
    "embedded": PeerEnv("embedded", CACHE / "peers-venv", HERE / "requirements.txt"),
    "kafka": PeerEnv("kafka", CACHE / "peers-kafka-venv", HERE / "requirements-kafka.txt"),
}
VENV = ENVS["embedded"].venv
REQUIREMENTS = ENVS["embedded"].requirements


def pins() -> dict[str, str]:
    """The embedded group's pins (the harness's own venv)."""
    return ENVS["embedded"].pins()


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


def has_peers(python: str | Path, env: PeerEnv = ENVS["embedded"]) -> bool:
    """Whether ``python`` has realorders and every peer ``env`` pins, at its pinned version."""
    proc = subprocess.run(
        [str(python), "-c", _CHECK, json.dumps(env.pins())], capture_output=True, check=False
    )
    return proc.returncode == 0


def build(env: PeerEnv) -> Path:
    """Create or update ``env``'s venv until it has its pins; its interpreter."""
    python = env.python
    if not python.exists():
        print(f"creating {env.venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(env.venv)], check=True)
    if not has_peers(python, env):
        print(f"installing realorders and the {env.group} peers into {env.venv}", file=sys.stderr)
        pip_env = {**os.environ, "PIP_CACHE_DIR": str(CACHE / "pip")}
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run(
            [*pip, "-e", str(ROOT), "-r", str(env.requirements)],
            env=pip_env,
            check=True,
        )
    return python


def ensure_peers_env(argv: list[str]) -> None:
    """Run on an interpreter with the embedded peers: this one if it has them, else their venv.

    Creates or updates ``.cache/peers-venv`` as needed, then re-executes the
    command there (with ``--no-install``). Returns only when this interpreter
    already has everything.
    """
    if has_peers(sys.executable):
        return
    python = build(ENVS["embedded"])
    run = HERE / "run"
    os.environ[REEXEC] = "1"
    os.execv(str(python), [str(python), str(run), *argv, "--no-install"])


def reexecuted(argv: list[str]) -> bool:
    """Whether this run is ``ensure_peers_env``'s re-execution (its ``--no-install`` is ours)."""
    return bool(os.environ.get(REEXEC)) and argv[-1:] == ["--no-install"]


def group_python(group: str, *, install: bool) -> str:
    """The interpreter that runs a group's contenders.

    The embedded group runs on this interpreter (the harness's own). Another
    group runs on its venv, built first when ``install``; without it, on the
    venv as it is if there is one, else on this interpreter (its contenders
    then show ``not installed`` for what is missing).
    """
    env = ENVS.get(group)
    if env is None or group == "embedded":
        return sys.executable
    if install:
        return str(build(env))
    return str(env.python) if env.python.exists() else sys.executable


_MISSING = """
import importlib.util, json, sys
print(json.dumps([r for r in json.loads(sys.argv[1]) if importlib.util.find_spec(r) is None]))
"""


@functools.cache
def missing_in(python: str, roots: tuple[str, ...]) -> tuple[str, ...]:
    """Which of these top-level modules ``python`` cannot import."""
    if python == sys.executable:
        import importlib.util

        return tuple(r for r in roots if importlib.util.find_spec(r) is None)
    proc = subprocess.run(
        [python, "-c", _MISSING, json.dumps(list(roots))], capture_output=True, check=True
    )
    return tuple(json.loads(proc.stdout))


_VERSIONS = """
import importlib.metadata as m, json, sys
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return "not installed"
print(json.dumps({n: version(n) for n in json.loads(sys.argv[1])}))
"""


def versions_in(python: str, names: list[str]) -> dict[str, str]:
    proc = subprocess.run(
        [python, "-c", _VERSIONS, json.dumps(names)], capture_output=True, check=True
    )
    return dict(json.loads(proc.stdout))


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


def describe(argv: list[str], pythons: dict[str, str] | None = None) -> dict[str, Any]:
    """Machine, versions, commit and command: what the README's results must state.

    ``pythons``: the interpreter of each contender group in the run; the
    versions of a group's pins are read from its own interpreter.
    """
    versions = {}
    for name in ("realorders", *pins()):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    for group, python in (pythons or {}).items():
        env = ENVS.get(group)
        if env is not None and group != "embedded":
            versions.update(versions_in(python, list(env.pins())))
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    if reexecuted(argv):
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
