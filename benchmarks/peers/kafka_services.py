"""A contender's own Kafka broker (and Redis), started and stopped around its run.

Stdlib only. The broker and Redis are started with the project's services script
(``scripts/services/services.py kafka start --dir …``), which leaves them
detached: they are not children of the contender, so ``wait4`` in the harness
never sees their CPU. :meth:`Services.cpu` reads it from ``/proc/PID/stat``
instead, for the contender to report beside its own.

They are stopped by PID (``services.py … stop``) in ``finally``; SIGTERM and
SIGINT become ``SystemExit`` so that ``finally`` runs. A harness timeout
SIGKILLs the contender's process group, which they have left (the script
starts them in sessions of their own), so a watchdog in its own session stops
them when the contender is gone.

Also usable as a script: ``python kafka_services.py watch --pid P --dir D …``
(the watchdog itself).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import common

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services" / "services.py"

__all__ = ["Services", "stop_on_signals"]


def proc_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, MB (0 if gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def stop_on_signals() -> None:
    """SIGTERM/SIGINT unwind the stack (``finally`` blocks stop the services)."""
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGINT, _raise_exit)


def _script(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(SERVICES), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"services.py {' '.join(args)}: {proc.stderr.strip()[-2000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


@dataclass
class Services:
    """Broker (and optionally Redis) in ``directory``; ``with`` stops them whatever happens."""

    directory: Path
    redis: bool = True
    kafka_info: dict[str, Any] = field(default_factory=dict)
    redis_info: dict[str, Any] = field(default_factory=dict)
    _watchdog: subprocess.Popen[bytes] | None = None
    _cpu_mark: dict[str, float] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return str(self.kafka_info["bootstrap"])

    @property
    def redis_url(self) -> str:
        return str(self.redis_info["url"])

    @property
    def pids(self) -> dict[str, int]:
        found = {"broker": int(self.kafka_info["pid"])} if self.kafka_info else {}
        if self.redis_info:
            found["redis"] = int(self.redis_info["pid"])
        return found

    def start(self) -> Services:
        if shutil.which("java") is None:
            common.skip("service missing: java (the Kafka broker needs Java 17)")
        if self.redis and shutil.which("redis-server") is None:
            common.skip("service missing: redis-server")
        kafka_dir, redis_dir = self.directory / "kafka", self.directory / "redis"
        self._watchdog = subprocess.Popen(
            [sys.executable, __file__, "watch", "--pid", str(os.getpid())]
            + ["--dir", f"kafka={kafka_dir}"]
            + (["--dir", f"redis={redis_dir}"] if self.redis else []),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives a SIGKILL of our process group
        )
        self.kafka_info = _script("kafka", "start", "--dir", str(kafka_dir))
        if self.redis:
            self.redis_info = _script("redis", "start", "--dir", str(redis_dir))
        return self

    def stop(self) -> None:
        for name in ("redis", "kafka"):
            info = self.redis_info if name == "redis" else self.kafka_info
            if info:
                with contextlib.suppress(RuntimeError):
                    _script(name, "stop", "--dir", str(info["dir"]))
        if self._watchdog is not None and self._watchdog.poll() is None:
            self._watchdog.terminate()
            self._watchdog.wait(timeout=10)

    def __enter__(self) -> Services:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def mark_cpu(self) -> None:
        """Start of the timed window: remember each service's CPU so far."""
        self._cpu_mark = {name: common.proc_cpu(pid) for name, pid in self.pids.items()}

    def cpu(self) -> dict[str, float]:
        """CPU seconds each service used since :meth:`mark_cpu`."""
        return {
            name: round(common.proc_cpu(pid) - self._cpu_mark.get(name, 0.0), 3)
            for name, pid in self.pids.items()
        }

    def rss_mb(self) -> dict[str, float]:
        return {name: round(proc_rss_mb(pid), 1) for name, pid in self.pids.items()}

    def versions(self) -> dict[str, str]:
        found = {"kafka-broker": str(self.kafka_info.get("version", "?"))}
        if self.redis_info:
            found["redis-server"] = str(self.redis_info.get("version", "?"))
        return found


def _watch(pid: int, dirs: list[str]) -> None:
    """Until ``pid`` is gone, then stop each ``name=dir`` service (as its ``stop`` would)."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # the normal end: nothing to do
    while Path(f"/proc/{pid}").exists() and os.getppid() == pid:
        time.sleep(0.5)
    for item in dirs:
        name, _, directory = item.partition("=")
        if (Path(directory) / f"{name}.json").exists():
            with contextlib.suppress(RuntimeError, ValueError):
                _script(name, "stop", "--dir", directory)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="stop the services when a contender is gone")
    sub = parser.add_subparsers(dest="action", required=True)
    watch = sub.add_parser("watch")
    watch.add_argument("--pid", type=int, required=True)
    watch.add_argument("--dir", action="append", default=[], help="NAME=DIR, e.g. kafka=/x/kafka")
    ns = parser.parse_args()
    _watch(ns.pid, ns.dir)
