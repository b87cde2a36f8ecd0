"""Connection helpers: clear errors from closed ports and from small fake servers (no services).

The fakes speak just the requests the helpers send; the real Kafka and Redis
checks are in the integration suite's backend tests.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from realorders.config import Config
from realorders.engine.backends.distributed.connect import (
    kafka_kwargs,
    open_redis,
    probe_kafka,
    redis_location,
)
from realorders.errors import ServiceUnavailableError, UsageError

SECRET = "s3cr3t-pa55"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused at once, and no one can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class FakeServer:
    """A TCP server on 127.0.0.1 running ``serve(conn)`` for each connection, in a thread."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.serve = serve
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                self.serve(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self.sock.close()
        self.thread.join(5)


#: The ``serve`` fixture: start a FakeServer running this connection handler.
Serve = Callable[[Callable[[socket.socket], None]], FakeServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[FakeServer] = []

    def start(handler: Callable[[socket.socket], None]) -> FakeServer:
        servers.append(FakeServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _recv(conn: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = conn.recv(size - len(buf))
        if not chunk:
            raise ConnectionError
        buf += chunk
    return buf


def _kstr(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


def fake_broker(
    password: str = SECRET,
    mechanisms: tuple[str, ...] = ("PLAIN",),
    brokers: int = 3,
    sasl_listener: bool = True,
) -> Callable[[socket.socket], None]:
    """SaslHandshake, SaslAuthenticate (PLAIN) and the broker count of Metadata."""

    def serve(conn: socket.socket) -> None:
        while True:
            try:
                (size,) = struct.unpack(">i", _recv(conn, 4))
            except ConnectionError:
                return
            data = _recv(conn, size)
            api, _version, correlation, client_len = struct.unpack(">hhih", data[:10])
            body = data[10 + client_len :]
            offered = b"".join(_kstr(m) for m in mechanisms)
            if api == 17:
                mechanism = body[2:].decode()
                error = 0 if mechanism in mechanisms else 33
                error = error if sasl_listener else 34  # ILLEGAL_SASL_STATE
                resp = struct.pack(">hi", error, len(mechanisms)) + offered
            elif api == 36:
                _, _user, given = body[4:].split(b"\0")
                if given.decode() == password:
                    resp = struct.pack(">hhi", 0, -1, 0)
                else:
                    msg = b"Authentication failed: Invalid username or password"
                    resp = struct.pack(">hh", 58, len(msg)) + msg + struct.pack(">i", 0)
            else:
                assert api == 3
                resp = struct.pack(">i", brokers)
            conn.sendall(struct.pack(">ii", len(resp) + 4, correlation) + resp)

    return serve


def fake_redis(password: str | None) -> Callable[[socket.socket], None]:
    """AUTH (WRONGPASS / NOAUTH as Redis 7 answers), PING, and +OK to anything else."""

    def serve(conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        authed = password is None
        while line := stream.readline():
            args = []
            for _ in range(int(line[1:])):
                size = int(stream.readline()[1:])
                args.append(stream.read(size + 2)[:-2])
            if args[0].upper() == b"AUTH":
                authed = args[-1].decode() == password
                reply = b"+OK" if authed else b"-WRONGPASS invalid username-password pair"
            elif not authed:
                reply = b"-NOAUTH Authentication required."
            else:
                reply = b"+PONG" if args[0].upper() == b"PING" else b"+OK"
            conn.sendall(reply + b"\r\n")
        stream.close()

    return serve


# -- Kafka ---------------------------------------------------------------------------


def test_probe_names_every_unreachable_address(closed_port: int) -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        probe_kafka(Config(kafka_bootstrap=f"127.0.0.1:{closed_port}"), timeout=2)
    assert str(caught.value) == (
        f"cannot reach Kafka at 127.0.0.1:{closed_port} "
        f"(tried 127.0.0.1:{closed_port}: connection refused)"
    )
    assert caught.value.exit_code == 1
    both = f"127.0.0.1:{closed_port},localhost:{closed_port}"
    with pytest.raises(ServiceUnavailableError) as caught:
        probe_kafka(Config(kafka_bootstrap=both), timeout=2)
    assert str(caught.value) == (
        f"cannot reach Kafka at {both} (tried 127.0.0.1:{closed_port}: connection refused; "
        f"localhost:{closed_port}: connection refused)"
    )


def test_probe_counts_brokers_and_skips_a_dead_address(serve: Serve, closed_port: int) -> None:
    broker = serve(fake_broker(brokers=3))
    cfg = Config(kafka_bootstrap=f"127.0.0.1:{closed_port},127.0.0.1:{broker.port}")
    assert probe_kafka(cfg, timeout=2) == 3


def sasl(port: int, password: str | None = SECRET, mechanism: str = "PLAIN") -> Config:
    return Config(
        kafka_bootstrap=f"127.0.0.1:{port}",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism=mechanism,  # type: ignore[arg-type]
        kafka_username="alice",
        kafka_password=password,
    )


def test_probe_logs_in_with_sasl_plain(serve: Serve) -> None:
    broker = serve(fake_broker())
    assert probe_kafka(sasl(broker.port), timeout=2) == 3


def test_probe_reports_a_refused_password_without_the_password(serve: Serve) -> None:
    broker = serve(fake_broker(password="another"))
    with pytest.raises(ServiceUnavailableError) as caught:
        probe_kafka(sasl(broker.port), timeout=2)
    assert str(caught.value) == (
        f"Kafka at 127.0.0.1:{broker.port} refused the credentials of user alice (SASL PLAIN): "
        "Authentication failed: Invalid username or password"
    )
    assert SECRET not in str(caught.value)


def test_probe_reports_a_mechanism_the_broker_does_not_offer(serve: Serve) -> None:
    broker = serve(fake_broker(mechanisms=("PLAIN", "SCRAM-SHA-512")))
    with pytest.raises(ServiceUnavailableError) as caught:
        probe_kafka(sasl(broker.port, mechanism="SCRAM-SHA-256"), timeout=2)
    assert str(caught.value) == (
        f"Kafka at 127.0.0.1:{broker.port} does not offer SASL SCRAM-SHA-256 "
        "(it offers PLAIN, SCRAM-SHA-512); check kafka_sasl_mechanism"
    )
    assert probe_kafka(sasl(broker.port, mechanism="SCRAM-SHA-512"), timeout=2) == 0


def test_probe_explains_sasl_against_a_plaintext_listener(serve: Serve) -> None:
    broker = serve(fake_broker(sasl_listener=False))
    with pytest.raises(ServiceUnavailableError) as caught:
        probe_kafka(sasl(broker.port), timeout=2)
    assert str(caught.value) == (
        f"Kafka at 127.0.0.1:{broker.port} does not expect SASL on this port; "
        "check kafka_security_protocol (SASL_PLAINTEXT)"
    )


def test_probe_explains_a_listener_that_hangs_up(serve: Serve) -> None:
    listener = serve(lambda conn: None)  # closes every connection at once, as a SASL port does
    with pytest.raises(ServiceUnavailableError) as caught:
        probe_kafka(Config(kafka_bootstrap=f"127.0.0.1:{listener.port}"), timeout=2)
    assert str(caught.value).endswith(
        f"(tried 127.0.0.1:{listener.port}: closed the connection without an answer; "
        "does it expect TLS or SASL?)"
    )


def test_sasl_needs_a_user_and_a_password(serve: Serve) -> None:
    with pytest.raises(UsageError, match="SASL_PLAINTEXT needs kafka_username"):
        probe_kafka(sasl(9, password=None))
    with pytest.raises(UsageError, match="REALORDERS_KAFKA_PASSWORD"):
        kafka_kwargs(sasl(9, password=None))


def test_a_ca_file_that_is_not_pem(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    cfg = Config(kafka_security_protocol="SSL", kafka_ca_file=bad)
    with pytest.raises(
        UsageError, match=r"kafka_ca_file .*ca\.pem \(from argument\) is not a usable"
    ):
        probe_kafka(cfg)


def test_kafka_kwargs(tmp_path: Path) -> None:
    assert kafka_kwargs(Config(kafka_bootstrap="a:1, b:2")) == {
        "bootstrap_servers": ["a:1", "b:2"],
        "security_protocol": "PLAINTEXT",
        "client_id": "realorders",
    }
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = Config(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_username="alice",
        kafka_password=SECRET,
        kafka_ca_file=ca,
    )
    assert kafka_kwargs(cfg) == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "SASL_SSL",
        "client_id": "realorders",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "alice",
        "sasl_plain_password": SECRET,
        "ssl_cafile": str(ca),
    }


def tls_broker(authority: trustme.CA, *names: str) -> Callable[[socket.socket], None]:
    """:func:`fake_broker` behind TLS, with a certificate for ``names`` from ``authority``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(*names).configure_cert(context)
    plain = fake_broker(brokers=1)

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(ssl.SSLError), context.wrap_socket(conn, server_side=True) as tls:
            plain(tls)

    return serve


def test_probe_names_the_certificate_problem_in_one_line(serve: Serve, tmp_path: Path) -> None:
    authority = trustme.CA()
    ca = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca))
    port = serve(tls_broker(authority, "localhost")).port
    trusting = Config(kafka_bootstrap=f"localhost:{port}", kafka_security_protocol="SSL")
    assert probe_kafka(replace(trusting, kafka_ca_file=ca)) == 1

    with pytest.raises(ServiceUnavailableError) as caught:
        probe_kafka(trusting)  # the system's CAs do not know a throwaway one
    assert str(caught.value) == (
        f"Kafka at localhost:{port}: TLS certificate not trusted (unable to get local issuer "
        "certificate); kafka_ca_file is unset, so only the system's CAs are trusted: set it "
        "to the CA (PEM) that signed the broker's certificate"
    )
    by_ip = replace(trusting, kafka_bootstrap=f"127.0.0.1:{port}", kafka_ca_file=ca)
    with pytest.raises(
        ServiceUnavailableError,
        match=r"^Kafka at 127\.0\.0\.1:\d+: its TLS "
        r"certificate is not for 127\.0\.0\.1 \(IP address mismatch",
    ):
        probe_kafka(by_ip)


# -- Redis ---------------------------------------------------------------------------


def test_redis_unreachable(closed_port: int) -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        open_redis(Config(redis_url=f"redis://127.0.0.1:{closed_port}/3"))
    assert str(caught.value) == (
        f"cannot reach Redis at 127.0.0.1:{closed_port}/3: connection refused"
    )


def test_redis_password_right_wrong_and_missing(serve: Serve) -> None:
    server = serve(fake_redis(password=SECRET))
    url = f"redis://127.0.0.1:{server.port}/0"
    client = open_redis(Config(redis_url=url, redis_password=SECRET))
    try:
        assert client.ping() is True
    finally:
        client.close()
    wrong = Config(
        redis_url=f"redis://:{SECRET}@127.0.0.1:{server.port}/0",  # overridden by redis_password
        redis_password="not-it",
        sources={"redis_password": "env REALORDERS_REDIS_PASSWORD"},
    )
    with pytest.raises(ServiceUnavailableError) as caught:
        open_redis(wrong)
    assert str(caught.value) == (
        f"Redis at 127.0.0.1:{server.port}/0 refused the password (redis_password from env "
        "REALORDERS_REDIS_PASSWORD): invalid username-password pair"
    )
    with pytest.raises(ServiceUnavailableError) as caught:
        open_redis(Config(redis_url=f"redis://bob:not-it@127.0.0.1:{server.port}/0"))
    assert "refused the password of user bob (the password in redis_url from argument)" in str(
        caught.value
    )
    assert "not-it" not in str(caught.value)
    with pytest.raises(ServiceUnavailableError) as caught:
        open_redis(Config(redis_url=url))
    assert str(caught.value) == (
        f"Redis at 127.0.0.1:{server.port}/0 requires a password (Authentication required): "
        "set REALORDERS_REDIS_PASSWORD or redis_password in the config file"
    )


def test_redis_location() -> None:
    assert redis_location("redis://:pw@cache:6380/2") == "cache:6380/2"
    assert redis_location("rediss://cache?db=4") == "cache:6379/4"
    assert redis_location("redis://[::1]:7000") == "[::1]:7000/0"
    assert redis_location("unix:///run/redis.sock?db=1") == "unix:/run/redis.sock"
