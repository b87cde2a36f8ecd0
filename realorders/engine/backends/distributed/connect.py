"""Kafka and Redis clients from a :class:`~realorders.config.Config`, with errors users can act on.

Why this exists: kafka-python reports a rejected SASL password only as
"Unable to bootstrap" after a long timeout, and redis-py's default retry turns
a wrong password into seconds of waiting. So realorders asks first, in one
short round trip, and names the address, the user and the setting to fix
(never the secret). Both failures raise
:class:`~realorders.errors.ServiceUnavailableError`.
"""

from __future__ import annotations

import socket
import ssl
import struct
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from realorders.config import Config, host_port, parse_bootstrap, redis_location
from realorders.errors import ServiceUnavailableError, UsageError

if TYPE_CHECKING:
    import redis

__all__ = ["CLIENT_ID", "kafka_kwargs", "open_redis", "probe_kafka", "redis_location"]

CLIENT_ID = "realorders"
REDIS_CONNECT_TIMEOUT = 3.0
_UNSUPPORTED_SASL_MECHANISM = 33
_ILLEGAL_SASL_STATE = 34  # the answer of a listener that does not take SASL
_SASL_AUTHENTICATION_FAILED = 58


# -- Kafka ---------------------------------------------------------------------


def kafka_kwargs(cfg: Config) -> dict[str, Any]:
    """Connection keywords for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "security_protocol": cfg.kafka_security_protocol,
        "client_id": CLIENT_ID,
    }
    if cfg.kafka_security_protocol.startswith("SASL_"):
        user, password = _credentials(cfg)
        kwargs["sasl_mechanism"] = cfg.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = user  # kafka-python uses these for SCRAM too
        kwargs["sasl_plain_password"] = password
    if cfg.kafka_ca_file is not None:
        kwargs["ssl_cafile"] = str(cfg.kafka_ca_file)
    return kwargs


def probe_kafka(cfg: Config, timeout: float = 5.0) -> int:
    """Check that a bootstrap broker answers and takes the credentials; return the broker count.

    Tries each bootstrap address in turn (TCP, then TLS for SSL / SASL_SSL with
    ``kafka_ca_file``) and speaks just enough of the Kafka protocol: for SASL a
    SaslHandshake (which also tells whether the broker offers the mechanism),
    for PLAIN a SaslAuthenticate, then a Metadata request for the number of
    brokers. SCRAM's challenge-response is not reimplemented here: after the
    handshake the probe returns 0 (count unknown) and kafka-python authenticates.
    """
    protocol = cfg.kafka_security_protocol
    sasl = protocol.startswith("SASL_")
    user, password = _credentials(cfg) if sasl else ("", "")
    mechanism = cfg.kafka_sasl_mechanism
    context = _tls_context(cfg) if protocol in ("SSL", "SASL_SSL") else None
    tried: list[str] = []
    untrusted: str | None = None  # a certificate failure is said alone: it is the thing to fix
    for host, port in parse_bootstrap(cfg.kafka_bootstrap):
        address = host_port(host, port)
        try:
            with _KafkaWire(host, port, timeout, context) as wire:
                if sasl:
                    code, enabled = wire.sasl_handshake(mechanism)
                    if code == _ILLEGAL_SASL_STATE:
                        raise ServiceUnavailableError(
                            f"Kafka at {address} does not expect SASL on this port; "
                            f"check kafka_security_protocol ({protocol})"
                        )
                    if code == _UNSUPPORTED_SASL_MECHANISM:
                        raise ServiceUnavailableError(
                            f"Kafka at {address} does not offer SASL {mechanism} (it offers "
                            f"{', '.join(enabled) or 'none'}); check kafka_sasl_mechanism"
                        )
                    if code:
                        raise _AnswerError(f"SaslHandshake failed with error code {code}")
                    if mechanism != "PLAIN":
                        return 0
                    code, message = wire.sasl_plain(user, password)
                    if code == _SASL_AUTHENTICATION_FAILED:
                        raise ServiceUnavailableError(
                            f"Kafka at {address} refused the credentials of user {user} "
                            f"(SASL {mechanism}): {message or 'authentication failed'}"
                        )
                    if code:
                        raise ServiceUnavailableError(
                            f"Kafka at {address} answered SASL {mechanism} with error code "
                            f"{code}: {message}"
                        )
                return wire.broker_count()
        except ssl.SSLCertVerificationError as exc:
            untrusted = untrusted or _untrusted_message(cfg, address, host, exc)
        except (OSError, struct.error, _AnswerError) as exc:
            tried.append(f"{address}: {_kafka_reason(exc, timeout, protocol)}")
    if untrusted is not None:
        raise ServiceUnavailableError(untrusted)
    raise ServiceUnavailableError(
        f"cannot reach Kafka at {cfg.kafka_bootstrap} (tried {'; '.join(tried)})"
    )


def _tls_context(cfg: Config) -> ssl.SSLContext:
    cafile = None if cfg.kafka_ca_file is None else str(cfg.kafka_ca_file)
    try:
        return ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        raise UsageError(
            f"kafka_ca_file {cafile} (from {cfg.source_of('kafka_ca_file')}) is not a usable "
            f"PEM CA bundle: {exc.reason or exc}"
        ) from None


_HOSTNAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def _untrusted_message(
    cfg: Config, address: str, host: str, exc: ssl.SSLCertVerificationError
) -> str:
    """One line for a broker certificate TLS verification refused, naming what to change."""
    reason = str(exc.verify_message or exc.reason or exc).rstrip(".")
    if exc.verify_code in _HOSTNAME_MISMATCH:
        return (
            f"Kafka at {address}: its TLS certificate is not for {host} ({reason}); "
            "use a bootstrap address that the certificate names"
        )
    if cfg.kafka_ca_file is None:
        trusted = "kafka_ca_file is unset, so only the system's CAs are trusted"
    else:
        trusted = f"kafka_ca_file is {cfg.kafka_ca_file} (from {cfg.source_of('kafka_ca_file')})"
    return (
        f"Kafka at {address}: TLS certificate not trusted ({reason}); {trusted}: "
        "set it to the CA (PEM) that signed the broker's certificate"
    )


def _credentials(cfg: Config) -> tuple[str, str]:
    if cfg.kafka_username is None or cfg.kafka_password is None:
        raise UsageError(
            f"kafka_security_protocol {cfg.kafka_security_protocol} needs kafka_username "
            "(--kafka-username or REALORDERS_KAFKA_USERNAME) and kafka_password "
            "(REALORDERS_KAFKA_PASSWORD or the config file)"
        )
    return cfg.kafka_username, cfg.kafka_password


def _kafka_reason(exc: BaseException, timeout: float, protocol: str) -> str:
    if isinstance(exc, _ClosedError | ConnectionResetError | BrokenPipeError):
        hint = "TLS or SASL" if protocol == "PLAINTEXT" else "another security protocol"
        return f"closed the connection without an answer; does it expect {hint}?"
    if isinstance(exc, _AnswerError):
        return str(exc)
    if isinstance(exc, struct.error):
        return "the answer is not Kafka's protocol"
    return _os_reason(exc, timeout)


def _kafka_str(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


class _AnswerError(Exception):
    """A broker's answer the probe cannot go on from (an unexpected error code)."""


class _ClosedError(ConnectionError):
    """The broker closed the connection mid-exchange (typical of a security mismatch)."""


class _KafkaWire:
    """Just enough of the Kafka protocol (non-flexible request versions) for a probe."""

    def __init__(
        self, host: str, port: int, timeout: float, context: ssl.SSLContext | None
    ) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = sock if context is None else context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.correlation = 0

    def __enter__(self) -> _KafkaWire:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.sock.close()

    def _recv(self, size: int) -> bytes:
        buf = b""
        while len(buf) < size:
            chunk = self.sock.recv(size - len(buf))
            if not chunk:
                raise _ClosedError("the broker closed the connection")
            buf += chunk
        return buf

    def request(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation += 1
        header = struct.pack(">hhi", api_key, version, self.correlation) + _kafka_str(CLIENT_ID)
        payload = header + body
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self._recv(4))
        data = self._recv(size)
        if struct.unpack(">i", data[:4])[0] != self.correlation:
            raise struct.error("correlation id mismatch")
        return data[4:]

    def sasl_handshake(self, mechanism: str) -> tuple[int, list[str]]:
        """SaslHandshake v1 (api 17): the error code and the mechanisms the broker offers."""
        resp = self.request(17, 1, _kafka_str(mechanism))
        (error, count) = struct.unpack(">hi", resp[:6])
        offered, pos = [], 6
        for _ in range(max(count, 0)):
            (size,) = struct.unpack(">h", resp[pos : pos + 2])
            offered.append(resp[pos + 2 : pos + 2 + size].decode(errors="replace"))
            pos += 2 + size
        return int(error), offered

    def sasl_plain(self, user: str, password: str) -> tuple[int, str]:
        """SaslAuthenticate v0 (api 36) with PLAIN's token: (error code, broker's message)."""
        token = b"\0" + user.encode() + b"\0" + password.encode()
        resp = self.request(36, 0, struct.pack(">i", len(token)) + token)
        (error, size) = struct.unpack(">hh", resp[:4])
        message = resp[4 : 4 + size].decode(errors="replace") if size > 0 else ""
        return int(error), message

    def broker_count(self) -> int:
        """Metadata v1 (api 3) for no topics: the brokers the cluster knows."""
        resp = self.request(3, 1, struct.pack(">i", 0))
        return int(struct.unpack(">i", resp[:4])[0])


# -- Redis ---------------------------------------------------------------------


def open_redis(cfg: Config) -> redis.Redis:
    """A redis-py client for ``cfg.redis_url``, PINGed once so that failures are clear.

    ``redis_password`` wins over a password in the URL. No retries (redis-py's
    default would retry a wrong password for seconds), RESP2, bytes replies.
    """
    import redis

    url = cfg.redis_url
    kwargs: dict[str, Any] = {
        "retry": None,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "protocol": 2,
        "decode_responses": False,
    }
    if cfg.redis_password is not None:
        url = _without_password(url)
        kwargs["password"] = cfg.redis_password
    if urlsplit(url).scheme == "rediss" and cfg.redis_ca_file is not None:
        kwargs["ssl_ca_certs"] = str(cfg.redis_ca_file)
    where = redis_location(cfg.redis_url)
    client = redis.Redis.from_url(url, **kwargs)
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        client.close()
        raise ServiceUnavailableError(_redis_auth_message(cfg, where, exc)) from None
    except (redis.RedisError, OSError) as exc:
        client.close()
        raise ServiceUnavailableError(
            f"cannot reach Redis at {where}: {_redis_reason(exc)}"
        ) from None
    return client


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=user + host))


def _redis_auth_message(cfg: Config, where: str, exc: Exception) -> str:
    reason = str(exc).rstrip(".")
    sent = cfg.redis_password is not None or urlsplit(cfg.redis_url).password is not None
    if not sent:
        return (
            f"Redis at {where} requires a password ({reason}): set REALORDERS_REDIS_PASSWORD "
            "or redis_password in the config file"
        )
    if cfg.redis_password is not None:
        origin = f"redis_password from {cfg.source_of('redis_password')}"
    else:
        origin = f"the password in redis_url from {cfg.source_of('redis_url')}"
    user = urlsplit(cfg.redis_url).username
    of_user = f" of user {user}" if user else ""
    return f"Redis at {where} refused the password{of_user} ({origin}): {reason}"


def _redis_reason(exc: BaseException) -> str:
    import redis

    if isinstance(exc, redis.TimeoutError):
        return "no answer in time (a TLS port given as redis://, or redis:// as rediss://?)"
    if isinstance(exc, redis.exceptions.InvalidResponse):
        return f"the answer is not Redis's protocol ({exc})"
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        return _os_reason(cause, REDIS_CONNECT_TIMEOUT)
    return str(exc).rstrip(".")


def _os_reason(exc: BaseException, timeout: float) -> str:
    """A socket error as a few words (the same wording for Kafka and Redis)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message} (see the *_ca_file setting)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}; is it a TLS port?"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc)
