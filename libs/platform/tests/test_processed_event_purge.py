"""The consumers' deduplication table (`processed_event`) is purged past its retention, by the relay's hourly
purge, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from cpts_platform.db import Database, add_platform_tables
from cpts_platform.kafka import new_producer
from cpts_platform.outbox import OutboxRelay
from cpts_platform.testing import eventually
from cpts_registry.settings import Settings

metadata = sa.MetaData()
tables = add_platform_tables(metadata)


@pytest.fixture
async def database(database_url):
    db = Database(database_url, tables)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield db
    await db.dispose()


async def processed(database: Database, ages_in_days: dict[str, float]) -> None:
    now = datetime.now(UTC)
    async with database.transaction() as session:
        await session.execute(sa.insert(tables.processed_event), [
            {"event_id": event_id, "consumer_group": "indicators.facts", "event_type": "fr.cpts.test.v1",
             "processed_at": now - timedelta(days=age)} for event_id, age in ages_in_days.items()])


async def remaining(database: Database) -> set[str]:
    async with database.sessions() as session:
        return set((await session.execute(sa.select(tables.processed_event.c.event_id))).scalars())


async def test_purge_drops_the_rows_older_than_the_retention(database):
    await processed(database, {"old": 31, "older": 400, "recent": 29, "now": 0})
    relay = OutboxRelay(service="test", database=database, producer=None,  # type: ignore[arg-type]
                        processed_retention=timedelta(days=30))
    assert await relay.purge_processed() == 2
    assert await remaining(database) == {"recent", "now"}
    assert await relay.purge_processed() == 0


async def test_no_retention_keeps_every_row(database):
    await processed(database, {"old": 3650, "now": 0})
    relay = OutboxRelay(service="test", database=database, producer=None,  # type: ignore[arg-type]
                        processed_retention=None)
    assert await relay.purge_processed() == 0
    assert await remaining(database) == {"old", "now"}


async def test_the_running_relay_purges_them(database, kafka_broker):
    await processed(database, {"old": 45, "recent": 1})
    producer = new_producer(kafka_broker, client_id="test-purge")
    await producer.start()
    relay = OutboxRelay(service="test", database=database, producer=producer, poll_interval=0.05,
                        processed_retention=timedelta(days=30))
    relay.start()
    try:
        async def purged():
            return await remaining(database) == {"recent"}

        await eventually(purged)
    finally:
        await relay.stop()
        await producer.stop()


def test_retention_setting(monkeypatch):
    assert Settings().consumer_dedup_retention_days == 30
    monkeypatch.setenv("CPTS_CONSUMER_DEDUP_RETENTION_DAYS", "0")  # 0: never purged
    assert Settings().consumer_dedup_retention_days == 0
    monkeypatch.setenv("CPTS_CONSUMER_DEDUP_RETENTION_DAYS", "-1")
    with pytest.raises(ValueError):
        Settings()


async def test_the_service_gives_the_retention_to_its_relay(tmp_path):
    from cpts_platform.service import Runtime
    from cpts_registry.app import service

    for days, expected in ((7, timedelta(days=7)), (0, None)):
        settings = Settings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 't.db'}",
                            consumer_dedup_retention_days=days)
        runtime = Runtime(service, settings)
        try:
            assert runtime.relay.processed_retention == expected
        finally:
            await runtime.database.dispose()
            await runtime.producer.client.close()
