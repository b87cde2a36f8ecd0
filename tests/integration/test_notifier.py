"""The deliverer in this process against real receivers that verify every signature,
on SQLite and on Kafka + Redis.

Receivers (tests/receivers.py) are HTTP servers on free loopback ports that check
each request with the Standard Webhooks reference library and record it by its
``webhook-id``, as a receiver that de-duplicates would. Misbehaving ones (500s,
``Retry-After``, timeouts, refused connections, ``410``, 10 MiB answers) must cost
nothing but time: every event arrives once they recover, and the deliverer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from receivers import Receiver, receiving

from realorders import Client, Delays, LineItem, Order
from realorders.config import Config
from realorders.deliveries import DeliveryStatus
from realorders.notifier import Notifier, NotifierOptions

FAST = NotifierOptions(time_scale=0.0001, timeout=2.0)


@pytest.fixture
def shop(backend_config: Config) -> Iterator[Client]:
    with Client(config=backend_config, create=True) as client:
        client.add_product("KB-01", "Keyboard", 89.0, 10_000)
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


def process(shop: Client, count: int, prefix: str = "N") -> None:
    orders = [Order(f"{prefix}-{i}", f"c{i % 7}", (LineItem("KB-01", 1),)) for i in range(count)]
    shop.submit_many(orders)
    shop.run(until_idle=True, delays=Delays(), handle_signals=False)


def drain(notifier: Notifier, rounds: int = 2000) -> None:
    """Step until nothing is owed (retries are due within milliseconds at FAST's scale)."""

    async def go() -> None:
        for _ in range(rounds):
            await notifier.step()
            if notifier.client.backend.deliveries.pending_count() == 0:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the outbox did not empty")

    asyncio.run(go())


def every_event(shop: Client) -> set[tuple[str, int]]:
    return {(e.order_id, e.seq) for _, e in shop.events(0, 100_000)}


def assert_all_once_in_order(receiver: Receiver, expected: set[tuple[str, int]]) -> None:
    unique = receiver.unique()
    assert set(unique.values()) == expected
    assert len(unique) == len(expected)
    assert receiver.rejected == 0
    for order_id, seqs in receiver.first_arrivals().items():
        assert seqs == sorted(seqs), (order_id, seqs)


def test_every_event_arrives_once_in_order_per_order(shop: Client, receiver: Receiver) -> None:
    endpoint, secret = shop.add_webhook(receiver.url)
    receiver.secrets.append(secret)
    process(shop, 200)
    drain(Notifier(shop, FAST))
    assert_all_once_in_order(receiver, every_event(shop))
    assert len(receiver.arrivals) == len(receiver.unique())  # no repeat without a failure
    assert shop.backend.deliveries.failed_count(endpoint.endpoint_id) == 0


def test_a_receiver_that_fails_for_a_while_gets_everything(
    shop: Client, receiver: Receiver
) -> None:
    """500s, and 503 and 429 with Retry-After: each a retry, in the order per order kept."""
    endpoint, secret = shop.add_webhook(receiver.url)
    receiver.secrets.append(secret)
    script: list[tuple[int, str | None]] = [(500, None)] * 6 + [(503, "0"), (429, "0")]
    receiver.script = script + [(500, None)] * 4
    process(shop, 10)
    failures: list[int | None] = []
    notifier = Notifier(shop, FAST, on_failure=lambda d, a: failures.append(a.status))
    drain(notifier)
    # requests go out concurrently: the same answers, in any order
    assert sorted(code or 0 for code in failures) == [429] + [500] * 10 + [503]
    assert_all_once_in_order(receiver, every_event(shop))
    retried = [
        d for d in shop.webhook_deliveries(endpoint.endpoint_id, limit=100) if d.attempts > 1
    ]
    assert retried  # the history shows the attempts it took
    assert all(d.status is DeliveryStatus.DELIVERED for d in retried)


def test_refused_connections_and_timeouts_are_retried_until_the_receiver_is_up(
    shop: Client, receiver: Receiver
) -> None:
    port = _free_port()
    endpoint, secret = shop.add_webhook(f"http://127.0.0.1:{port}/hooks")
    process(shop, 3)
    notifier = Notifier(shop, NotifierOptions(time_scale=0.0001, timeout=0.5))
    asyncio.run(notifier.step())  # nobody listens: connection refused
    (first, *_) = shop.webhook_deliveries(endpoint.endpoint_id, limit=1)
    assert first.status is DeliveryStatus.PENDING
    assert first.last_error is not None
    assert "connection" in first.last_error.lower(), first.last_error
    with _hanging(port):  # listening, never answering: a timeout
        asyncio.run(notifier.step())
        timed_out = [d.last_error for d in shop.webhook_deliveries(endpoint.endpoint_id)]
        assert "timeout after 0.5 s" in timed_out, timed_out
    shop.update_webhook(endpoint.endpoint_id, url=receiver.url)  # it moved, and is up
    receiver.secrets.append(secret)
    drain(notifier)
    assert_all_once_in_order(receiver, every_event(shop))


def test_410_disables_the_endpoint_and_the_others_go_on(shop: Client, receiver: Receiver) -> None:
    with receiving(Receiver(script=[(410, None)] * 100)) as gone:
        endpoint, _ = shop.add_webhook(gone.url)
        _, secret = shop.add_webhook(receiver.url)
        receiver.secrets.append(secret)
        process(shop, 3)
        notifier = Notifier(shop, FAST)
        asyncio.run(notifier.step())
        asyncio.run(notifier.step())
    found = shop.webhook(endpoint.endpoint_id)
    assert not found.enabled
    assert found.disabled_reason == "410 Gone from the receiver"
    assert shop.backend.deliveries.failed_count(endpoint.endpoint_id) >= 1
    assert {(o, s) for o, s in receiver.unique().values()} <= every_event(shop)
    assert len(receiver.unique()) >= 3  # the other endpoint is served meanwhile


def test_a_huge_answer_is_cut_and_the_delivery_counts(shop: Client) -> None:
    """10 MiB back: read no further than the first 64 KiB, recorded as delivered."""
    with _answering(b"x" * (10 * 1024 * 1024)) as url:
        endpoint, _ = shop.add_webhook(url, events="pending")
        process(shop, 2)
        drain(Notifier(shop, FAST))
    delivered = shop.webhook_deliveries(endpoint.endpoint_id)
    assert [d.status for d in delivered] == [DeliveryStatus.DELIVERED] * 2
    assert all(d.response_excerpt == "x" * 200 for d in delivered)


def test_a_rotated_secret_verifies_with_the_old_and_the_new(
    shop: Client, receiver: Receiver
) -> None:
    endpoint, old = shop.add_webhook(receiver.url, events="pending")
    new = shop.rotate_webhook_secret(endpoint.endpoint_id, grace=3600)
    process(shop, 5)
    notifier = Notifier(shop, FAST)
    receiver.secrets[:] = [old]  # a receiver not told of the rotation yet
    drain(notifier)
    assert len(receiver.unique()) == 5
    receiver.secrets[:] = [new]  # one that knows the new secret only
    assert shop.replay_webhook(endpoint.endpoint_id) == 5
    drain(notifier)
    assert len(receiver.arrivals) == 10  # each verified with one secret alone
    assert receiver.rejected == 0
    shop.rotate_webhook_secret(endpoint.endpoint_id, grace=0)  # both of those end now
    receiver.secrets[:] = [old, new]
    assert shop.replay_webhook(endpoint.endpoint_id) == 5
    asyncio.run(Notifier(shop, FAST).step())  # (a running one reads secrets every second)
    assert receiver.rejected >= 1  # signed with the newest secret only
    assert len(receiver.arrivals) == 10


def test_two_deliverers_share_the_work_and_send_nothing_twice(
    backend_config: Config, shop: Client, receiver: Receiver
) -> None:
    receiver.delay = 0.002
    _, secret = shop.add_webhook(receiver.url)
    receiver.secrets.append(secret)
    process(shop, 300)
    expected = every_event(shop)  # read before: the deliverers' threads use the connections
    with Client(config=backend_config) as other_client:
        first, second = Notifier(shop, FAST), Notifier(other_client, FAST)

        async def both() -> None:
            stop = asyncio.Event()
            runs = [asyncio.create_task(n.run(stop)) for n in (first, second)]
            while len(receiver.unique()) < len(expected):
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*runs)

        asyncio.run(both())
    assert_all_once_in_order(receiver, expected)
    assert len(receiver.arrivals) == len(receiver.unique())  # no event sent by both
    assert first.stats.delivered > 0
    assert second.stats.delivered > 0
    assert [first.scanning, second.scanning].count(True) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _hanging:
    """A listener on ``port`` that accepts and never answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


class _answering:
    """A receiver that answers every request 200 with ``body``; yields its URL."""

    def __init__(self, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the deliverer stops reading early
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
