"""Async persistence on SQLite (embedded default) and PostgreSQL, with the platform's own tables."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import AsyncIterator, Callable

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcDateTime(sa.TypeDecorator):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the platform stores aware UTC timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


@dataclass(frozen=True)
class PlatformTables:
    outbox: sa.Table
    processed_event: sa.Table


def add_platform_tables(metadata: sa.MetaData) -> PlatformTables:
    """The outbox and the processed-event table, added to a service's own metadata (and migrations)."""
    outbox = sa.Table(
        "outbox_event",
        metadata,
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.Index("ix_outbox_event_pending", "id", postgresql_where=sa.text("published_at IS NULL"),
                 sqlite_where=sa.text("published_at IS NULL")),
        sa.Index("ix_outbox_event_created_at", "created_at"),
    )
    processed = sa.Table(
        "processed_event",
        metadata,
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("consumer_group", sa.String(200), primary_key=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
    )
    return PlatformTables(outbox=outbox, processed_event=processed)


# SQLSTATE classes of a database that is away rather than of a bad statement: 08 connection exception,
# 57P operator intervention (shutting down, starting up), 53 insufficient resources (too many connections).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")
_DRIVER_MODULES = ("asyncpg", "aiosqlite", "sqlalchemy")


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database is unreachable, restarting or out of connections (retry later), as
    opposed to a failing statement. Drivers raise some of these unwrapped (a refused connection: OSError)."""
    if isinstance(exc, (sa.exc.TimeoutError, sa.exc.DisconnectionError, sa.exc.OperationalError,
                        sa.exc.InterfaceError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        # A connection left mid-operation by a dropped server (asyncpg's InternalClientError) is unusable too.
        return (exc.connection_invalidated or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
                or type(exc.orig).__name__ == "InternalClientError")
    if isinstance(exc, (OSError, TimeoutError)):
        traceback = exc.__traceback__
        while traceback is not None:
            if str(traceback.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVER_MODULES):
                return True
            traceback = traceback.tb_next
    return False


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# libpq's `sslmode` values; asyncpg takes the same ones, but as `ssl=` (an `sslmode=` it gets as a keyword
# argument from SQLAlchemy fails every connection with a TypeError).
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# libpq's file parameters, which SQLAlchemy would pass to asyncpg as unknown keyword arguments: asyncpg reads
# them from these environment variables instead.
_SSL_FILE_VARIABLES = {"sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
                       "sslcrl": "PGSSLCRL", "sslpassword": "PGSSLPASSWORD"}


def asyncpg_url(url: str) -> str:
    """The database URL as asyncpg takes it: libpq's `sslmode=` becomes `ssl=`. Raises ValueError (without
    the URL, which holds a password) for a parameter asyncpg cannot take or an unknown mode."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError("not a database URL (dialect+driver://user:password@host:port/database)") from None
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() != "asyncpg":
        return url
    query = dict(parsed.query)
    for name, variable in _SSL_FILE_VARIABLES.items():
        if name in query:
            raise ValueError(f"{name}= in the URL is not passed to asyncpg: remove it and set the {variable} "
                             "environment variable instead")
    for name in ("sslmode", "ssl"):
        if name in query and query[name] not in SSL_MODES:
            raise ValueError(f"{name}={query[name]!r} is not an SSL mode (one of {', '.join(SSL_MODES)})")
    if "sslmode" not in query:
        return url
    mode = query.pop("sslmode")
    if query.setdefault("ssl", mode) != mode:
        raise ValueError(f"ssl={query['ssl']!r} and sslmode={mode!r} disagree: keep one")
    return parsed.set(query=query).render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=30,
                                     connect_args={"timeout": 30}, json_deserializer=orjson.loads)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below emits BEGIN
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(connection) -> None:
            # Units of work take the write lock at BEGIN, so concurrent writers queue instead of failing
            # on lock upgrade; read-only sessions use a deferred BEGIN and never block writers (WAL).
            immediate = connection.get_execution_options().get("sqlite_immediate", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    engine = create_async_engine(
        asyncpg_url(url), pool_size=pool_size, max_overflow=pool_size, pool_timeout=5,
        # JSON columns read back with orjson (several times faster than `json` on the facts and snapshots read
        # in bulk); written with the default `json.dumps`.
        json_deserializer=orjson.loads,
        # Custom plans: the queries filter on skewed values (slot status, map cells, a few days of slots) where a
        # generic plan, which PostgreSQL switches to after five runs of a prepared statement, reads far too much.
        connect_args={"timeout": 5, "command_timeout": 30,
                      "server_settings": {"plan_cache_mode": "force_custom_plan"}},
    )
    ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 1.0


def ping_when_idle(engine: AsyncEngine, idle_seconds: float | None = None) -> None:
    """Check a pooled connection before use only when it sat idle `idle_seconds` or more (a restarted server, a
    dropped connection): a dead one is replaced before the unit of work starts. SQLAlchemy's `pool_pre_ping`
    checks at every checkout, three round trips on asyncpg (BEGIN, a statement, ROLLBACK) before every
    transaction, which a consumer applying batches back to back or an API under load pays for nothing. A
    connection that fails within a second of its last use fails its unit of work, which is retried (consumers)
    or answered 503 (API), and the pool replaces its connections."""
    idle = PING_AFTER_IDLE_SECONDS if idle_seconds is None else idle_seconds

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # The pool discards this connection and checks out another (a new one if need be).
            raise sa.exc.DisconnectionError(f"connection lost while idle: {type(exc).__name__}") from exc


class Database:
    """A service's engine and sessions; `transaction()` is the unit of work (commit or roll back)."""

    def __init__(self, url: str, tables: PlatformTables, *, pool_size: int = 10) -> None:
        self.url = url
        self.tables = tables
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self.engine.execution_options(sqlite_immediate=True),
                                                  class_=AsyncSession, expire_on_commit=False)
        self._after_commit: list[Callable[[], None]] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def on_outbox_commit(self, callback: Callable[[], None]) -> None:
        """Called after a transaction that wrote outbox rows commits (wakes the relay)."""
        self._after_commit.append(callback)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._write_sessions() as session:
            async with session.begin():
                yield session
            if session.info.pop("outbox_written", False):
                for callback in self._after_commit:
                    callback()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def upsert(dialect: str, table: sa.Table):
    """An INSERT that supports `.on_conflict_do_update` / `.on_conflict_do_nothing` on both databases."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def one_of(dialect: str, column: sa.ColumnElement, name: str) -> sa.ColumnElement[bool]:
    """`column IN` the list given as parameter `name` at execution. On PostgreSQL `column = ANY(:name)`, one
    array parameter: the statement's text is the same whatever the list's length, so its prepared statement is
    reused (an expanding IN writes one placeholder per value: a new statement to parse for every new length).
    Elsewhere an expanding IN."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(name, type_=ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))
