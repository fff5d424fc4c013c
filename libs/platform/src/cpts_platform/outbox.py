"""Transactional outbox: events are written with the domain change, then relayed to Kafka in order."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Iterable

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncSession

from cpts_events import Event, encode
from cpts_platform.db import Database
from cpts_platform.logging import get_logger
from cpts_platform.metrics import EVENTS_PUBLISHED, OUTBOX_OLDEST_AGE, OUTBOX_PENDING

log = get_logger(__name__)


async def add_events(session: AsyncSession, database: Database, events: Iterable[Event]) -> int:
    """Write events to the outbox inside the caller's transaction; they go out only if it commits."""
    now = datetime.now(UTC)
    rows = []
    for event in events:
        record = encode(event)
        rows.append({
            "event_id": event.id,
            "event_type": event.type,
            "topic": record.topic,
            "key": record.key,
            "value": record.value,
            "headers": [[name, value.decode()] for name, value in record.headers],
            "created_at": now,
        })
    if rows:
        await session.execute(sa.insert(database.tables.outbox), rows)
        session.info["outbox_written"] = True
    return len(rows)


class OutboxRelay:
    """Publishes pending outbox rows in id order, marks them published, and retries while the broker is away.

    At-least-once: a row is marked only after the broker acknowledged it; a crash in between re-sends it,
    and consumers deduplicate on the event id.
    """

    def __init__(self, *, service: str, database: Database, producer: AIOKafkaProducer, batch_size: int = 500,
                 poll_interval: float = 0.5, retention: timedelta = timedelta(days=30),
                 topic_prefix: str = "", processed_retention: timedelta | None = timedelta(days=30)) -> None:
        self.service = service
        self.database = database
        self.producer = producer
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention = retention
        self.processed_retention = processed_retention
        self.topic_prefix = topic_prefix
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.last_error: str | None = None
        database.on_outbox_commit(self.wake)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        backoff = 0.2
        last_purge = last_gauges = float("-inf")
        loop = asyncio.get_running_loop()
        while not self._stopping:
            # Cleared before reading the outbox: a commit landing while we publish wakes the next pass.
            self._wake.clear()
            try:
                published = await self.publish_pending()
                self.last_error = None
                backoff = 0.2
                if loop.time() - last_purge > 3600:
                    await self.purge()
                    await self.purge_processed()
                    last_purge = loop.time()
                if published >= self.batch_size:
                    continue
                if loop.time() - last_gauges > 1.0:
                    await self._refresh_gauges()
                    last_gauges = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = type(exc).__name__
                log.warning("outbox_relay_retry", error_type=type(exc).__name__, backoff_seconds=backoff)
                if loop.time() - last_gauges > 1.0:
                    # While the broker is away the pending count and age are what the alerts watch.
                    with contextlib.suppress(sa.exc.SQLAlchemyError, OSError, TimeoutError):
                        await self._refresh_gauges()
                        last_gauges = loop.time()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; return how many were published."""
        if self.database.dialect == "postgresql":
            # One active relay per service, however many instances run: the others stand by.
            async with self.database.transaction() as session:
                locked = (await session.execute(sa.select(sa.func.pg_try_advisory_xact_lock(self._lock_key))))
                if not locked.scalar_one():
                    return 0
                rows = await self._pending(session)
                published_ids = await self._send(rows)
                await self._mark(session, published_ids)
        else:
            # SQLite: never hold its single write lock while waiting for the broker.
            async with self.database.sessions() as session:
                rows = await self._pending(session)
            published_ids = await self._send(rows)
            if published_ids:
                async with self.database.transaction() as session:
                    await self._mark(session, published_ids)
        if len(published_ids) < len(rows):
            raise ConnectionError("broker did not acknowledge every outbox row")
        return len(published_ids)

    @property
    def _lock_key(self) -> int:
        return int.from_bytes(hashlib.sha256(f"outbox-relay:{self.service}".encode()).digest()[:8], "big", signed=True)

    async def _pending(self, session: AsyncSession) -> list:
        outbox = self.database.tables.outbox
        return list((await session.execute(
            sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(self.batch_size)
        )).all())

    async def _mark(self, session: AsyncSession, ids: list[int]) -> None:
        if ids:
            outbox = self.database.tables.outbox
            await session.execute(sa.update(outbox).where(outbox.c.id.in_(ids)).values(published_at=datetime.now(UTC)))

    async def _send(self, rows) -> list[int]:
        if not rows:
            return []
        futures = []
        for row in rows:
            futures.append(await self.producer.send(
                self.topic_prefix + row.topic, value=row.value, key=row.key,
                headers=[(name, value.encode()) for name, value in row.headers],
            ))
        results = await asyncio.gather(*futures, return_exceptions=True)
        # Only the prefix acknowledged in full is marked, so a retry re-sends in the original order.
        published: list[int] = []
        per_topic: Counter[str] = Counter()
        for row, result in zip(rows, results):
            if isinstance(result, BaseException):
                break
            published.append(row.id)
            per_topic[row.topic] += 1
        for topic, count in per_topic.items():
            EVENTS_PUBLISHED.labels(self.service, topic).inc(count)
        return published

    async def _refresh_gauges(self) -> None:
        outbox = self.database.tables.outbox
        async with self.database.sessions() as session:
            count, oldest = (await session.execute(
                sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
            )).one()
        OUTBOX_PENDING.labels(self.service).set(count)
        OUTBOX_OLDEST_AGE.labels(self.service).set(
            (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0
        )

    async def purge(self) -> int:
        """Drop published rows older than the retention; the rest stays available for `replay`."""
        outbox = self.database.tables.outbox
        cutoff = datetime.now(UTC) - self.retention
        async with self.database.transaction() as session:
            result = await session.execute(
                sa.delete(outbox).where(outbox.c.published_at.is_not(None), outbox.c.created_at < cutoff)
            )
        return result.rowcount or 0

    async def purge_processed(self) -> int:
        """Drop the consumers' deduplication rows older than their retention (None keeps them): an event
        delivered again after that is applied again, so the retention must cover every redelivery."""
        if self.processed_retention is None:
            return 0
        processed = self.database.tables.processed_event
        cutoff = datetime.now(UTC) - self.processed_retention
        async with self.database.transaction() as session:
            result = await session.execute(sa.delete(processed).where(processed.c.processed_at < cutoff))
        return result.rowcount or 0


async def replay(*, database: Database, producer: AIOKafkaProducer, since: datetime | None = None,
                 batch_size: int = 1000, topic_prefix: str = "") -> int:
    """Re-publish the retained outbox history, in order, into a (fresh) broker. Consumers deduplicate."""
    outbox = database.tables.outbox
    last_id = 0
    total = 0
    while True:
        query = sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers).where(
            outbox.c.id > last_id
        )
        if since is not None:
            query = query.where(outbox.c.created_at >= since)
        async with database.sessions() as session:
            rows = (await session.execute(query.order_by(outbox.c.id).limit(batch_size))).all()
        if not rows:
            return total
        for attempt in range(1, 6):
            futures = [
                await producer.send(topic_prefix + r.topic, value=r.value, key=r.key,
                                    headers=[(n, v.encode()) for n, v in r.headers])
                for r in rows
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is None:
                break
            # The batch again, whole: what went through twice is deduplicated by the consumers.
            if attempt == 5 or not isinstance(failed, (KafkaError, TimeoutError)):
                raise failed
            log.warning("outbox_replay_retry", error_type=type(failed).__name__, attempt=attempt)
            await asyncio.sleep(0.5 * attempt)
        ids = [r.id for r in rows]
        async with database.transaction() as session:
            await session.execute(sa.update(outbox).where(outbox.c.id.in_(ids), outbox.c.published_at.is_(None))
                                  .values(published_at=datetime.now(UTC)))
        total += len(rows)
        last_id = rows[-1].id
