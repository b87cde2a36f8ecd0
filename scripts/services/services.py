#!/usr/bin/env python3
"""Real Apache Kafka and Redis servers on 127.0.0.1 for tests and benchmarks (stdlib only).

Kafka: the broker is assembled from Maven Central (org.apache.kafka:kafka_2.13, pinned in
KAFKA_VERSION and in pom.xml beside this file) by ``mvn dependency:copy-dependencies`` into
``.cache/kafka/<version>/lib``, with Maven's local repository in ``.cache/m2``: the first run
downloads, later runs reuse the cache and skip Maven. It runs as a single KRaft node
(combined broker + controller) with Java 17, on free ports, with its data in a directory of
its own; optionally with SASL/PLAIN (one user and password) and/or TLS on its client
listener: PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL.

TLS (``--tls``): a throwaway CA and a server certificate for 127.0.0.1 and localhost are
made with the ``openssl`` command (Debian package openssl) in ``D/tls/`` on first start and
reused on restarts; clients trust ``D/tls/ca.pem`` (``ca_file`` in the JSON). openssl rather
than the ``cryptography`` package because this script is stdlib-only and runs under
whatever ``python3`` is on the machine (``.ci/run`` uses the system one, which may lack
it), and openssl is a Debian package ``.ci/run`` installs when missing. The broker takes
the PEM key and certificate as values in server.properties (``ssl.keystore.type=PEM``),
so no Java keystore is involved.

Redis: Debian's ``redis-server`` (installed with apt-get when missing), on a free port,
persistence off.

CLI::

    python scripts/services/services.py kafka start [--dir D] [--sasl-user U --sasl-password P]
                                                    [--tls]
    python scripts/services/services.py kafka stop --dir D [--remove]
    python scripts/services/services.py kafka assemble
    python scripts/services/services.py redis start [--dir D] [--password P]
    python scripts/services/services.py redis stop --dir D [--remove]

``start`` prints one JSON object (and writes it to ``D/kafka.json`` or ``D/redis.json``);
``stop`` reads that file, sends SIGTERM to the recorded PID, and SIGKILL after a deadline.

API: start_kafka / stop_kafka / start_redis / stop_redis, returning small dataclasses.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

KAFKA_VERSION = "3.9.2"  # keep in step with <kafka.version> in pom.xml
KAFKA_MAIN = "kafka.Kafka"
KAFKA_STORAGE_TOOL = "kafka.tools.StorageTool"
KAFKA_HEAP = ("-Xms128m", "-Xmx512m")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
POM = HERE / "pom.xml"


class ServiceError(RuntimeError):
    """A service could not be assembled, started or stopped; the message says why."""


class SaslRejectedError(ServiceError):
    """The broker answered SaslAuthenticate with an error (e.g. a wrong password)."""


# --------------------------------------------------------------------------- helpers


def cache_dir() -> Path:
    """Where Maven's repository and the assembled broker live (REALORDERS_CACHE_DIR or .cache)."""
    env = os.environ.get("REALORDERS_CACHE_DIR")
    return Path(env).resolve() if env else REPO / ".cache"


def kafka_lib_dir(version: str = KAFKA_VERSION) -> Path:
    return cache_dir() / "kafka" / version / "lib"


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together while chosen)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _proc_state(pid: int) -> str | None:
    """The process's state letter from /proc (None when it does not exist)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def _proc_start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


# Children started by this process: reaped on stop so they leave no zombie.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int, wait: float = 0.0) -> None:
    """Collect our child's exit status (``wait`` s at most), so it leaves no zombie."""
    child = _CHILDREN.get(pid)
    if child is None:
        return
    if wait:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=wait)
    else:
        child.poll()
    if child.returncode is not None:
        del _CHILDREN[pid]


def _gone(pid: int) -> bool:
    """Not running any more; a child of ours is also reaped (it may be a zombie just now)."""
    _reap(pid)
    if pid_alive(pid):
        return False
    _reap(pid, wait=5.0)
    return True


def stop_pid(pid: int, start_ticks: int | None = None, timeout: float = STOP_TIMEOUT_S) -> str:
    """SIGTERM ``pid``, wait up to ``timeout`` s, then SIGKILL. Returns what happened.

    ``start_ticks`` (from /proc/PID/stat, recorded at start) guards against a reused PID.
    """
    if _gone(pid):
        return "not running"
    if start_ticks is not None and _proc_start_ticks(pid) != start_ticks:
        return "not running (PID reused by another process)"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return "terminated"
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _gone(pid):
            return "killed"
        time.sleep(0.1)
    raise ServiceError(f"process {pid} survived SIGKILL")


def _spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        child = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no terminal signal reaches it; stopped by PID only
        )
    _CHILDREN[child.pid] = child
    return child


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _new_dir(given: str | Path | None, prefix: str) -> Path:
    if given is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    path = Path(given).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


# --------------------------------------------------------------------------- Kafka wire


def _kafka_str(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _tls_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """A client context that trusts ``ca_file`` (the system CAs when None) and checks names."""
    return ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))


class _KafkaWire:
    """Just enough of the Kafka protocol (non-flexible versions) to tell a broker is ready."""

    def __init__(
        self, host: str, port: int, timeout: float, ca_file: str | Path | None = None
    ) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        if ca_file is not None:  # a TLS listener: verify its certificate against ca_file
            try:
                sock = _tls_context(ca_file).wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.correlation = 0

    def close(self) -> None:
        self.sock.close()

    def _recv(self, size: int) -> bytes:
        buf = b""
        while len(buf) < size:
            chunk = self.sock.recv(size - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def request(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation += 1
        header = struct.pack(">hhi", api_key, version, self.correlation)
        header += _kafka_str("realorders-services")
        payload = header + body
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self._recv(4))
        data = self._recv(size)
        (correlation,) = struct.unpack(">i", data[:4])
        if correlation != self.correlation:
            raise ConnectionError("correlation id mismatch")
        return data[4:]

    def sasl_plain(self, user: str, password: str) -> None:
        # SaslHandshake v1 (api 17), then SaslAuthenticate v0 (api 36) with PLAIN's bytes.
        resp = self.request(17, 1, _kafka_str("PLAIN"))
        (error,) = struct.unpack(">h", resp[:2])
        if error:
            raise ServiceError(f"SaslHandshake error code {error}")
        token = b"\0" + user.encode() + b"\0" + password.encode()
        resp = self.request(36, 0, struct.pack(">i", len(token)) + token)
        (error, size) = struct.unpack(">hh", resp[:4])
        if error:
            message = resp[4 : 4 + size].decode(errors="replace") if size >= 0 else ""
            raise SaslRejectedError(f"SaslAuthenticate error {error}: {message}")

    def broker_count(self) -> int:
        # Metadata v1 (api 3) with an empty topic list: the brokers the cluster knows.
        resp = self.request(3, 1, struct.pack(">i", 0))
        (count,) = struct.unpack(">i", resp[:4])
        return int(count)


def kafka_ready(
    host: str,
    port: int,
    sasl: tuple[str, str] | None = None,
    timeout: float = 2.0,
    ca_file: str | Path | None = None,
) -> bool:
    """True when the broker answers a Metadata request listing at least one broker.

    ``ca_file``: the listener is TLS, its certificate signed by that CA.
    """
    try:
        wire = _KafkaWire(host, port, timeout, ca_file)
    except OSError:  # ssl.SSLError included: a TLS listener not yet up, or untrusted
        return False
    try:
        if sasl is not None:
            wire.sasl_plain(*sasl)
        return wire.broker_count() > 0
    except (OSError, ConnectionError, struct.error):
        return False
    finally:
        wire.close()


def kafka_sasl_probe(
    bootstrap: str,
    user: str,
    password: str,
    timeout: float = 5.0,
    ca_file: str | Path | None = None,
) -> str | None:
    """None when SASL/PLAIN login succeeds; else the broker's own error message.

    kafka-python 3.0.12 reports a rejected password only as a bootstrap timeout
    (KafkaTimeoutError "Unable to bootstrap from ..."); this asks the broker directly.
    ``ca_file``: a SASL_SSL listener (TLS first, verified against that CA); a certificate
    that CA did not sign raises ``ssl.SSLCertVerificationError``.
    """
    host, port = bootstrap.rsplit(":", 1)
    wire = _KafkaWire(host, int(port), timeout, ca_file)
    try:
        wire.sasl_plain(user, password)
    except SaslRejectedError as exc:
        return str(exc)
    finally:
        wire.close()
    return None


# --------------------------------------------------------------------------- Kafka


@dataclasses.dataclass(frozen=True)
class KafkaServer:
    bootstrap: str
    pid: int
    dir: str
    version: str
    controller_port: int
    security_protocol: str  # "PLAINTEXT", "SASL_PLAINTEXT", "SSL" or "SASL_SSL"
    sasl_mechanism: str | None
    sasl_user: str | None
    sasl_password: str | None
    start_seconds: float
    start_ticks: int | None = None
    ca_file: str | None = None  # TLS listeners: the CA (PEM) clients must trust

    @property
    def host(self) -> str:
        return self.bootstrap.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients (bootstrap and, if set, SASL and TLS)."""
        config: dict[str, Any] = {"bootstrap_servers": self.bootstrap}
        if self.security_protocol != "PLAINTEXT":
            config["security_protocol"] = self.security_protocol
        if self.security_protocol.startswith("SASL_"):
            config.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_user,
                sasl_plain_password=self.sasl_password,
            )
        if self.ca_file is not None:
            config["ssl_cafile"] = self.ca_file
        return config

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise ServiceError("java not found: Kafka needs a Java 17 runtime (openjdk-17-jre)")
    return found


def java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    # openjdk version "17.0.15" 2025-04-15  /  java version "1.8.0_392"
    for line in out.splitlines():
        if "version" in line and '"' in line:
            ver = line.split('"')[1]
            parts = ver.split(".")
            return int(parts[1]) if parts[0] == "1" else int(parts[0].split("-")[0])
    raise ServiceError(f"cannot read the Java version from: {out.strip()!r}")


def assemble_kafka(version: str = KAFKA_VERSION, quiet: bool = True) -> Path:
    """The lib directory of a runnable broker, fetched with Maven on first use."""
    lib = kafka_lib_dir(version)
    marker = lib / ".complete"
    if marker.exists():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with (lib.parent / ".assemble.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers assemble once
        if marker.exists():
            return lib
        return _run_maven(lib, version, quiet)


def _run_maven(lib: Path, version: str, quiet: bool) -> Path:
    marker = lib / ".complete"
    mvn = shutil.which("mvn")
    if not mvn:
        raise ServiceError("mvn not found: install Maven (Debian package maven) to fetch Kafka")
    lib.mkdir(parents=True, exist_ok=True)
    argv = [
        mvn,
        *(["-q"] if quiet else []),
        "-B",
        "-f",
        str(POM),
        f"-Dmaven.repo.local={cache_dir() / 'm2'}",
        f"-Dkafka.version={version}",
        f"-Dkafka.lib.dir={lib}",
        "dependency:copy-dependencies",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServiceError(
            f"mvn failed ({done.returncode}) assembling Kafka {version}:\n"
            f"{(done.stdout + done.stderr)[-4000:]}"
        )
    if not (lib / f"kafka_2.13-{version}.jar").exists():
        raise ServiceError(f"mvn ran but {lib} has no kafka_2.13-{version}.jar")
    marker.write_text(version + "\n")
    return lib


def _cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of 16 random bytes, no padding.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
"""


# --------------------------------------------------------------------------- TLS files

# Extensions of a CA and a server certificate that strict verifiers accept too (Python
# 3.13's VERIFY_X509_STRICT wants keyUsage and the key identifiers); our own config file,
# so that no system openssl.cnf default can add or clash with an extension.
OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = realorders
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""
TLS_DAYS = "3650"


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """A broker's TLS material, all PEM: what clients trust, and what the broker serves."""

    ca_file: str  # the CA certificate: clients' ssl_cafile / realorders' kafka_ca_file
    certificate_chain: str  # the server's certificate (the CA's is not sent)
    key: str  # the server's private key (PKCS#8, unencrypted; mode 0600)


def openssl_executable() -> str:
    found = shutil.which("openssl")
    if not found:
        raise ServiceError(
            "openssl not found: the TLS listener's certificates are made with it "
            "(Debian package openssl)"
        )
    return found


def _openssl(directory: Path, *args: str) -> None:
    argv = [openssl_executable(), *args]
    done = subprocess.run(argv, cwd=directory, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServiceError(
            f"openssl {args[0]} failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}"
        )


def _config_file(directory: Path) -> Path:
    path = directory / "openssl.cnf"
    path.write_text(OPENSSL_CONFIG)
    return path


def make_ca(directory: str | Path, name: str = "ca", subject: str = "realorders test CA") -> Path:
    """A new self-signed CA (EC P-256, ten years) as ``NAME.pem`` + ``NAME.key``; the cert's path.

    Also what a test needs to play an untrusted certificate: a second CA that signed nothing.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    cnf = _config_file(root)
    _openssl(
        root,
        "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", TLS_DAYS,
        "-sha256", "-config", str(cnf), "-extensions", "ca_ext", "-subj", f"/CN={subject}",
    )  # fmt: skip
    (root / f"{name}.key").chmod(0o600)
    return root / f"{name}.pem"


def make_server_tls(directory: str | Path) -> TlsFiles:
    """The broker's CA and server certificate (SAN IP 127.0.0.1, DNS localhost) in ``directory``.

    Made once: a restart in the same directory reuses them, so clients holding the CA
    file keep trusting the broker.
    """
    root = Path(directory)
    files = TlsFiles(
        ca_file=str(root / "ca.pem"),
        certificate_chain=str(root / "server-chain.pem"),
        key=str(root / "server.key"),
    )
    if all(Path(path).exists() for path in dataclasses.astuple(files)):
        return files
    ca = make_ca(root, "ca", subject=f"realorders throwaway test CA {uuid.uuid4().hex[:8]}")
    cnf = root / "openssl.cnf"
    _openssl(
        root,
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-config", str(cnf),
        "-subj", "/CN=localhost",
    )  # fmt: skip
    (root / "server.key").chmod(0o600)
    _openssl(
        root,
        "x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", "ca.key",
        "-set_serial", str(int(uuid.uuid4().hex[:15], 16)), "-days", TLS_DAYS, "-sha256",
        "-out", "server.crt", "-extfile", str(cnf), "-extensions", "server_ext",
    )  # fmt: skip
    # The chain is the server's certificate alone: clients must hold the CA themselves, so
    # a client without it fails as "unable to get local issuer certificate".
    shutil.copyfile(root / "server.crt", files.certificate_chain)
    (root / "server.csr").unlink(missing_ok=True)
    return files


def _security_protocol(sasl: bool, tls: bool) -> str:
    """Kafka's name for a listener: PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL."""
    return ("SASL_" if sasl else "") + ("SSL" if tls else "PLAINTEXT")


def _server_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    sasl: tuple[str, str] | None,
    admin_password: str,
    auto_create_topics: bool,
    extra: dict[str, str] | None,
    tls: TlsFiles | None = None,
) -> str:
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": str(auto_create_topics).lower(),
        "delete.topic.enable": "true",
        "log.retention.hours": "24",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    # One client listener, also the inter-broker one (so the broker's own connections, e.g.
    # transaction markers, take the same TLS and SASL path clients do); the KRaft controller
    # keeps a PLAINTEXT listener of its own on loopback, which clients are never told about.
    name = _security_protocol(sasl is not None, tls is not None)
    props.update(
        {
            "listeners": f"{name}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"{name}://127.0.0.1:{port}",
            "listener.security.protocol.map": f"{name}:{name},CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": name,
        }
    )
    if sasl is not None:
        user, password = sasl

        def q(text: str) -> str:
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

        jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f"username={q('admin')} password={q(admin_password)} "
            f"user_admin={q(admin_password)} user_{user}={q(password)};"
        )
        props.update(
            {
                "sasl.enabled.mechanisms": "PLAIN",
                "sasl.mechanism.inter.broker.protocol": "PLAIN",
                f"listener.name.{name.lower()}.plain.sasl.jaas.config": jaas,
            }
        )
    if tls is not None:
        # PEM read by the broker itself (Kafka 2.7+, KIP-651). The key and chain go in as
        # values, not a file: a file-based PEM keystore insists on an encrypted key, and
        # Java 17 cannot read openssl's default (PBES2) encryption of one.
        props.update(
            {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.key": Path(tls.key).read_text().strip(),
                "ssl.keystore.certificate.chain": Path(tls.certificate_chain).read_text().strip(),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": tls.ca_file,  # the broker's own connections
                "ssl.client.auth": "none",
                "ssl.endpoint.identification.algorithm": "https",
            }
        )
    props.update(extra or {})
    # java.util.Properties format: escape backslashes (the JAAS line keeps its quotes) and
    # line ends (PEM values span lines).
    return "".join(f"{k}={_properties_value(v)}\n" for k, v in props.items())


def _properties_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _format_storage(java: str, common: list[str], props_path: Path) -> None:
    """kafka-storage format: a new cluster id, then the log dir's meta.properties."""
    argv = [java, "-Xmx256m", *common, KAFKA_STORAGE_TOOL, "format"]
    argv += ["-t", _cluster_id(), "-c", str(props_path)]
    fmt = subprocess.run(argv, capture_output=True, text=True, check=False)
    if fmt.returncode != 0:
        raise ServiceError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")


def _sasl_pair(user: str | None, password: str | None) -> tuple[str, str] | None:
    if user is None and password is None:
        return None
    if user is None or password is None:
        raise ServiceError("give both sasl_user and sasl_password, or neither")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", user):
        raise ServiceError(f"sasl_user {user!r}: use letters, digits, '_', '.', '-'")
    return (user, password)


def start_kafka(
    directory: str | Path | None = None,
    *,
    sasl_user: str | None = None,
    sasl_password: str | None = None,
    tls: bool = False,
    auto_create_topics: bool = False,
    extra_properties: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
    version: str = KAFKA_VERSION,
) -> KafkaServer:
    """Assemble (if needed), format and start a single-node KRaft broker; wait until ready.

    ``tls``: the client listener speaks TLS (SSL, or SASL_SSL with a SASL user) with a
    certificate from a throwaway CA made in ``DIR/tls``; ``.ca_file`` is that CA.
    """
    sasl = _sasl_pair(sasl_user, sasl_password)
    if tls:
        openssl_executable()  # before Maven and Java: say what is missing first
    started = time.monotonic()
    lib = assemble_kafka(version)
    java = java_executable()
    major = java_major(java)
    if major < 11:
        raise ServiceError(f"Kafka {version} needs Java 11+ (17 preferred); found {major}")
    root = _new_dir(directory, "realorders-kafka-")
    old = root / "kafka.json"
    ports: list[int] | None = None
    if old.exists():
        prev = json.loads(old.read_text())
        if pid_alive(int(prev["pid"])) and _proc_start_ticks(int(prev["pid"])) == prev.get(
            "start_ticks"
        ):
            raise ServiceError(f"a broker from {root} still runs (pid {prev['pid']})")
        # A restart in the same directory keeps its ports when they are still free, so
        # clients holding the old bootstrap address reconnect to the same broker.
        previous = [int(prev["bootstrap"].rsplit(":", 1)[1]), int(prev["controller_port"])]
        if all(port_free(p) for p in previous):
            ports = previous
    data_dir = root / "data"
    logs_dir = root / "logs"
    logs_dir.mkdir(exist_ok=True)
    port, controller_port = ports or free_ports(2)
    admin_password = uuid.uuid4().hex
    tls_files = make_server_tls(root / "tls") if tls else None
    props_path = root / "server.properties"
    props_path.write_text(
        _server_properties(
            data_dir,
            port,
            controller_port,
            sasl,
            admin_password,
            auto_create_topics,
            extra_properties,
            tls_files,
        )
    )
    props_path.chmod(0o600)  # it holds the SASL passwords and, with TLS, the server's key
    log4j = root / "log4j.properties"
    log4j.write_text(LOG4J_PROPERTIES.format(log=logs_dir / "server.log"))
    common = [
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}",
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        f"{lib}/*",
    ]
    if not (data_dir / "meta.properties").exists():
        _format_storage(java, common, props_path)
    console = logs_dir / "kafka.out"
    jvm = [java, *KAFKA_HEAP, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", *common]
    child = _spawn([*jvm, KAFKA_MAIN, str(props_path)], console, root)
    deadline = time.monotonic() + timeout
    while True:
        if child.poll() is not None:
            _CHILDREN.pop(child.pid, None)
            raise ServiceError(
                f"Kafka exited with {child.returncode} while starting; "
                f"{console}:\n{_tail(console)}\n{logs_dir / 'server.log'}:\n"
                f"{_tail(logs_dir / 'server.log')}"
            )
        if kafka_ready(
            "127.0.0.1",
            port,
            sasl=("admin", admin_password) if sasl else None,
            ca_file=tls_files.ca_file if tls_files else None,
        ):
            break
        if time.monotonic() > deadline:
            stop_pid(child.pid, timeout=10)
            raise ServiceError(
                f"Kafka did not answer on 127.0.0.1:{port} within {timeout:.0f} s; "
                f"{logs_dir / 'server.log'}:\n{_tail(logs_dir / 'server.log')}"
            )
        time.sleep(0.2)
    server = KafkaServer(
        bootstrap=f"127.0.0.1:{port}",
        pid=child.pid,
        dir=str(root),
        version=version,
        controller_port=controller_port,
        security_protocol=_security_protocol(sasl is not None, tls),
        sasl_mechanism="PLAIN" if sasl else None,
        sasl_user=sasl_user,
        sasl_password=sasl_password,
        start_seconds=round(time.monotonic() - started, 2),
        start_ticks=_proc_start_ticks(child.pid),
        ca_file=tls_files.ca_file if tls_files else None,
    )
    _write_json(root / "kafka.json", server.to_json())
    return server


def _load(directory: str | Path, name: str) -> dict[str, Any]:
    path = Path(directory) / name
    if not path.exists():
        raise ServiceError(f"{path} not found: nothing was started in {directory}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _stop(directory: str | Path, name: str, remove: bool, timeout: float) -> str:
    info = _load(directory, name)
    result = stop_pid(int(info["pid"]), info.get("start_ticks"), timeout=timeout)
    if remove:
        shutil.rmtree(directory, ignore_errors=True)
    return result


def stop_kafka(
    server: KafkaServer | str | Path, *, remove: bool = False, timeout: float = STOP_TIMEOUT_S
) -> str:
    """Stop the broker (a KafkaServer or its directory); remove its directory if asked."""
    directory = server.dir if isinstance(server, KafkaServer) else server
    return _stop(directory, "kafka.json", remove, timeout)


# --------------------------------------------------------------------------- Redis


@dataclasses.dataclass(frozen=True)
class RedisServer:
    url: str
    pid: int
    dir: str
    port: int
    password: str | None
    version: str
    start_seconds: float
    start_ticks: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def redis_executable(install: bool = True) -> str:
    """Path of redis-server; installs Debian's package once when it is missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    if not install:
        raise ServiceError("redis-server not found (Debian package redis-server)")
    apt = shutil.which("apt-get")
    if not apt:
        raise ServiceError("redis-server not found and apt-get is not available to install it")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        [*prefix, apt, "update", "-qq"],
        [*prefix, apt, "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise ServiceError(
                f"could not install redis-server: {' '.join(step)} exited "
                f"{done.returncode}:\n{(done.stdout + done.stderr)[-2000:]}"
            )
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if not found:
        raise ServiceError("apt-get installed redis-server but it is not on PATH")
    return found


def _resp(*args: str) -> bytes:
    out = f"*{len(args)}\r\n"
    for arg in args:
        out += f"${len(arg.encode())}\r\n{arg}\r\n"
    return out.encode()


def redis_ping(port: int, password: str | None = None, timeout: float = 1.0) -> bool:
    """True when redis answers PING with +PONG (after AUTH when a password is set)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            if password is not None:
                sock.sendall(_resp("AUTH", password))
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(_resp("PING"))
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(
    directory: str | Path | None = None,
    *,
    password: str | None = None,
    persistence: bool = False,
    port: int | None = None,
    timeout: float = 20.0,
) -> RedisServer:
    """Start redis-server on a free 127.0.0.1 port (persistence off unless asked).

    ``port`` asks for one port, e.g. to restart a stopped server where its clients
    reconnect; it must be free. With ``persistence`` and the same ``directory`` the
    restarted server loads the data the stopped one saved.
    """
    started = time.monotonic()
    exe = redis_executable()
    version_out = subprocess.run(
        [exe, "--version"], capture_output=True, text=True, check=False
    ).stdout
    version = next(
        (w.split("=", 1)[1] for w in version_out.split() if w.startswith("v=")), "unknown"
    )
    if port is not None and not port_free(port):
        raise ServiceError(f"port {port} on 127.0.0.1 is in use: redis-server cannot bind it")
    root = _new_dir(directory, "realorders-redis-")
    if port is None:
        (port,) = free_ports(1)
    argv = [
        exe,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--daemonize", "no",
        "--dir", str(root),
        "--logfile", "",
        "--save", "" if not persistence else "60 1000",
        "--appendonly", "yes" if persistence else "no",
    ]  # fmt: skip
    if password is not None:
        argv += ["--requirepass", password]
    log = root / "redis.log"
    child = _spawn(argv, log, root)
    deadline = time.monotonic() + timeout
    while not redis_ping(port, password):
        if child.poll() is not None:
            _CHILDREN.pop(child.pid, None)
            raise ServiceError(f"redis-server exited with {child.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            stop_pid(child.pid, timeout=5)
            raise ServiceError(f"redis-server did not answer PING within {timeout:.0f} s")
        time.sleep(0.05)
    auth = f":{urllib.parse.quote(password, safe='')}@" if password is not None else ""
    server = RedisServer(
        url=f"redis://{auth}127.0.0.1:{port}/0",
        pid=child.pid,
        dir=str(root),
        port=port,
        password=password,
        version=version,
        start_seconds=round(time.monotonic() - started, 2),
        start_ticks=_proc_start_ticks(child.pid),
    )
    _write_json(root / "redis.json", server.to_json())
    return server


def stop_redis(
    server: RedisServer | str | Path, *, remove: bool = False, timeout: float = 10.0
) -> str:
    directory = server.dir if isinstance(server, RedisServer) else server
    return _stop(directory, "redis.json", remove, timeout)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="service", required=True)

    kafka = sub.add_parser("kafka", help="a single-node KRaft Kafka broker")
    kafka_sub = kafka.add_subparsers(dest="action", required=True)
    ks = kafka_sub.add_parser("start")
    ks.add_argument("--dir", help="data/config directory (default: a new temp dir)")
    ks.add_argument("--sasl-user")
    ks.add_argument("--sasl-password")
    ks.add_argument(
        "--tls",
        action="store_true",
        help="TLS client listener (SASL_SSL with --sasl-user, else SSL); "
        "its CA is DIR/tls/ca.pem, printed as ca_file",
    )
    ks.add_argument("--auto-create-topics", action="store_true")
    ks.add_argument("--timeout", type=float, default=START_TIMEOUT_S)
    kt = kafka_sub.add_parser("stop")
    kt.add_argument("--dir", required=True)
    kt.add_argument("--remove", action="store_true", help="delete the directory afterwards")
    kafka_sub.add_parser("assemble", help="only fetch the broker into the cache")

    redis = sub.add_parser("redis", help="a redis-server without persistence")
    redis_sub = redis.add_subparsers(dest="action", required=True)
    rs = redis_sub.add_parser("start")
    rs.add_argument("--dir")
    rs.add_argument("--password")
    rs.add_argument("--persistence", action="store_true")
    rt = redis_sub.add_parser("stop")
    rt.add_argument("--dir", required=True)
    rt.add_argument("--remove", action="store_true")

    args = parser.parse_args(argv)
    try:
        if args.service == "kafka" and args.action == "start":
            if (args.sasl_user is None) != (args.sasl_password is None):
                parser.error("--sasl-user and --sasl-password go together")
            kserver = start_kafka(
                args.dir,
                sasl_user=args.sasl_user,
                sasl_password=args.sasl_password,
                tls=args.tls,
                auto_create_topics=args.auto_create_topics,
                timeout=args.timeout,
            )
            print(json.dumps(kserver.to_json()))
        elif args.service == "kafka" and args.action == "stop":
            print(json.dumps({"dir": args.dir, "result": stop_kafka(args.dir, remove=args.remove)}))
        elif args.service == "kafka" and args.action == "assemble":
            t0 = time.monotonic()
            lib = assemble_kafka()
            print(json.dumps({"lib": str(lib), "seconds": round(time.monotonic() - t0, 2)}))
        elif args.service == "redis" and args.action == "start":
            rserver = start_redis(args.dir, password=args.password, persistence=args.persistence)
            print(json.dumps(rserver.to_json()))
        else:
            print(json.dumps({"dir": args.dir, "result": stop_redis(args.dir, remove=args.remove)}))
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
