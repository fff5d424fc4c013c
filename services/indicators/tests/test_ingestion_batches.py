"""What the consumer's transaction does with a batch of facts: the periods they change (read before the
facts are written), the facts written in bulk as they are, and a failure to mark snapshots that leaves them
written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from cpts_events import registry as r
from cpts_events import snp_dispatch as s
from cpts_indicators import snapshots
from cpts_indicators.domain.facts import PROFESSIONAL_SCOPE, Fact
from cpts_indicators.domain.periods import PeriodKind, parse_period
from cpts_indicators.repository import facts_table, pending_table
from cpts_indicators.snapshots import _insert_facts, changed_periods

A, B = "690049999", "010000001"
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


async def test_the_periods_a_batch_changes_are_the_same_before_and_after_its_facts_are_written(database, kit):
    booked, fulfilled = s.AppointmentBooked.__event_type__, s.AppointmentFulfilled.__event_type__
    registered = r.ProfessionalRegistered.__event_type__
    earlier = [
        Fact("e1", A, booked, kit.paris("2026-01-10T09:00"), ref_time=kit.paris("2026-01-09T18:00"),
             entity="apt-1", subject=kit.gp(1), attributes={"kind": "slot"}),
        Fact("e2", A, registered, kit.paris("2025-12-01T09:00"), entity=kit.gp(1), subject=kit.gp(1),
             attributes={"status": "adherent"}),
    ]
    batch = [
        # A later state of the same appointment: January changes too (the entity leaves it).
        Fact("b1", A, fulfilled, kit.paris("2026-03-02T00:30"), ref_time=kit.paris("2026-01-09T18:00"),
             entity="apt-1", subject=kit.gp(1), attributes={"kind": "slot"}),
        # A professional who joins B in this very batch, and a fact about them.
        Fact("b2", B, registered, kit.paris("2026-03-03T10:00"), entity=kit.gp(2), subject=kit.gp(2),
             attributes={"status": "adherent"}),
        Fact("b3", PROFESSIONAL_SCOPE, r.SasParticipationChanged.__event_type__,
             kit.paris("2026-03-04T10:00"), entity=kit.gp(2), subject=kit.gp(2),
             attributes={"participating": True}),
        Fact("b4", A, s.CareRequestReceived.__event_type__, kit.paris("2026-02-28T23:30"), entity="req-9",
             attributes={"origin": "sas"}),
    ]
    kinds = [PeriodKind.MONTH, PeriodKind.DAY]
    async with database.transaction() as session:
        await session.run_sync(lambda sync: _insert_facts(sync, earlier, NOW))
    async with database.transaction() as session:
        before = await session.run_sync(lambda sync: changed_periods(sync, batch, kinds=kinds, now=NOW))
        await session.run_sync(lambda sync: _insert_facts(sync, batch, NOW))
        after = await session.run_sync(lambda sync: changed_periods(sync, batch, kinds=kinds, now=NOW))
    assert before == after
    month = {(c, p.key) for c, k, p in before if k is PeriodKind.MONTH}
    assert {(A, "2026-01"), (A, "2026-03"), (A, "2026-02"), (B, "2026-03")} <= month
    day = {(c, p.key) for c, k, p in before if k is PeriodKind.DAY}
    assert {(A, "2026-01-10"), (A, "2026-01-09"), (A, "2026-03-02"), (A, "2026-02-28")} <= day
    assert all(p == parse_period(k, p.key) for _, k, p in before)


async def test_facts_are_written_in_bulk_as_they_are_and_once(database):
    facts = [
        Fact("f1", A, s.CareRequestReceived.__event_type__,
             datetime(2026, 3, 1, 8, 15, 30, 123456, tzinfo=UTC), entity="req-1",
             attributes={"origin": "sas", "has_mt": True, "n": 1.5, "list": ["69", "01"]}),
        Fact("f2", PROFESSIONAL_SCOPE, r.ProfessionalUpdated.__event_type__, datetime(2026, 3, 2, tzinfo=UTC),
             ref_time=datetime(2026, 2, 1, 23, tzinfo=UTC), entity="x" * 80, subject="810100000001",
             attributes={}),
        Fact("f3", B, s.CareRequestReceived.__event_type__, datetime(2026, 3, 3, tzinfo=UTC)),
    ]
    for _ in range(2):
        async with database.transaction() as session:
            await session.run_sync(lambda sync: _insert_facts(sync, facts, NOW))
    f = facts_table
    async with database.sessions() as session:
        stored = (await session.execute(sa.select(f).order_by(f.c.event_id))).mappings().all()
    assert [dict(row) for row in stored] == [{**fact.row(), "recorded_at": NOW} for fact in facts]
    assert len(stored[1]["entity"]) == 64


async def test_a_failure_to_mark_the_snapshots_leaves_the_facts_written(database, kit, monkeypatch):
    def failing(session, targets):
        raise RuntimeError("marking failed")

    monkeypatch.setattr(snapshots, "mark_pending", failing)
    events = kit.march().events[:12]
    await kit.apply(database, events)
    async with database.sessions() as session:
        written = (await session.execute(
            sa.select(sa.func.count(sa.distinct(facts_table.c.event_id))))).scalar_one()
        marked = (await session.execute(sa.select(sa.func.count()).select_from(pending_table))).scalar_one()
    assert written == len(events) and marked == 0


async def test_a_fact_with_a_naive_time_is_refused(database):
    naive = Fact("n1", A, s.CareRequestReceived.__event_type__, datetime(2026, 3, 1, 8, 0))
    with pytest.raises((ValueError, sa.exc.StatementError), match="naive"):
        async with database.transaction() as session:
            await session.run_sync(lambda sync: _insert_facts(sync, [naive], NOW))


async def test_the_earlier_facts_of_a_batch_are_read_by_index_probes_however_small_the_table(database):
    """Over tens of thousands of facts, the planner prices a probe per pair as a random read from disk and
    would rather read the whole table and sort it, for every batch (28 ms against 2 ms for 440 pairs)."""
    if database.dialect != "postgresql":
        pytest.skip("a PostgreSQL plan")
    received = s.CareRequestReceived.__event_type__
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    facts = [Fact(f"e{i}", (A, B)[i % 2], received, at, entity=f"req-{i // 2}") for i in range(20_000)]
    async with database.transaction() as session:
        await session.run_sync(lambda sync: _insert_facts(sync, facts, NOW))
    async with database.sessions() as session:
        await session.execute(sa.text("ANALYZE indicator_fact"))
        pairs = [(fact.cpts_id, fact.entity) for fact in facts[::45]]
        plan = "\n".join((await session.execute(
            sa.text(f"EXPLAIN {snapshots._EARLIER_FACTS_BY_PAIRS.element.text}"),
            {"cpts_ids": [c for c, _ in pairs], "entities": [e for _, e in pairs]})).scalars())
        found = await session.run_sync(lambda sync: snapshots._earlier_times(sync, facts[::45]))
    assert "Index Scan using ix_indicator_fact_entity" in plan and "Seq Scan on indicator_fact" not in plan, plan
    assert len(found) == len(pairs) and all(days == {at.date()} for days in found.values())
