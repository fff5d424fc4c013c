"""Idempotent Kafka consumer: effect and processed event id in one transaction, offset committed after,
transient errors retried with backoff, poison messages to `<topic>.dlq` with the reason."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import groupby
from datetime import UTC, datetime
from typing import Awaitable, Callable, Mapping

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from cpts_events import Event, EventDecodeError, EventSchemaError, decode, topics
from cpts_platform.db import Database, database_unavailable, upsert
from cpts_platform.kafka import KafkaConnection, connection_kwargs
from cpts_platform.logging import get_logger
from cpts_platform.metrics import CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_DEAD_LETTERED, EVENTS_FAILED

log = get_logger(__name__)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, list[Event]], Awaitable[None]]


def batch_handler(handler: BatchHandler | None = None, *, any_types: bool = False):
    """Mark a handler that applies a run of events of its type at once (e.g. one bulk insert); with
    `any_types`, a run of consecutive events of any of the types it handles (fewer, larger calls when the types
    of a topic are interleaved).

    Same guarantees as a per-event handler: its effect commits with the processed ids of those events; a
    failing batch is retried event by event, so the handler is then called with one event.
    """
    def mark(handler: BatchHandler) -> BatchHandler:
        handler.takes_batches = True  # type: ignore[attr-defined]
        handler.takes_any_types = any_types  # type: ignore[attr-defined]
        return handler

    return mark if handler is None else mark(handler)


def partitions_apart(handler: Handler | BatchHandler) -> Handler | BatchHandler:
    """Mark a handler whose events of different partitions may be applied at once: on PostgreSQL, when every
    handler of its group is marked, the batches of one fetch are applied concurrently, each partition's batch
    in its own transaction as always (the order within a partition is kept, offsets are committed once all
    have committed). For handlers whose effects do not depend on the order of events of different partitions
    and whose transactions lock shared rows in one order only (no two wait on each other in a cycle).
    """
    handler.partitions_apart = True  # type: ignore[attr-defined]
    return handler


class PermanentEventError(Exception):
    """Raised by a handler for an event that can never be applied; the message is recorded as the reason,
    so it must not contain a patient's identity."""


def is_transient(exc: BaseException) -> bool:
    """Failures of the infrastructure (database or broker away), as opposed to a bad event."""
    if isinstance(exc, sa.exc.DBAPIError):
        return database_unavailable(exc)
    return isinstance(exc, (OSError, TimeoutError, KafkaError, sa.exc.TimeoutError, sa.exc.DisconnectionError))


def safe_reason(exc: BaseException) -> str:
    if isinstance(exc, PermanentEventError):
        return str(exc)[:500]
    return type(exc).__name__


@dataclass
class _Item:
    record: object
    event: Event


class _Stopping(Exception):
    pass


# The ids inserted come back as one array (one row to read, not one per event).
_RECORD_PROCESSED_ARRAYS = sa.text(
    "WITH inserted AS (INSERT INTO processed_event (event_id, consumer_group, event_type, processed_at) "
    "SELECT event_id, :group, event_type, :at FROM unnest(:ids, :types) AS u(event_id, event_type) "
    "ON CONFLICT (event_id, consumer_group) DO NOTHING RETURNING event_id) "
    "SELECT array_agg(event_id) FROM inserted").bindparams(
    sa.bindparam("ids", type_=postgresql.ARRAY(sa.String())),
    sa.bindparam("types", type_=postgresql.ARRAY(sa.String())), sa.bindparam("group", type_=sa.String()),
    sa.bindparam("at", type_=sa.DateTime(timezone=True)))


@dataclass
class _Partition:
    """A partition's fetched records not applied yet, in offset order, and the task applying them."""
    records: deque = field(default_factory=deque)
    worker: asyncio.Task | None = None


def take(records: deque, size: int) -> list:
    """The next batch: at most `size` records from the left of `records`."""
    return [records.popleft() for _ in range(min(size, len(records)))]


class EventConsumer:
    def __init__(self, *, service: str, group_id: str, topics_: list[str], handlers: Mapping[str, Handler],
                 database: Database, producer: AIOKafkaProducer, bootstrap_servers: KafkaConnection,
                 batch_size: int = 500, max_attempts: int = 3, session_timeout_ms: int = 6000,
                 fetch_max_wait_ms: int = 100) -> None:
        self.service = service
        self.group_id = group_id
        self.topics = topics_
        self.handlers = dict(handlers)
        self.database = database
        self.producer = producer
        self.bootstrap_servers = bootstrap_servers
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.session_timeout_ms = session_timeout_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.joined = False
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False  # the run ends: stop() called, or a failure (then `_supervise` starts anew)
        self._closing = False  # stop() called
        self._processed = database.tables.processed_event
        self._lag: dict[TopicPartition, int] = {}
        self._partitions: dict[TopicPartition, _Partition] = {}
        # A partition holding this many fetched records is paused (not fetched) until its worker catches up.
        self._queue_limit = 4 * batch_size
        self._failure: BaseException | None = None
        p = self._processed
        self._recorded = upsert(database.dialect, p).on_conflict_do_nothing(
            index_elements=[p.c.event_id, p.c.consumer_group]).returning(p.c.event_id)
        # Batches of several partitions applied at once: PostgreSQL only, and only if every handler allows it.
        self._partitions_apart = database.dialect == "postgresql" and all(
            getattr(handler, "partitions_apart", False) for handler in self.handlers.values())
        self._serial = nullcontext() if self._partitions_apart else asyncio.Lock()
        # What consecutive events share a call by: their handler when it takes any of its types, else their type.
        self._run_keys = {event_type: handler if getattr(handler, "takes_any_types", False) else event_type
                          for event_type, handler in self.handlers.items()}

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name=f"consumer-{self.group_id}")

    async def _connect(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **connection_kwargs(self.bootstrap_servers),  # the address, or the settings with the security
            group_id=self.group_id,
            client_id=f"{self.service}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A dead instance's partitions move to the others after this long without heartbeats.
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(self.session_timeout_ms // 6, 500),
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        consumer = self

        class _Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                for tp in revoked:
                    consumer._lag.pop(tp, None)
                await consumer._release(revoked)

            async def on_partitions_assigned(self, assigned):
                consumer.joined = True
                log.info("partitions_assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))

        self._consumer.subscribe(self.topics, listener=_Listener())
        try:
            await self._consumer.start()
        except BaseException:
            await self._consumer.stop()
            raise

    async def _supervise(self) -> None:
        """Run; after a failure nothing in `_run` could handle (a bug, not a bad event nor an outage, which are
        handled there), leave the group and join again: the batches not committed are fetched again from the
        committed offsets and their events already applied are skipped, as after any redelivery."""
        backoff = 1.0
        while True:
            try:
                await self._run()
                return
            except Exception as exc:
                if self._closing:
                    return
                log.error("consumer_failed_restarting", group=self.group_id, error_type=type(exc).__name__,
                          error=str(exc)[:300], backoff_seconds=backoff)
            self.joined = False
            assert self._consumer is not None
            try:
                await self._consumer.stop()
            except Exception as exc:
                log.warning("consumer_stop_failed", group=self.group_id, error_type=type(exc).__name__)
            self._partitions.clear()
            self._lag.clear()
            self._failure = None
            while not self._closing:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                try:
                    await self._connect()
                    break
                except Exception as exc:
                    log.warning("consumer_start_failed", group=self.group_id, error_type=type(exc).__name__)
            if self._closing:
                return
            self._stopping = False

    async def stop(self) -> None:
        self._closing = self._stopping = True
        if self._task:
            # Let the batch in hand finish; an interrupted one is rolled back and redelivered anyway.
            done, _ = await asyncio.wait({self._task}, timeout=5.0)
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()

    @property
    def behind(self) -> bool:
        """Whether it is catching up with a backlog: more than a batch of fetched events waiting, or events left
        on the broker behind its last commits (as far as the last fetches told the partitions' end)."""
        waiting = sum(len(partition.records) for partition in self._partitions.values())
        return waiting > self.batch_size or any(self._lag.values())

    @property
    def ready(self) -> bool:
        return self.joined and self._task is not None and not self._task.done()

    async def _run(self) -> None:
        """Fetch, and hand each partition's records to that partition's worker: the partitions are applied
        apart (side by side with `partitions_apart`, else one batch at a time), each in offset order, and the
        next records are fetched meanwhile; a partition whose worker is `_queue_limit` records behind is
        paused until it catches up."""
        assert self._consumer is not None
        try:
            while not self._stopping:
                try:
                    # Everything the client holds: its buffers empty, it fetches the next records at once.
                    fetched = await self._consumer.getmany(timeout_ms=500)
                except KafkaError as exc:
                    log.warning("consumer_fetch_failed", error_type=type(exc).__name__)
                    await asyncio.sleep(1.0)
                    continue
                for tp, records in fetched.items():
                    self._queue(tp, records)
            if self._failure is not None:
                raise self._failure
        finally:
            # The batches in hand finish (each worker stops after its batch once stopping or failed).
            self._stopping = True
            workers = [p.worker for p in self._partitions.values() if p.worker is not None]
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)

    def _queue(self, tp: TopicPartition, records: list) -> None:
        assert self._consumer is not None
        partition = self._partitions.get(tp)
        if partition is None:
            partition = self._partitions[tp] = _Partition()
        partition.records.extend(records)
        if len(partition.records) >= self._queue_limit:
            self._consumer.pause(tp)
        if partition.worker is None or partition.worker.done():
            partition.worker = asyncio.create_task(self._work(tp, partition),
                                                   name=f"consumer-{self.group_id}-{tp.topic}-{tp.partition}")

    async def _work(self, tp: TopicPartition, partition: _Partition) -> None:
        """Apply a partition's records a batch at a time, each committed (effects, then offset) before the
        next one starts, while the partition is still this consumer's (after a rebalance the rest is its new
        owner's)."""
        assert self._consumer is not None
        consumer = self._consumer
        records = partition.records
        try:
            while records and not self._stopping and self._partitions.get(tp) is partition:
                batch = take(records, self.batch_size)
                async with self._serial:
                    await self._handle(tp, batch)
                    await self._commit({tp: batch[-1].offset + 1})
                if len(records) < self._queue_limit and tp in consumer.paused():
                    consumer.resume(tp)
        except _Stopping:
            return
        except Exception as exc:
            # What `_handle` could not isolate: this run ends, and `_supervise` starts a new one.
            self._failure = exc
            self._stopping = True

    async def _release(self, revoked: list[TopicPartition]) -> None:
        """Partitions taken away by a rebalance: their fetched records are left to the new owner; the batch in
        hand commits first (at most half the session timeout is waited for)."""
        workers = []
        for tp in revoked:
            partition = self._partitions.pop(tp, None)
            if partition is None:
                continue
            partition.records.clear()
            if partition.worker is not None and not partition.worker.done():
                workers.append(partition.worker)
        if workers:
            await asyncio.wait(workers, timeout=self.session_timeout_ms / 2000)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The events are in the database already; whoever gets the partition skips them as processed.
            log.warning("offset_commit_failed", error_type=type(exc).__name__)
        assigned = self._consumer.assignment()
        for tp, position in offsets.items():
            if tp not in assigned:
                continue  # moved to another instance meanwhile: the lag is its new owner's to report
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                self._lag[tp] = max(highwater - position, 0)
                CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(self._lag[tp])

    async def _handle(self, tp: TopicPartition, records: list) -> None:
        items: list[_Item] = []
        for record in records:
            try:
                event = decode(record.headers, record.key, record.value)
            except (EventDecodeError, EventSchemaError) as exc:
                reason = "undecodable" if isinstance(exc, EventDecodeError) else "schema-invalid"
                detail = str(exc)
                await self._retrying(lambda: self._dead_letter(record, reason, detail))
                continue
            if event.type in self.handlers:
                items.append(_Item(record, event))
        if not items:
            return
        try:
            await self._retrying(lambda: self._apply(items))
        except _Stopping:
            raise
        except Exception as exc:
            # One of them cannot be applied: isolate it, each event in its own transaction.
            log.warning("batch_failed_isolating_events", events=len(items), error_type=type(exc).__name__)
            for item in items:
                await self._apply_alone(item)

    async def _retrying(self, operation: Callable[[], Awaitable[None]]) -> None:
        """Retry while the failure is transient (database or broker away); re-raise anything else."""
        backoff = 0.2
        while True:
            try:
                await operation()
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self._stopping:
                    raise _Stopping() from exc
                log.warning("consumer_transient_error", error_type=type(exc).__name__, backoff_seconds=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _apply(self, items: list[_Item]) -> None:
        durations: list[tuple[_Item, float]] = []
        async with self.database.transaction() as session:
            first: dict[str, _Item] = {}
            for item in items:
                first.setdefault(item.event.id, item)
            # The processed ids first, in one statement: an id already there (a redelivery, or another
            # instance that applied it meanwhile) is not inserted nor returned, its event not applied again.
            new = await self._record_processed(session, list(first.values()))
            todo = [item for item in first.values() if item.event.id in new]
            # Consecutive events of one type share a call when their handler takes batches (of any of its types:
            # consecutive events with that handler); order is kept.
            for _, run in groupby(todo, key=self._run_key):
                run = list(run)
                handler = self.handlers[run[0].event.type]
                started = time.perf_counter()
                if getattr(handler, "takes_batches", False):
                    await handler(session, [item.event for item in run])
                    each = (time.perf_counter() - started) / len(run)
                    durations += [(item, each) for item in run]
                    continue
                for item in run:
                    await handler(session, item.event)
                    durations.append((item, time.perf_counter() - started))
                    started = time.perf_counter()
        if durations:
            self._log_handled(durations)

    def _run_key(self, item: _Item) -> object:
        return self._run_keys[item.event.type]

    async def _record_processed(self, session: AsyncSession, items: list[_Item]) -> set[str]:
        """Insert the processed ids of `items` but those already there; returns the ids inserted."""
        now = datetime.now(UTC)
        if self.database.dialect == "postgresql":
            inserted = (await session.execute(_RECORD_PROCESSED_ARRAYS, {
                "ids": [item.event.id for item in items], "types": [item.event.type for item in items],
                "group": self.group_id, "at": now})).scalar_one()
            return set(inserted or ())
        return set((await session.execute(self._recorded, [
            {"event_id": item.event.id, "consumer_group": self.group_id, "event_type": item.event.type,
             "processed_at": now} for item in items])).scalars())

    async def _apply_alone(self, item: _Item) -> None:
        attempts = 0
        while True:
            try:
                await self._retrying(lambda: self._apply([item]))
                return
            except _Stopping:
                raise
            except Exception as exc:
                attempts += 1
                EVENTS_FAILED.labels(self.service, item.record.topic).inc()
                log.warning("event_failed", event_id=item.event.id, event_type=item.event.type,
                            topic=item.record.topic, partition=item.record.partition, offset=item.record.offset,
                            attempt=attempts, error_type=type(exc).__name__)
                if attempts >= self.max_attempts or isinstance(exc, PermanentEventError):
                    detail = safe_reason(exc)
                    await self._retrying(lambda: self._dead_letter(item.record, "handler-failed", detail))
                    return
                await asyncio.sleep(0.1 * attempts)

    async def _dead_letter(self, record, reason: str, detail: str) -> None:
        headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
        headers += [
            ("dlq_reason", reason.encode()),
            ("dlq_detail", detail[:1000].encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self.group_id.encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await (await self.producer.send(topics.dlq(record.topic), value=record.value, key=record.key,
                                        headers=headers))
        EVENTS_DEAD_LETTERED.labels(self.service, record.topic, reason).inc()
        log.warning("event_dead_lettered", topic=record.topic, partition=record.partition, offset=record.offset,
                    reason=reason, detail=detail[:300])

    def _log_handled(self, handled: list[tuple[_Item, float]]) -> None:
        """One line per committed batch; one per event at DEBUG."""
        first, last = handled[0][0].record, handled[-1][0].record
        EVENTS_CONSUMED.labels(self.service, first.topic).inc(len(handled))  # a batch is of one partition
        log.info("events_handled", events=len(handled), topic=first.topic, partition=first.partition,
                 first_offset=first.offset, last_offset=last.offset,
                 duration_ms=round(sum(duration for _, duration in handled) * 1000, 3))
        if log.is_enabled_for(logging.DEBUG):
            for item, duration in handled:
                record = item.record
                log.debug("event_handled", event_id=item.event.id, event_type=item.event.type,
                          topic=record.topic, partition=record.partition, offset=record.offset,
                          duration_ms=round(duration * 1000, 3))
