"""Kafka clients, built one way for every service (plain producer, acks=all; topics with their DLQ), all
connected through `connection_kwargs` (the listener's security: TLS, mutual TLS, SASL)."""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from cpts_events import topics
from cpts_platform.settings import KafkaClientSettings

# The settings of a service or of the admin tasks; a bare "host:port,..." is a PLAINTEXT listener (the local
# broker of the embedded run, the tests, the benchmarks).
KafkaConnection: TypeAlias = "KafkaClientSettings | str"


class KafkaConfigurationError(ValueError):
    """The Kafka settings cannot build a client (a missing file, no SASL credentials); names the setting."""


def connection_kwargs(kafka: KafkaConnection) -> dict[str, Any]:
    """The keyword arguments every aiokafka client (producer, consumer, admin) is built with: bootstrap
    servers, security protocol, TLS context (CA, client certificate) and SASL credentials."""
    if isinstance(kafka, str):
        return {"bootstrap_servers": kafka, "security_protocol": "PLAINTEXT"}
    protocol = kafka.kafka_security_protocol
    kwargs: dict[str, Any] = {"bootstrap_servers": kafka.kafka_bootstrap_servers,
                              "security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        files = {"cafile": kafka.kafka_ssl_cafile, "certfile": kafka.kafka_ssl_certfile,
                 "keyfile": kafka.kafka_ssl_keyfile}
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise KafkaConfigurationError(f"kafka_ssl_{name}: no file at {path}")
        # Verifies the broker's certificate and host name, against the CA given or the system's roots.
        kwargs["ssl_context"] = create_ssl_context(**{k: v for k, v in files.items() if v is not None})
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if not kafka.kafka_sasl_username or kafka.kafka_sasl_password is None:
            raise KafkaConfigurationError(
                f"kafka_sasl_username, kafka_sasl_password: both are required with {protocol}")
        kwargs.update(sasl_mechanism=kafka.kafka_sasl_mechanism,
                      sasl_plain_username=kafka.kafka_sasl_username,
                      sasl_plain_password=kafka.kafka_sasl_password.get_secret_value())
    return kwargs


def new_producer(kafka: KafkaConnection, *, client_id: str) -> AIOKafkaProducer:
    # acks=all: a publish counts only once every in-sync replica has it. Order per partition is kept by the
    # client, which sends one batch per partition at a time.
    return AIOKafkaProducer(
        **connection_kwargs(kafka),
        client_id=client_id,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


def platform_topics() -> list[str]:
    return [name for topic in topics.ALL for name in (topic, topics.dlq(topic))]


async def ensure_topics(kafka: KafkaConnection, names: list[str], *, partitions: int = 3,
                        replication_factor: int = 1, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka), client_id="cpts-admin")
    await asyncio.wait_for(admin.start(), timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=replication_factor) for n in missing]
                )
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        await admin.close()


async def broker_reachable(producer: AIOKafkaProducer, timeout: float = 2.0) -> bool:
    try:
        return bool(await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout))
    except Exception:
        return False
