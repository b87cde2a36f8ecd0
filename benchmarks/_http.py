"""What the HTTP benchmarks share: wrk, a served store, an engine beside it, and /proc figures.

Every process is started here on 127.0.0.1 and stopped by PID; wrk comes from
Debian's package (installed with apt-get when missing and run as root).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _procs import realorders_cmd
from _stores import RunningStore

__all__ = [
    "ONE_COMMIT_SERVER",
    "ensure_wrk",
    "free_port",
    "rss_mb",
    "start_engine",
    "start_server",
    "stop",
    "wrk",
]

HERE = Path(__file__).resolve().parent

#: the server as shipped but with group commit off (one append per request): the baseline
ONE_COMMIT_SERVER = """
import sys, uvicorn
from realorders.config import load_config
from realorders.server import ServerOptions, create_app, store_fields
from realorders.server.protocol import DeadlineProtocol
options = ServerOptions(port=int(sys.argv[1]), intake_batch=1, intake_window=0.0,
                        access_log=False, store=store_fields(load_config({})))
uvicorn.run(create_app(options), host="127.0.0.1", port=options.port, http=DeadlineProtocol,
            access_log=False, log_level="warning")
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is missing: sudo apt-get install wrk")
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_engine(store: RunningStore) -> subprocess.Popen[bytes]:
    """``realorders run`` without fulfilment delays, on ``store``."""
    return subprocess.Popen(
        [*realorders_cmd(), "run", "--delays", "pack=0,ship=0,deliver=0"],
        env=store.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_server(
    store: RunningStore, *args: str, one_commit: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    """``realorders serve`` (or the one-commit baseline) on a free port, once it answers."""
    port = free_port()
    command = (
        [sys.executable, "-c", ONE_COMMIT_SERVER, str(port)]
        if one_commit
        else [*realorders_cmd(), "serve", "--no-access-log", "--port", str(port), *args]
    )
    proc = subprocess.Popen(
        command,
        env=store.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url, proc)
    return proc, url


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"the server exited {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit("the server did not answer /healthz within 60 s")


def wrk(url: str, script: str, seconds: float, connections: int, **env: str) -> dict[str, Any]:
    """One wrk run (2 threads) with a script of ``benchmarks/wrk``; its JSON line, plus rate."""
    result = subprocess.run(
        [
            ensure_wrk(),
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(HERE / "wrk" / script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    line = [x for x in result.stdout.splitlines() if x.startswith("{")][-1]
    data: dict[str, Any] = json.loads(line)
    data["per_second"] = round(data["requests"] / data["seconds"], 1)
    return data


def rss_mb(pid: int) -> float:
    """Resident memory of a live process, MiB (0 once gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 30 s; always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
