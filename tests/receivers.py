"""Webhook receivers for tests: real HTTP servers on free loopback ports.

Each request is checked with the Standard Webhooks reference library
(``Webhook(secret).verify``), as a receiver in the field would, and recorded
by its ``webhook-id``. A receiver can be told to misbehave for a while: answer
given codes (with ``Retry-After``), be slow, or hang past the deliverer's timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Arrival:
    msg_id: str
    order_id: str
    seq: int
    type: str


@dataclass
class Receiver:
    """What arrived, in arrival order; answers ``script`` (code, Retry-After) first."""

    secrets: list[str] = field(default_factory=list)
    script: list[tuple[int, str | None]] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering each request
    arrivals: list[Arrival] = field(default_factory=list)
    rejected: int = 0  # requests whose signature did not verify
    requests: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, str | None]:
        with self.lock:
            self.requests += 1
            if self.script:
                return self.script.pop(0)
        for secret in self.secrets:
            try:
                data: Any = Webhook(secret).verify(body, headers)
            except Exception:
                continue
            with self.lock:
                self.arrivals.append(
                    Arrival(
                        headers["webhook-id"],
                        data["data"]["order_id"],
                        data["data"]["seq"],
                        data["type"],
                    )
                )
            return 200, None
        with self.lock:
            self.rejected += 1
        return 400, None

    def unique(self) -> dict[str, tuple[str, int]]:
        """(order, seq) per ``webhook-id``: what a receiver that de-duplicates keeps."""
        with self.lock:
            return {a.msg_id: (a.order_id, a.seq) for a in self.arrivals}

    def first_arrivals(self) -> dict[str, list[int]]:
        """Each order's seqs in the order they first arrived."""
        seen: set[str] = set()
        per_order: dict[str, list[int]] = {}
        with self.lock:
            for a in self.arrivals:
                if a.msg_id not in seen:
                    seen.add(a.msg_id)
                    per_order.setdefault(a.order_id, []).append(a.seq)
        return per_order


@contextmanager
def receiving(state: Receiver | None = None) -> Iterator[Receiver]:
    """A receiver listening on a free loopback port (HTTP/1.1 keep-alive) until the block ends."""
    receiver = state or Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if receiver.delay:
                time.sleep(receiver.delay)
            code, retry_after = receiver.answer(
                {k.lower(): v for k, v in self.headers.items()}, body
            )
            self.send_response(code)
            if retry_after is not None:
                self.send_header("retry-after", retry_after)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a deliverer killed mid-request resets its connections: expected here

    server = Server(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
