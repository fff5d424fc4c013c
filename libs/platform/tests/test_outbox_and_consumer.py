"""The backbone on the real broker and both databases: outbox -> relay -> Kafka -> idempotent consumer."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from cpts_events import decode, encode, new_event, topics
from cpts_events.registry import MembershipChanged, ProfessionalRegistered
from cpts_platform.consumer import (
    EventConsumer,
    PermanentEventError,
    batch_handler,
    partitions_apart,
    take,
)
from cpts_platform.db import Database, add_platform_tables
from cpts_platform.kafka import ensure_topics, new_producer, platform_topics
from cpts_platform.metrics import EVENTS_CONSUMED
from cpts_platform.outbox import OutboxRelay, add_events, replay
from cpts_platform.testing import eventually

metadata = sa.MetaData()
tables = add_platform_tables(metadata)
effects = sa.Table(
    "effect", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idnps", sa.String(12), nullable=False),
)


def registered(n: int, cpts: str = "690049999") -> ProfessionalRegistered:
    return ProfessionalRegistered(idnps=f"8{n:011d}", family_name="Test", given_name="Pro", profession_code="10",
                                  cpts_ids=[cpts])


@pytest.fixture
async def database(database_url):
    db = Database(database_url, tables)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield db
    await db.dispose()


@pytest.fixture
async def producer(kafka_broker, topic_prefix):
    await ensure_topics(kafka_broker, [topic_prefix + t for t in platform_topics()])
    p = new_producer(kafka_broker, client_id="test")
    await p.start()
    yield p
    await p.stop()


async def read_topic(kafka_broker: str, topic: str, count: int, timeout: float = 15.0) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await consumer.start()
    records = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < count and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_committed_events_are_published_in_order_and_rolled_back_ones_never(
        database, producer, kafka_broker, topic_prefix):
    relay = OutboxRelay(service="test", database=database, producer=producer, poll_interval=0.05,
                        topic_prefix=topic_prefix)
    relay.start()
    try:
        events = [new_event(registered(1), source="/cpts/test") for _ in range(5)]
        async with database.transaction() as session:
            await add_events(session, database, events)
        with pytest.raises(RuntimeError):
            async with database.transaction() as session:
                await add_events(session, database, [new_event(registered(2), source="/cpts/test")])
                raise RuntimeError("domain change refused")
        records = await read_topic(kafka_broker, topic_prefix + topics.REGISTRY, 5)
    finally:
        await relay.stop()
    assert [decode(r.headers, r.key, r.value).id for r in records] == [e.id for e in events]
    headers = dict(records[0].headers)
    assert headers["ce_type"] == b"fr.cpts.registry.professional.registered.v1"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    assert records[0].key == b"800000000001"
    async with database.sessions() as session:
        pending = (await session.execute(
            sa.select(sa.func.count()).where(tables.outbox.c.published_at.is_(None)))).scalar_one()
        total = (await session.execute(sa.select(sa.func.count()).select_from(tables.outbox))).scalar_one()
    assert (pending, total) == (0, 5)


async def test_replay_republishes_the_retained_history(database, producer, kafka_broker, topic_prefix):
    events = [new_event(registered(i), source="/cpts/test") for i in range(3)]
    async with database.transaction() as session:
        await add_events(session, database, events)
    assert await replay(database=database, producer=producer, topic_prefix=topic_prefix) == 3
    assert await replay(database=database, producer=producer, topic_prefix=topic_prefix) == 3
    records = await read_topic(kafka_broker, topic_prefix + topics.REGISTRY, 6)
    # Different keys land on different partitions: compare what arrived, not the interleaving.
    assert sorted(decode(r.headers, r.key, r.value).id for r in records) == sorted([e.id for e in events] * 2)


def consumer_for(database, producer, kafka_broker, topic_prefix, handler, **kwargs) -> EventConsumer:
    return EventConsumer(
        service="test", group_id=f"test-{uuid.uuid4().hex[:6]}", topics_=[topic_prefix + topics.REGISTRY],
        handlers={ProfessionalRegistered.__event_type__: handler}, database=database, producer=producer,
        bootstrap_servers=kafka_broker, **kwargs,
    )


async def insert_effect(session, event) -> None:
    await session.execute(sa.insert(effects).values(idnps=event.payload.idnps))


async def count_effects(database) -> int:
    async with database.sessions() as session:
        return (await session.execute(sa.select(sa.func.count()).select_from(effects))).scalar_one()


async def send_raw(producer: AIOKafkaProducer, topic: str, record) -> None:
    await (await producer.send(topic, value=record.value, key=record.key, headers=record.headers))


async def test_an_event_delivered_twice_is_applied_once(database, producer, kafka_broker, topic_prefix):
    topic = topic_prefix + topics.REGISTRY
    records = [encode(new_event(registered(i), source="/cpts/test")) for i in range(10)]
    for record in records + records[:4]:
        await send_raw(producer, topic, record)
    consumer = consumer_for(database, producer, kafka_broker, topic_prefix, insert_effect)
    await consumer.start()
    try:
        await eventually(lambda: _equals(count_effects(database), 10))
        await asyncio.sleep(0.5)
        assert await count_effects(database) == 10
    finally:
        await consumer.stop()


async def _equals(awaitable, expected):
    return (await awaitable) == expected


async def test_poison_messages_go_to_the_dlq_with_their_reason_and_the_consumer_goes_on(
        database, producer, kafka_broker, topic_prefix):
    topic = topic_prefix + topics.REGISTRY
    good = encode(new_event(registered(1), source="/cpts/test"))
    schema_invalid = encode(new_event(registered(2), source="/cpts/test"))
    bad_value = schema_invalid.value.replace(b'"800000000002"', b'"not-an-idnps"')
    fails = encode(new_event(registered(3), source="/cpts/test"))
    await (await producer.send(topic, value=b"\x00garbage", key=b"k", headers=[("ce_type", b"x")]))
    await (await producer.send(topic, value=bad_value, key=schema_invalid.key, headers=schema_invalid.headers))
    await send_raw(producer, topic, fails)
    await send_raw(producer, topic, good)

    async def handler(session, event):
        if event.payload.idnps == "800000000003":
            raise PermanentEventError("professional refused by the handler")
        await insert_effect(session, event)

    consumer = consumer_for(database, producer, kafka_broker, topic_prefix, handler)
    await consumer.start()
    try:
        await eventually(lambda: _equals(count_effects(database), 1))
        dead = await read_topic(kafka_broker, topics.dlq(topic), 3)
    finally:
        await consumer.stop()
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in dead)
    assert reasons == ["handler-failed", "schema-invalid", "undecodable"]
    for record in dead:
        headers = dict(record.headers)
        assert headers["dlq_original_topic"] == topic.encode()
        assert headers["dlq_original_partition"].isdigit()
        assert headers["dlq_original_offset"].isdigit()
    invalid = next(r for r in dead if dict(r.headers)["dlq_reason"] == b"schema-invalid")
    assert b"idnps" in dict(invalid.headers)["dlq_detail"]
    assert b"not-an-idnps" not in dict(invalid.headers)["dlq_detail"]
    assert invalid.value == bad_value


async def test_a_handler_failing_then_succeeding_is_retried_not_dead_lettered(
        database, producer, kafka_broker, topic_prefix):
    await send_raw(producer, topic_prefix + topics.REGISTRY, encode(new_event(registered(7), source="/t")))
    calls = {"n": 0}

    async def flaky(session, event):
        calls["n"] += 1
        if calls["n"] < 3:
            raise ValueError("not yet")
        await insert_effect(session, event)

    consumer = consumer_for(database, producer, kafka_broker, topic_prefix, flaky, max_attempts=5)
    await consumer.start()
    try:
        await eventually(lambda: _equals(count_effects(database), 1))
    finally:
        await consumer.stop()
    assert calls["n"] == 3


async def test_offsets_are_committed_so_a_restarted_consumer_does_not_reapply(
        database, producer, kafka_broker, topic_prefix):
    topic = topic_prefix + topics.REGISTRY
    for i in range(20):
        await send_raw(producer, topic, encode(new_event(registered(i), source="/t")))
    group = f"test-{uuid.uuid4().hex[:6]}"
    seen: list[str] = []

    async def handler(session, event):
        seen.append(event.id)
        await insert_effect(session, event)

    def make() -> EventConsumer:
        return EventConsumer(service="test", group_id=group, topics_=[topic],
                             handlers={ProfessionalRegistered.__event_type__: handler}, database=database,
                             producer=producer, bootstrap_servers=kafka_broker)

    first = make()
    await first.start()
    await eventually(lambda: _equals(count_effects(database), 20))
    await first.stop()
    second = make()
    await second.start()
    await send_raw(producer, topic, encode(new_event(registered(99), source="/t")))
    await eventually(lambda: _equals(count_effects(database), 21))
    await second.stop()
    assert len(seen) == 21


def effects_refusing(idnps: str, sizes: list[int] | None = None):
    """A batch handler inserting an effect per event, refusing for good a batch holding `idnps`; the sizes of
    the batches it is called with go to `sizes`."""

    @batch_handler
    async def handler(session, events):
        if sizes is not None:
            sizes.append(len(events))
        if any(e.payload.idnps == idnps for e in events):
            raise PermanentEventError("refused")
        await session.execute(sa.insert(effects), [{"idnps": e.payload.idnps} for e in events])

    return handler


async def test_a_batch_handler_gets_runs_of_events_and_a_poison_one_is_isolated(
        database, producer, kafka_broker, topic_prefix):
    topic = topic_prefix + topics.REGISTRY
    for i in range(30):
        await send_raw(producer, topic, encode(new_event(registered(i), source="/t")))
    sizes: list[int] = []
    handler = effects_refusing("800000000013", sizes)
    consumer = consumer_for(database, producer, kafka_broker, topic_prefix, handler)
    await consumer.start()
    try:
        await eventually(lambda: _equals(count_effects(database), 29))
        dead = await read_topic(kafka_broker, topics.dlq(topic), 1)
    finally:
        await consumer.stop()
    assert max(sizes) > 1
    assert decode(dead[0].headers, dead[0].key, dead[0].value).payload.idnps == "800000000013"
    assert dict(dead[0].headers)["dlq_detail"] == b"refused"


@pytest.mark.parametrize("any_types", [False, True])
async def test_a_batch_handler_of_any_types_gets_the_interleaved_types_in_one_run(
        database, producer, kafka_broker, topic_prefix, any_types):
    """One professional's registration and membership changes, interleaved on one partition: a batch handler
    gets runs of one type, or with `any_types` the events of both types together, in their order."""
    topic = topic_prefix + topics.REGISTRY
    events = [new_event(registered(1), source="/t")] + [
        new_event(registered(1), source="/t") if i % 2 else
        new_event(MembershipChanged(idnps=registered(1).idnps, cpts_id="690049999", status="active"), source="/t")
        for i in range(20)]
    for event in events:
        await send_raw(producer, topic, encode(event))
    calls: list[list[str]] = []

    @batch_handler(any_types=any_types)
    async def handler(session, batch):
        calls.append([event.id for event in batch])

    consumer = EventConsumer(
        service="test", group_id=f"test-{uuid.uuid4().hex[:6]}", topics_=[topic],
        handlers={ProfessionalRegistered.__event_type__: handler, MembershipChanged.__event_type__: handler},
        database=database, producer=producer, bootstrap_servers=kafka_broker)
    await consumer.start()
    try:
        async def all_handled():
            return sum(map(len, calls)) == len(events)

        await eventually(all_handled)
    finally:
        await consumer.stop()
    types = {event.id: event.type for event in events}
    assert [i for call in calls for i in call] == [event.id for event in events]
    mixed = [call for call in calls if len({types[i] for i in call}) > 1]
    if any_types:
        assert mixed and len(calls) < len(events) / 2
    else:
        assert not mixed and len(calls) >= len(events) - 1


async def test_partitions_apart_each_event_once_and_a_poison_one_isolated(
        database, producer, kafka_broker, topic_prefix):
    """A handler marked `partitions_apart` (batches of several partitions at once on PostgreSQL): every event
    is applied once whatever its partition, redeliveries skipped, a poison event dead-lettered alone."""
    topic = topic_prefix + topics.REGISTRY
    records = [encode(new_event(registered(i, cpts=f"69004999{i % 3}"), source="/t")) for i in range(60)]
    for record in records + records[:10]:
        await send_raw(producer, topic, record)

    handler = partitions_apart(effects_refusing("800000000013"))
    consumer = consumer_for(database, producer, kafka_broker, topic_prefix, handler)
    await consumer.start()
    try:
        await eventually(lambda: _equals(count_effects(database), 59))
        dead = await read_topic(kafka_broker, topics.dlq(topic), 1)
        await asyncio.sleep(0.5)
        assert await count_effects(database) == 59
    finally:
        await consumer.stop()
    async with database.sessions() as session:
        idnps = (await session.execute(sa.select(effects.c.idnps))).scalars().all()
        processed = (await session.execute(sa.select(sa.func.count()).select_from(tables.processed_event)
                                           )).scalar_one()
    assert len({r.partition for r in await read_topic(kafka_broker, topic, 70)}) > 1
    assert len(set(idnps)) == len(idnps) == 59 and processed == 59
    assert dict(dead[0].headers)["dlq_detail"] == b"refused"


class _Lines:
    """Stands for the consumer's logger: what it was told, at INFO (DEBUG off)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def info(self, event: str, **fields) -> None:
        self.lines.append((event, fields))

    warning = debug = info

    def is_enabled_for(self, level: int) -> bool:
        return False


async def test_one_log_line_per_batch_and_the_consumed_counter_moves_by_the_batch(
        database, producer, kafka_broker, topic_prefix, monkeypatch):
    from cpts_platform import consumer as consumer_module

    topic = topic_prefix + topics.REGISTRY
    for i in range(12):
        await send_raw(producer, topic, encode(new_event(registered(i), source="/t")))
    counter = EVENTS_CONSUMED.labels("test", topic)
    before = counter._value.get()
    logger = _Lines()
    monkeypatch.setattr(consumer_module, "log", logger)
    consumer = consumer_for(database, producer, kafka_broker, topic_prefix, insert_effect)
    await consumer.start()
    try:
        await eventually(lambda: _equals(count_effects(database), 12))
    finally:
        await consumer.stop()
    handled = [fields for event, fields in logger.lines if event == "events_handled"]
    assert sum(fields["events"] for fields in handled) == 12
    assert all(fields["last_offset"] >= fields["first_offset"] for fields in handled)
    assert not [event for event, _ in logger.lines if event == "event_handled"]
    assert counter._value.get() - before == 12


def test_at_debug_one_line_per_event_too(monkeypatch):
    from types import SimpleNamespace

    from cpts_platform import consumer as consumer_module

    logger = _Lines()
    logger.is_enabled_for = lambda level: True
    monkeypatch.setattr(consumer_module, "log", logger)
    event = new_event(registered(1), source="/t")
    handled = [(SimpleNamespace(record=SimpleNamespace(topic="t", partition=0, offset=offset), event=event),
                0.001) for offset in (4, 5)]
    EventConsumer._log_handled(SimpleNamespace(service="test-debug"), handled)
    assert [event for event, _ in logger.lines] == ["events_handled", "event_handled", "event_handled"]
    assert logger.lines[0][1]["first_offset"] == 4 and logger.lines[0][1]["last_offset"] == 5


def test_a_partitions_records_are_taken_in_batches_in_offset_order():
    records = deque(range(7))
    assert [take(records, 3) for _ in range(3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert not records and take(records, 3) == []


async def test_behind_while_a_backlog_is_caught_up_and_not_once_it_is(
        database, producer, kafka_broker, topic_prefix):
    """`behind` (what the indicators' snapshot worker waits on): true while more than a batch of events waits,
    false once every event is applied."""
    topic = topic_prefix + topics.REGISTRY
    for i in range(120):
        await send_raw(producer, topic, encode(new_event(registered(i), source="/t")))
    seen: list[bool] = []
    sizes: list[int] = []

    @batch_handler
    async def handler(session, events):
        seen.append(consumer.behind)
        sizes.append(len(events))
        await session.execute(sa.insert(effects), [{"idnps": e.payload.idnps} for e in events])

    consumer = consumer_for(database, producer, kafka_broker, topic_prefix, handler, batch_size=10)
    assert not consumer.behind
    await consumer.start()
    try:
        await eventually(lambda: _equals(count_effects(database), 120))
        await eventually(lambda: _false(consumer.behind))
    finally:
        await consumer.stop()
    assert seen[0] and max(sizes) <= 10


async def _false(value: bool) -> bool:
    return not value


async def test_a_partition_far_behind_is_paused_until_its_worker_catches_up_and_kept_in_order(
        database, producer, kafka_broker, topic_prefix):
    """A partition whose worker holds four batches not applied is not fetched until the worker catches up (its
    memory stays bounded); its events are still applied once each, in offset order."""
    topic = topic_prefix + topics.REGISTRY
    events = [new_event(registered(i), source="/t") for i in range(120)]
    for event in events:
        record = encode(event)
        # One key: one partition.
        await (await producer.send(topic, value=record.value, key=b"same", headers=record.headers))
    applied: list[str] = []
    paused: list[bool] = []

    @batch_handler
    async def handler(session, batch):
        paused.append(bool(consumer._consumer.paused()))
        applied.extend(e.payload.idnps for e in batch)
        await session.execute(sa.insert(effects), [{"idnps": e.payload.idnps} for e in batch])

    consumer = consumer_for(database, producer, kafka_broker, topic_prefix, handler, batch_size=5)
    await consumer.start()
    try:
        await eventually(lambda: _equals(count_effects(database), 120))
        await eventually(lambda: _false(consumer.behind))
        assert not consumer._consumer.paused()
    finally:
        await consumer.stop()
    assert applied == [e.payload.idnps for e in events]
    assert paused[0] and not paused[-1]


async def test_a_second_instance_takes_partitions_over_and_every_event_is_applied_once(
        database, producer, kafka_broker, topic_prefix):
    """Two instances of a group: the second joins while the first applies a backlog; the partitions it takes
    are left by the first after its batch in hand, and every event is applied once."""
    topic = topic_prefix + topics.REGISTRY
    events = [new_event(registered(i), source="/t") for i in range(300)]
    for event in events:
        await send_raw(producer, topic, encode(event))
    group = f"test-{uuid.uuid4().hex[:6]}"
    applied_by: dict[str, list[str]] = {"first": [], "second": []}

    def make(name: str) -> EventConsumer:
        @partitions_apart
        @batch_handler
        async def handler(session, batch):
            await asyncio.sleep(0.05)  # a backlog that takes a while
            applied_by[name].extend(e.payload.idnps for e in batch)
            await session.execute(sa.insert(effects), [{"idnps": e.payload.idnps} for e in batch])

        return EventConsumer(service="test", group_id=group, topics_=[topic],
                             handlers={ProfessionalRegistered.__event_type__: handler}, database=database,
                             producer=producer, bootstrap_servers=kafka_broker, batch_size=5)

    first, second = make("first"), make("second")
    await first.start()
    try:
        await eventually(lambda: _at_least(count_effects(database), 20))
        await second.start()
        await eventually(lambda: _equals(count_effects(database), 300), timeout=60)
        await asyncio.sleep(0.5)
    finally:
        await second.stop()
        await first.stop()
    async with database.sessions() as session:
        idnps = (await session.execute(sa.select(effects.c.idnps))).scalars().all()
    assert len(idnps) == len(set(idnps)) == 300
    assert applied_by["second"], "the second instance got no partition"


async def _at_least(awaitable, expected: int) -> bool:
    return (await awaitable) >= expected


async def test_an_instance_whose_partitions_moved_during_a_long_batch_goes_on_consuming(
        database, producer, kafka_broker, topic_prefix):
    """A batch that outlasts the wait of a rebalance: its partition belongs to the other instance when it
    commits. The commit is refused, the events are already applied (the new owner skips them), and the first
    instance stays in the group: it takes partitions over again when the second leaves."""
    topic = topic_prefix + topics.REGISTRY
    events = [new_event(registered(i), source="/t") for i in range(60)]
    for event in events:
        await send_raw(producer, topic, encode(event))
    group = f"test-{uuid.uuid4().hex[:6]}"
    slow = asyncio.Event()

    def make(name: str) -> EventConsumer:
        @batch_handler
        async def handler(session, batch):
            if name == "first" and not slow.is_set():
                slow.set()
                await asyncio.sleep(5)  # longer than the 1.5 s a rebalance waits for the batch in hand
            await session.execute(sa.insert(effects), [{"idnps": e.payload.idnps} for e in batch])

        return EventConsumer(service="test", group_id=group, topics_=[topic],
                             handlers={ProfessionalRegistered.__event_type__: handler}, database=database,
                             producer=producer, bootstrap_servers=kafka_broker, batch_size=5,
                             session_timeout_ms=3000)

    first, second = make("first"), make("second")
    await first.start()
    try:
        await asyncio.wait_for(slow.wait(), 30)
        await second.start()
        await eventually(lambda: _equals(count_effects(database), 60), timeout=60)
        await asyncio.sleep(5)
        assert first.ready, "the first instance stopped consuming"
        await second.stop()
        more = [new_event(registered(100 + i), source="/t") for i in range(20)]
        for event in more:
            await send_raw(producer, topic, encode(event))
        await eventually(lambda: _equals(count_effects(database), 80), timeout=60)
    finally:
        await second.stop()
        await first.stop()
    async with database.sessions() as session:
        idnps = (await session.execute(sa.select(effects.c.idnps))).scalars().all()
    assert len(idnps) == len(set(idnps)) == 80


async def test_a_consumer_failing_unexpectedly_joins_again_and_applies_every_event_once(
        database, producer, kafka_broker, topic_prefix):
    """A failure nothing in the consumer handles (here its first offset commit raises): it leaves the group,
    joins again, and the batch whose offset was not committed is skipped as already applied."""
    topic = topic_prefix + topics.REGISTRY
    for i in range(30):
        await send_raw(producer, topic, encode(new_event(registered(i), source="/t")))
    consumer = consumer_for(database, producer, kafka_broker, topic_prefix, insert_effect, batch_size=5)
    commit = consumer._commit
    failures = []

    async def failing_once(offsets):
        if not failures:
            failures.append(offsets)
            raise RuntimeError("unexpected")
        await commit(offsets)

    consumer._commit = failing_once
    await consumer.start()
    try:
        await eventually(lambda: _equals(count_effects(database), 30), timeout=60)
        await eventually(lambda: _true(consumer.ready), timeout=30)
        for i in range(30, 40):
            await send_raw(producer, topic, encode(new_event(registered(i), source="/t")))
        await eventually(lambda: _equals(count_effects(database), 40), timeout=60)
    finally:
        await consumer.stop()
    assert failures
    async with database.sessions() as session:
        idnps = (await session.execute(sa.select(effects.c.idnps))).scalars().all()
    assert len(idnps) == len(set(idnps)) == 40


async def _true(value: bool) -> bool:
    return value
