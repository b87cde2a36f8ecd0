"""The real-service fixtures of tests/services.py work: each against a real server.

Clients are closed in ``finally`` blocks: an unclosed socket is a ResourceWarning, and
warnings are errors in this suite.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaTimeoutError
from services import (
    SASL_PASSWORD,
    SASL_USER,
    KafkaServer,
    RedisServer,
    RestartableKafka,
    RestartableRedis,
    config_env,
    kafka_sasl_probe,
    sasl_ssl_kafka_config,
    script,
    unavailable,
    untrusted_ca_file,
)

from realorders.config import Config


@contextmanager
def redis_client(url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


def create_topic(config: dict[str, Any], topic: str) -> None:
    admin = KafkaAdminClient(**config)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=10_000)
    finally:
        admin.close()


def produce(config: dict[str, Any], topic: str, *values: bytes) -> None:
    producer = KafkaProducer(**config, acks="all")
    try:
        for value in values:
            producer.send(topic, key=b"order-1", value=value).get(timeout=10)
    finally:
        producer.close()


def consume_all(config: dict[str, Any], topic: str, want: int, seconds: float = 20) -> list[bytes]:
    """The first ``want`` values of partition 0, read from the beginning without a group."""
    consumer = KafkaConsumer(**config, group_id=None, auto_offset_reset="earliest")
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        values: list[bytes] = []
        deadline = time.monotonic() + seconds
        while len(values) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                values.extend(record.value for record in records)
        return values
    finally:
        consumer.close()


def test_redis_server_ping_set_get(redis_server: RedisServer, redis_prefix: str) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis_client(redis_server.url) as client:
        assert client.ping() is True
        client.set(f"{redis_prefix}:greeting", "hello")
        assert client.get(f"{redis_prefix}:greeting") == b"hello"


def test_kafka_server_produce_consume_round_trip(
    kafka_server: KafkaServer, kafka_prefix: str
) -> None:
    config = kafka_server.client_config()
    assert config == {"bootstrap_servers": kafka_server.bootstrap}
    topic = f"{kafka_prefix}.events"
    create_topic(config, topic)
    produce(config, topic, b"first", b"second")
    assert consume_all(config, topic, want=2) == [b"first", b"second"]


def test_kafka_server_does_not_auto_create_topics(
    kafka_server: KafkaServer, kafka_prefix: str
) -> None:
    topic = f"{kafka_prefix}.never-created"
    config = kafka_server.client_config()
    producer = KafkaProducer(**config, max_block_ms=1000)
    try:
        # The producer's metadata request names the topic and allows auto-creation.
        with pytest.raises(KafkaTimeoutError):
            producer.partitions_for(topic)
    finally:
        producer.close()
    admin = KafkaAdminClient(**config)
    try:
        assert topic not in admin.list_topics()
    finally:
        admin.close()


def test_prefixes_are_fresh_per_test(redis_prefix: str, kafka_prefix: str) -> None:
    assert redis_prefix != kafka_prefix
    assert redis_prefix.isalnum()
    assert redis_prefix.startswith("t")


def test_sasl_kafka_server_rejects_wrong_password_and_accepts_right_one(
    sasl_kafka_server: KafkaServer, kafka_prefix: str
) -> None:
    server = sasl_kafka_server
    assert (server.security_protocol, server.sasl_mechanism) == ("SASL_PLAINTEXT", "PLAIN")
    assert (server.sasl_user, server.sasl_password) == (SASL_USER, SASL_PASSWORD)
    rejected = kafka_sasl_probe(server.bootstrap, SASL_USER, "not-the-password")
    assert rejected is not None
    assert "Invalid username or password" in rejected
    assert kafka_sasl_probe(server.bootstrap, SASL_USER, SASL_PASSWORD) is None

    config = server.client_config()
    topic = f"{kafka_prefix}.secured"
    create_topic(config, topic)
    produce(config, topic, b"authenticated")
    assert consume_all(config, topic, want=1) == [b"authenticated"]


def test_sasl_ssl_kafka_server_serves_tls_from_its_ca_and_checks_the_password(
    sasl_ssl_kafka_server: KafkaServer, kafka_prefix: str, tmp_path: Path
) -> None:
    server = sasl_ssl_kafka_server
    assert (server.security_protocol, server.sasl_mechanism) == ("SASL_SSL", "PLAIN")
    assert server.ca_file is not None
    assert Path(server.ca_file).is_file()
    # The certificate names 127.0.0.1 and localhost, and verifies against the CA alone.
    context = ssl.create_default_context(cafile=server.ca_file)
    with (
        socket.create_connection((server.host, server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server.host) as tls,
    ):
        names = (tls.getpeercert() or {}).get("subjectAltName", ())
    assert set(names) == {("IP Address", "127.0.0.1"), ("DNS", "localhost")}

    ca = server.ca_file
    assert kafka_sasl_probe(server.bootstrap, SASL_USER, SASL_PASSWORD, ca_file=ca) is None
    rejected = kafka_sasl_probe(server.bootstrap, SASL_USER, "not-the-password", ca_file=ca)
    assert rejected is not None
    assert "Invalid username or password" in rejected
    with pytest.raises(ssl.SSLCertVerificationError):
        kafka_sasl_probe(
            server.bootstrap, SASL_USER, SASL_PASSWORD, ca_file=untrusted_ca_file(tmp_path)
        )
    # Only TLS is served to clients: plain SASL gets no Kafka answer there.
    assert not script.kafka_ready(server.host, server.port, (SASL_USER, SASL_PASSWORD))

    config = server.client_config()
    assert config["ssl_cafile"] == server.ca_file
    topic = f"{kafka_prefix}.secured"
    create_topic(config, topic)
    produce(config, topic, b"over tls")
    assert consume_all(config, topic, want=1) == [b"over tls"]


def test_sasl_ssl_kafka_config_and_its_environment(
    sasl_ssl_kafka_server: KafkaServer, redis_server: RedisServer, kafka_prefix: str
) -> None:
    server = sasl_ssl_kafka_server
    config = sasl_ssl_kafka_config(server, redis_server, kafka_prefix)
    assert config.kafka_security_protocol == "SASL_SSL"
    assert (config.kafka_username, config.kafka_password) == (SASL_USER, SASL_PASSWORD)
    assert config.kafka_ca_file == Path(str(server.ca_file))
    assert config_env(config) == {
        "REALORDERS_BACKEND": "kafka",
        "REALORDERS_KAFKA_BOOTSTRAP": server.bootstrap,
        "REALORDERS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "REALORDERS_KAFKA_USERNAME": SASL_USER,
        "REALORDERS_KAFKA_PASSWORD": SASL_PASSWORD,
        "REALORDERS_KAFKA_CA_FILE": str(server.ca_file),
        "REALORDERS_KAFKA_TOPIC_PREFIX": kafka_prefix,
        "REALORDERS_KAFKA_PARTITIONS": "2",
        "REALORDERS_KAFKA_GROUP": f"{kafka_prefix}-engine",
        "REALORDERS_REDIS_URL": redis_server.url,
        "REALORDERS_REDIS_PREFIX": kafka_prefix,
    }
    assert config_env(Config()) == {}


def test_restartable_redis_keeps_data_and_port(restartable_redis: RestartableRedis) -> None:
    port, pid, url = restartable_redis.port, restartable_redis.pid, restartable_redis.url
    with redis_client(url) as client:
        client.set("survives", "restart")
    restartable_redis.restart()
    assert (restartable_redis.port, restartable_redis.url) == (port, url)
    assert restartable_redis.pid != pid
    with redis_client(url) as client:
        assert client.get("survives") == b"restart"


def test_restartable_kafka_keeps_messages_and_port(restartable_kafka: RestartableKafka) -> None:
    bootstrap, pid = restartable_kafka.bootstrap, restartable_kafka.pid
    config = restartable_kafka.client_config()
    create_topic(config, "orders")
    produce(config, "orders", b"before-restart")
    restartable_kafka.restart()
    assert restartable_kafka.bootstrap == bootstrap
    assert restartable_kafka.pid != pid
    produce(config, "orders", b"after-restart")
    assert consume_all(config, "orders", want=2) == [b"before-restart", b"after-restart"]


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_prerequisite_fails_on_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="redis-server not found"):
        unavailable("redis-server not found: apt-get install redis-server")
