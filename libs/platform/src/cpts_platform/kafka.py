"""Kafka clients, built one way for every service (plain producer, acks=all; topics with their DLQ)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from cpts_events import topics


def new_producer(bootstrap_servers: str, *, client_id: str) -> AIOKafkaProducer:
    # acks=all: a publish counts only once every in-sync replica has it. Order per partition is kept by the
    # client, which sends one batch per partition at a time.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


def platform_topics() -> list[str]:
    return [name for topic in topics.ALL for name in (topic, topics.dlq(topic))]


async def ensure_topics(bootstrap_servers: str, names: list[str], *, partitions: int = 3,
                        replication_factor: int = 1, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="cpts-admin")
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
