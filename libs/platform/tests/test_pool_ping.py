"""Pooled PostgreSQL connections are checked before use only after sitting idle: none of the three round trips of
a check before each unit of work under load, and a connection the server dropped while idle is replaced before
the unit of work starts (it does not fail)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from cpts_platform import db
from cpts_platform.testing import create_postgres_database, drop_postgres_database, postgres_reachable

pytestmark = pytest.mark.skipif(not postgres_reachable(), reason="PostgreSQL only")


@pytest.fixture
async def engine(monkeypatch):
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.3)
    name, url = await asyncio.to_thread(create_postgres_database)
    engine = db.create_engine(url, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()
        await asyncio.to_thread(drop_postgres_database, name)


async def backend_pid(engine) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()


async def test_a_connection_reused_at_once_is_not_pinged(engine, monkeypatch):
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

    pinged = []
    original = AsyncAdapt_asyncpg_connection.ping
    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", lambda self: (pinged.append(1), original(self)))
    first = await backend_pid(engine)
    for _ in range(5):
        assert await backend_pid(engine) == first
    assert pinged == []
    await asyncio.sleep(0.4)
    assert await backend_pid(engine) == first
    assert pinged == [1]


async def test_a_connection_dropped_while_idle_is_replaced_before_use(engine):
    dropped = await backend_pid(engine)
    other = db.create_engine(str(engine.url.render_as_string(hide_password=False)), pool_size=1)
    try:
        async with other.connect() as connection:
            await connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
    finally:
        await other.dispose()
    await asyncio.sleep(0.4)
    async with engine.begin() as connection:  # a unit of work: no failure
        pid = (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    assert pid != dropped
