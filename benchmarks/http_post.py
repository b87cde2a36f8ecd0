"""The HTTP API under wrk: single-order POSTs against the same server's ceiling.

    python benchmarks/http_api.py [--seconds 10] [--connections 64] [--smoke]

One run, one machine, three measurements with the engine running beside the
server (``realorders run``, no fulfilment delays), each by wrk (Debian's
package; installed here with apt-get when missing and run as root):

- ``GET /healthz``: the framework's trivial endpoint (constant JSON, no store),
  the ceiling for this server on this machine;
- ``POST /v1/orders``: one order per request, a new id each, group commit;
- the same with one commit per request (``ServerOptions(intake_batch=1)``).

Prints one JSON line per measurement and the ratios (POST / ceiling, group
commit / one commit per request), then checks that the store holds at least
every order wrk counted as answered (requests still in flight when wrk stops
may land too). Everything on 127.0.0.1; every process is stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import realorders_cmd

HERE = Path(__file__).resolve().parent
SERVE_ONE_COMMIT = """
import sys, uvicorn
from realorders.config import Config
from realorders.server import ServerOptions, create_app, store_fields
from realorders.server.protocol import DeadlineProtocol
options = ServerOptions(port=int(sys.argv[2]), intake_batch=1, intake_window=0.0,
                        access_log=False, store=store_fields(Config(db=sys.argv[1])))
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


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"the server exited {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit("the server did not answer /healthz within 30 s")


def wrk(binary: str, url: str, script: str, args: argparse.Namespace, **env: str) -> Any:
    result = subprocess.run(
        [
            binary,
            "-t2",
            f"-c{args.connections}",
            f"-d{args.seconds}s",
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
    data = json.loads(line)
    data["per_second"] = round(data["requests"] / data["seconds"], 1)
    return data


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="2 s each, 8 connections")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.connections = 2, 8
    binary = ensure_wrk()
    from realorders import Client
    from realorders.tokens import Scope

    directory = Path(tempfile.mkdtemp(prefix="realorders-http-bench-"))
    db = directory / "bench.db"
    with Client(db) as shop:
        shop.add_product("KB-01", "Keyboard", 89.0, 10**9)
        token = shop.create_token("bench", Scope.ADMIN)[1]
    processes: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {}
    try:
        engine = subprocess.Popen(
            [*realorders_cmd(), "--db", str(db), "run", "--delays", "pack=0,ship=0,deliver=0"],
            stderr=subprocess.DEVNULL,
        )
        processes.append(engine)
        for name in ("group_commit", "one_commit_per_request"):
            port = free_port()
            command = (
                [
                    *realorders_cmd(),
                    "--db",
                    str(db),
                    "serve",
                    "--no-access-log",
                    "--port",
                    str(port),
                ]
                if name == "group_commit"
                else [sys.executable, "-c", SERVE_ONE_COMMIT, str(db), str(port)]
            )
            server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
            processes.append(server)
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, server)
            env = {"REALORDERS_BENCH_TOKEN": token, "REALORDERS_BENCH_RUN": name}
            if name == "group_commit":
                results["healthz_ceiling"] = wrk(binary, f"{url}/healthz", "get.lua", args, **env)
            results[name] = wrk(binary, url, "post_orders.lua", args, **env)
            stop(server)
        with Client(db) as shop:
            stored = sum(shop.counts().values()) + len(shop.queued(limit=10**9))
    finally:
        for proc in processes:
            stop(proc)
    answered = results["group_commit"]["requests"] + results["one_commit_per_request"]["requests"]
    for name, data in results.items():
        print(json.dumps({"measure": name, **data}))
    ceiling = results["healthz_ceiling"]["per_second"]
    print(json.dumps({
        "post_vs_ceiling": round(results["group_commit"]["per_second"] / ceiling, 2),
        "group_vs_one_commit": round(
            results["group_commit"]["per_second"]
            / results["one_commit_per_request"]["per_second"], 2),
        "orders_stored": stored,
        "orders_answered": answered,
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
    }))  # fmt: skip
    if stored < answered:
        sys.exit(f"only {stored} orders stored for {answered} answered")
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
