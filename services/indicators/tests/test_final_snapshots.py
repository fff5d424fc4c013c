"""Final snapshots: once per CPTS and closed period (Paris time), with an injected clock; a late event for a
closed period is still counted and sends a corrected snapshot, final too, with the next sequence number."""

from __future__ import annotations

import asyncio
import json

import sqlalchemy as sa

from cpts_events.snp_dispatch import CareRequestReceived
from cpts_indicators.domain.periods import PeriodKind, parse_period
from cpts_indicators.queries import published_values
from cpts_indicators.repository import pending_table
from cpts_indicators.snapshots import closed_periods_to_finalize, finalize_closed_periods, snapshot_worker
from cpts_platform.testing import eventually

MONTH = [PeriodKind.MONTH]


def request(kit, request_id: str, when: str, cpts_id: str | None = None):
    received = kit.paris(when)
    return kit.at(CareRequestReceived(
        request_id=request_id, origin="sas", cpts_id=cpts_id or kit.CPTS, commune_insee="69259",
        departement="69", urgency="24h", reason_category="x", has_mt=True, age_band="adult",
        received_at=received), received, "/cpts/snp-dispatch")


async def snapshots(kit, database, start: int = 0) -> list[dict]:
    return [json.loads(value) for _, value in (await kit.outbox(database))[start:]]


def received(snapshot: dict) -> float | None:
    return next(i["value"] for i in snapshot["indicators"] if i["indicator_id"] == "snp.requests.received")


async def test_a_period_is_final_once_closed_in_paris_time_and_only_once(database, kit):
    await kit.apply(database, kit.march().events)
    before = len(await kit.outbox(database))
    assert not any(s["final"] for s in await snapshots(kit, database))

    # 31 March, 23:59 in Paris (21:59 UTC): March is still open; January and February have closed.
    due = await finalize_closed_periods(database, now=kit.paris("2026-03-31T23:59"), kinds=MONTH, threshold=6)
    sent = await snapshots(kit, database, before)
    assert due == len(sent) and {(s["cpts_id"], s["period_key"]) for s in sent} == {
        (kit.CPTS, "2026-01"), (kit.CPTS, "2026-02"), (kit.OTHER_CPTS, "2026-01"),
        (kit.OTHER_CPTS, "2026-02")}
    assert all(s["final"] and s["sequence"] == 2 for s in sent)

    # Paris midnight: March closes; its final snapshot has the values sent before, with the next sequence.
    before = len(await kit.outbox(database))
    await finalize_closed_periods(database, now=kit.paris("2026-04-01T00:00"), kinds=MONTH, threshold=6)
    march = [s for s in await snapshots(kit, database, before) if s["cpts_id"] == kit.CPTS]
    assert [(s["period_key"], s["final"], s["sequence"]) for s in march] == [("2026-03", True, 2)]
    assert received(march[0]) == 18

    # Once only: a second sweep (another day, another instance) sends nothing.
    before = len(await kit.outbox(database))
    assert await finalize_closed_periods(database, now=kit.paris("2026-04-02T08:00"), kinds=MONTH,
                                         threshold=6) == 0
    assert len(await kit.outbox(database)) == before


async def test_a_late_event_for_a_closed_period_is_counted_and_corrects_its_final_snapshot(database, kit):
    await kit.apply(database, kit.march().events)
    await finalize_closed_periods(database, now=kit.paris("2026-04-01T00:05"), kinds=MONTH, threshold=6)
    before = len(await kit.outbox(database))

    await kit.apply(database, [request(kit, "late", "2026-03-30T18:00")])
    corrected = [s for s in await snapshots(kit, database, before) if s["period_key"] == "2026-03"]
    assert [(s["final"], s["sequence"], received(s)) for s in corrected] == [(True, 3, 19)]
    async with database.sessions() as session:
        values = await published_values(session, cpts_id=kit.CPTS, threshold=6,
                                        periods=[parse_period(PeriodKind.MONTH, "2026-03")])
    assert next(v for v in values if v.definition.id == "snp.requests.received").total.value == 19
    # The correction is already final: the next sweep has nothing to do for March.
    assert ("2026-03" not in {t[2].key for t in closed_periods_to_finalize(
        [(kit.CPTS, "month", "2026-03", True)], [], kinds=MONTH, now=kit.paris("2026-04-02T00:00"))})


async def test_closed_periods_without_events_get_their_final_snapshot_too(database, kit):
    # Only requests in March (no stock): snapshots were sent for March alone.
    await kit.apply(database, [request(kit, f"r{i}", f"2026-03-{10 + i}T09:00") for i in range(7)])
    assert {s["period_key"] for s in await snapshots(kit, database)} == {"2026-03"}
    before = len(await kit.outbox(database))
    await finalize_closed_periods(database, now=kit.paris("2026-06-15T12:00"), kinds=MONTH, threshold=6)
    sent = await snapshots(kit, database, before)
    assert [(s["period_key"], s["final"], received(s)) for s in sent] == [
        ("2026-03", True, 7), ("2026-04", True, 0), ("2026-05", True, 0)]


def test_which_periods_are_due_follows_paris_midnight():
    kinds = [PeriodKind.DAY, PeriodKind.MONTH]
    rows = [("690049999", "day", "2026-10-24", False), ("690049999", "day", "2026-10-25", False),
            ("690049999", "month", "2026-10", False), ("690049999", "day", "2026-10-23", True)]
    latest = [("690049999", "day", "2026-10-25"), ("690049999", "month", "2026-10")]
    # 25 October 2026 is the DST change: Paris midnight of the 26th is 23:00 UTC on the 25th.
    from datetime import UTC, datetime

    due = closed_periods_to_finalize(rows, latest, kinds=kinds, now=datetime(2026, 10, 25, 23, 0, tzinfo=UTC))
    assert [(k.value, p.key) for _, k, p in due] == [("day", "2026-10-24"), ("day", "2026-10-25")]
    due = closed_periods_to_finalize(rows, latest, kinds=kinds, now=datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    assert [(k.value, p.key) for _, k, p in due] == [
        ("day", "2026-10-24"), ("day", "2026-10-25"), ("day", "2026-10-26"), ("day", "2026-10-27"),
        ("day", "2026-10-28"), ("day", "2026-10-29"), ("day", "2026-10-30"), ("day", "2026-10-31"),
        ("month", "2026-10")]


async def test_the_worker_sends_final_snapshots_on_its_clock(database, kit):
    await kit.apply(database, [request(kit, f"r{i}", f"2026-03-{10 + i}T09:00") for i in range(7)])
    clock, reads = [kit.paris("2026-03-31T23:00")], []

    def now():
        reads.append(clock[0])
        return clock[0]

    worker = asyncio.create_task(snapshot_worker(database, 0.01, clock=now))
    try:
        async def rounds():
            return len(reads) >= 3

        await eventually(rounds)  # a few rounds (one sweep) before the period closes: nothing final
        assert not any(s["final"] for s in await snapshots(kit, database))
        clock[0] = kit.paris("2026-04-01T00:00")  # the Paris day changed: the worker sweeps at once

        async def final():
            return [s for s in await snapshots(kit, database) if s["final"]]

        sent = await eventually(final, timeout=10)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert [(s["period_key"], s["sequence"], received(s)) for s in sent] == [("2026-03", 2, 7)]


async def test_while_the_consumers_catch_up_with_a_backlog_the_worker_waits_at_most_its_delay(database, kit):
    """A pass recomputes each marked period from all its facts: during a backlog, it waits for the consumers to
    catch up, or for `max_delay` after the previous pass."""
    async def marked() -> int:
        async with database.sessions() as session:
            return (await session.execute(sa.select(sa.func.count()).select_from(pending_table))).scalar_one()

    backlog = [True]
    worker = asyncio.create_task(snapshot_worker(database, 0.01, backlog=lambda: backlog[0], max_delay=60))
    try:
        await kit.apply(database, [request(kit, "r1", "2026-03-10T09:00")], refresh=False)
        await asyncio.sleep(0.5)
        assert await marked() == 1 and not await snapshots(kit, database)
        backlog[0] = False  # caught up: the pass follows at once
        await eventually(lambda: _none(marked()), timeout=5)
        # (the same pass's final sweep may also send the closed months after it)
        assert "2026-03" in {s["period_key"] for s in await snapshots(kit, database)}
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)

    backlog[0] = True
    worker = asyncio.create_task(snapshot_worker(database, 0.01, backlog=lambda: backlog[0], max_delay=0.5))
    try:
        await asyncio.sleep(0.7)  # the first pass, after `max_delay` of backlog
        await kit.apply(database, [request(kit, "r2", "2026-04-10T09:00")], refresh=False)
        await eventually(lambda: _none(marked()), timeout=5)  # the next one, `max_delay` later
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def _none(count) -> bool:
    return await count == 0
