"""Pytest fixtures shared by every package: a real Kafka-protocol broker, SQLite and PostgreSQL databases,
the local token issuer, and a running service app with its lifespan (relay and consumers)."""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Awaitable, TypeVar

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa

from cpts_platform.auth import LocalIssuer
from cpts_platform.db import Database
from cpts_platform.dev.broker import LocalBroker, free_port
from cpts_platform.service import ServiceDefinition, create_app
from cpts_platform.settings import ServiceSettings

POSTGRES_ADMIN_DSN = os.environ.get("CPTS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_reachable() -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=2)
        except Exception:
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


_PG = None


def _pg() -> bool:
    global _PG
    if _PG is None:
        _PG = os.environ.get("CPTS_TEST_POSTGRES", "auto") != "off" and postgres_reachable()
    return _PG


def create_postgres_database() -> tuple[str, str]:
    """Create an empty database; return (name, async SQLAlchemy URL)."""
    import asyncpg

    name = f"cpts_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


def drop_postgres_database(name: str) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    """Each test using it runs on SQLite and, when it is reachable, on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    if not _pg():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    name, url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real Kafka-protocol broker for the whole test session; returns its bootstrap servers."""
    external = os.environ.get("CPTS_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = LocalBroker(port=free_port(), log_path=tmp_path_factory.mktemp("broker") / "broker.log")
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic namespace per test, so tests sharing the broker never see each other's events."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def local_issuer(tmp_path: Path) -> LocalIssuer:
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    issuer.ensure_key()
    return issuer


def settings_for(definition: ServiceDefinition, *, database_url: str, kafka_broker: str, topic_prefix: str,
                 var_dir: Path, **overrides) -> ServiceSettings:
    return definition.settings_class(
        profile="test",
        var_dir=var_dir,
        database_url=database_url,
        kafka_bootstrap_servers=kafka_broker,
        kafka_topic_prefix=topic_prefix,
        outbox_poll_interval_seconds=0.1,
        **overrides,
    )


@asynccontextmanager
async def running_service(definition: ServiceDefinition, settings: ServiceSettings,
                          wait_ready: bool = True, freeze_heap: bool = False) -> AsyncIterator[httpx.AsyncClient]:
    """The service's app with its lifespan running (relay, consumers), and an HTTP client on it."""
    app = create_app(definition, settings, freeze_heap=freeze_heap)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            client.app = app  # type: ignore[attr-defined]
            if wait_ready:
                await wait_until_ready(client)
            yield client


async def wait_until_ready(client: httpx.AsyncClient, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    body = None
    while asyncio.get_running_loop().time() < deadline:
        response = await client.get("/readyz")
        if response.status_code == 200:
            return
        body = response.json()
        await asyncio.sleep(0.1)
    raise AssertionError(f"service not ready after {timeout} s: {body}")


async def eventually(check, timeout: float = 15.0, interval: float = 0.1):
    """Await `check()` until it returns a truthy value; return it, or fail with the last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")


def wait_for(fetch, ok, timeout: float = 20.0, interval: float = 0.1):
    """Call `fetch()` until `ok(result)`; return the result or fail with the last one (for system tests)."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fetch()
            if ok(last):
                return last
        except Exception as exc:  # a service restarting refuses connections for a moment
            last = exc
        time.sleep(interval)
    raise AssertionError(f"not reached within {timeout} s; last: {getattr(last, 'text', last)!r}")


@pytest_asyncio.fixture
async def publish(kafka_broker: str, topic_prefix: str):
    """`await publish(payload, ...)`: each payload as an event on its catalogue topic (under the test's prefix),
    in order, acknowledged by the broker; `publish(record, ...)` sends already encoded records as they are."""
    from cpts_events import KafkaRecord, encode, new_event
    from cpts_platform.kafka import new_producer

    producer = new_producer(kafka_broker, client_id="test-publisher")
    await producer.start()

    async def send(*items, source: str = "/cpts/registry") -> None:
        for item in items:
            record = item if isinstance(item, KafkaRecord) else encode(new_event(item, source=source))
            await (await producer.send(topic_prefix + record.topic, value=record.value, key=record.key,
                                       headers=record.headers))

    try:
        yield send
    finally:
        await producer.stop()


T = TypeVar("T")


def _refused(*_args, **_kwargs):
    raise sa.exc.OperationalError("connect", {}, ConnectionRefusedError("database away"))


class DatabaseAway:
    """A service's database going away right after a command commits: `after_commit(request)` sends the
    request, and from the commit of the first transaction that writes events, every new session or transaction
    of the service is refused, until the answer is in. A command answered from its own transaction still
    answers with what it stored; one that reads or audits after its commit answers 503."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._armed = False
        database.on_outbox_commit(self._committed)

    def _committed(self) -> None:
        if self._armed:
            self._armed = False
            self.database.sessions = _refused  # type: ignore[method-assign]
            self.database.transaction = _refused  # type: ignore[method-assign]

    async def after_commit(self, request: Awaitable[T]) -> T:
        sessions = self.database.sessions
        self._armed = True
        try:
            return await request
        finally:
            self._armed = False
            self.database.sessions = sessions  # type: ignore[method-assign]
            vars(self.database).pop("transaction", None)  # the class's method again
