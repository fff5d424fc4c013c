"""Indicators computed from the facts, on SQLite and PostgreSQL: values, periods, duplicates, late events,
snapshots coalesced per transaction, and a rebuild from the facts equal to the incremental run."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa

from cpts_events.snp_dispatch import CareRequestReceived, PatientWithoutMtSeen
from cpts_indicators.domain.catalogue import catalogue
from cpts_indicators.domain.periods import PeriodKind, parse_period
from cpts_indicators.handlers import rebuild_snapshots
from cpts_indicators.queries import published_values

MARCH = parse_period(PeriodKind.MONTH, "2026-03")


async def values(database, period=MARCH, threshold=1, cpts_id="690049999"):
    async with database.sessions() as session:
        found = await published_values(session, cpts_id=cpts_id, periods=[period], threshold=threshold)
    return {v.definition.id: v for v in found}


async def test_the_indicators_of_a_month_follow_the_events(database, kit):
    scenario = kit.march()
    await kit.apply(database, scenario.events)
    found = await values(database)
    assert {k: found[k].total.value for k in scenario.expected} == scenario.expected
    assert set(found) == {d.id for d in catalogue().indicators}
    origins = found["snp.requests.received"].breakdowns["origin"]
    assert {c: cell.value for c, cell in origins.items()} == scenario.origins
    orientations = found["snp.requests.closed_without_slot"].breakdowns["orientation"]
    assert {c: cell.value for c, cell in orientations.items()} == {"pdsa": 2, "emergency_department": 2}
    shares = found["snp.requests.seen_within_24h_share"].breakdowns["origin"]
    assert shares["sas"].value == round(100 * 5 / 9, 1)  # requests 0-8 are the SAS ones: 2, 5, 10, 20, 23 h
    assert found["snp.slots.hours"].breakdowns["service_type"]["HH"].value == 10
    assert found["snp.requests.received"].total.last_event_time == kit.paris("2026-03-19T08:00")
    assert all(v.definition.version >= 1 for v in found.values())


async def test_the_other_cpts_of_a_member_counts_their_facts_too(database, kit):
    await kit.apply(database, kit.march().events)
    other = await values(database, cpts_id=kit.OTHER_CPTS)
    assert other["registry.members"].total.value == 1
    assert other["snp.requests.received"].total.value == 0


async def test_a_fact_at_local_midnight_belongs_to_the_period_starting_then(database, kit):
    # 31 March 2026 22:30 UTC is 1 April 00:30 in Paris (summer time since 29 March).
    events = [kit.at(CareRequestReceived(request_id=f"r{i}", origin="sas", cpts_id=kit.CPTS,
                                         commune_insee="69259", departement="69", urgency="24h",
                                         reason_category="x", has_mt=True, age_band="adult",
                                         received_at=moment), moment)
              for i, moment in enumerate([kit.paris("2026-03-31T23:59"), kit.paris("2026-04-01T00:30"),
                                          kit.paris("2026-03-01T00:00")])]
    await kit.apply(database, events)
    april = parse_period(PeriodKind.MONTH, "2026-04")
    assert (await values(database))["snp.requests.received"].total.value == 2
    assert (await values(database, april))["snp.requests.received"].total.value == 1
    week = parse_period(PeriodKind.WEEK, "2026-W14")  # Monday 30 March to Sunday 5 April
    assert (await values(database, week))["snp.requests.received"].total.value == 2


async def test_duplicates_never_count_twice_and_late_events_land_in_their_own_period(database, kit):
    scenario = kit.march()
    february = kit.paris("2026-02-10T10:00")
    late = kit.at(CareRequestReceived(request_id="late", origin="sas", cpts_id=kit.CPTS,
                                      commune_insee="69259", departement="69", urgency="48h",
                                      reason_category="x", has_mt=False, age_band="70+",
                                      received_at=february),
                  february)
    await kit.apply(database, scenario.events, per_transaction=7)
    await kit.apply(database, scenario.events[:40] + [late, late])
    february = parse_period(PeriodKind.MONTH, "2026-02")
    assert (await values(database))["snp.requests.received"].total.value == 18
    assert (await values(database))["registry.members"].total.value == 9
    assert (await values(database, february))["snp.requests.received"].total.value == 1


async def test_out_of_order_states_keep_the_latest_by_event_time(database, kit):
    scenario = kit.march()
    shuffled = scenario.events[:]
    random.Random(7).shuffle(shuffled)
    await kit.apply(database, shuffled, per_transaction=5)
    found = await values(database)
    assert {k: found[k].total.value for k in scenario.expected} == scenario.expected


async def test_small_counts_are_masked_with_their_ratios_and_breakdowns(database, kit):
    await kit.apply(database, kit.march().events)
    found = await values(database, threshold=6)
    noshow, rate = found["snp.appointments.noshow"].total, found["snp.appointments.noshow_rate"].total
    assert (noshow.value, noshow.masked, noshow.last_event_time) == (None, True, None)
    assert (rate.value, rate.masked) == (None, True)
    by_origin = found["snp.requests.received"].breakdowns["origin"]
    origins = {c: (cell.value, cell.masked) for c, cell in by_origin.items()}
    # 3 phone requests are masked; 6 referrals too, else 18 - 9 - 6 would give the 3 back.
    assert origins == {"sas": (9, False), "cpts_phone": (None, True), "member_referral": (None, True)}
    assert found["snp.requests.received"].total.value == 18
    assert found["snp.consultations.fulfilled"].total.value == 10
    assert found["snp.consultations.en_sus"].total.masked
    assert found["registry.population"].total.value == 62000  # a population, not a small cell


async def test_one_snapshot_per_cpts_and_period_per_transaction_only_when_the_published_content_changes(
        database, kit):
    scenario = kit.march()
    await kit.apply(database, scenario.events)
    sent = [json.loads(value) for kind, value in await kit.outbox(database)]
    keys = [(s["cpts_id"], s["period"], s["period_key"]) for s in sent]
    assert len(keys) == len(set(keys))  # coalesced: one per CPTS and period for the whole batch
    assert (kit.CPTS, "month", "2026-03") in keys and (kit.OTHER_CPTS, "month", "2026-01") in keys
    march_snapshot = next(s for s in sent if (s["cpts_id"], s["period_key"]) == (kit.CPTS, "2026-03"))
    cells = {i["indicator_id"]: i for i in march_snapshot["indicators"]}
    assert cells["snp.appointments.noshow"] == {
        "indicator_id": "snp.appointments.noshow", "version": 1, "unit": "rendez-vous", "value": None,
        "masked": True, "last_event_time": None, "breakdowns": [{"attribute": "kind", "cells": [
            {"category": "slot", "value": None, "masked": True, "last_event_time": None}]}]}
    assert cells["snp.requests.received"]["value"] == 18 and march_snapshot["final"] is False
    assert march_snapshot["small_cell_threshold"] == 6 and march_snapshot["sequence"] == 1

    # A second patient without MT seen: 1 -> 2, masked before and after: nothing published changes, none sent.
    before = len(await kit.outbox(database))
    seen = next(e for e in scenario.events if e.type == PatientWithoutMtSeen.__event_type__)
    await kit.apply(database, [replace(seen, id="another-seen-event")])
    assert len(await kit.outbox(database)) == before
    # A 19th request moves a published total: one new snapshot of March, the next in sequence.
    extra = kit.at(CareRequestReceived(
        request_id="extra", origin="cpts_phone", cpts_id=kit.CPTS, commune_insee="69259", departement="69",
        urgency="24h", reason_category="x", has_mt=True, age_band="adult",
        received_at=kit.paris("2026-03-25T10:00")), kit.paris("2026-03-25T10:00"))
    await kit.apply(database, [extra])
    after = [json.loads(v) for _, v in (await kit.outbox(database))[before:]]
    assert [(s["period_key"], s["sequence"]) for s in after] == [("2026-03", 2)]
    received = next(i for i in after[0]["indicators"] if i["indicator_id"] == "snp.requests.received")
    assert received["value"] == 19


async def test_a_rebuild_from_the_facts_equals_the_incremental_values_and_snapshots(database, kit, tmp_path):
    scenario = kit.march()
    await kit.apply(database, scenario.events, per_transaction=3)
    incremental = await values(database, threshold=6)
    cpts, recomputed, sent = await rebuild_snapshots(database=database, kinds=[PeriodKind.MONTH], threshold=6)
    assert cpts == 2 and recomputed > 0 and sent == 0

    # The same events in another order, all at once, into an empty database: same values, same snapshots.
    from cpts_indicators.app import service
    from cpts_platform.db import Database
    from cpts_platform.migrations import upgrade

    if database.dialect == "sqlite":
        other = Database(f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}", service.tables)
    else:
        other = database  # on PostgreSQL, compare against the same facts replayed over an emptied schema
        async with database.transaction() as session:
            snapshots_before = (await session.execute(sa.text(
                "SELECT cpts_id, period_key, digest FROM indicator_snapshot ORDER BY 1, 2"))).all()
            await session.execute(sa.text("DELETE FROM indicator_fact"))
            await session.execute(sa.text("DELETE FROM indicator_snapshot"))
    if database.dialect == "sqlite":
        async with database.sessions() as session:
            snapshots_before = (await session.execute(sa.text(
                "SELECT cpts_id, period_key, digest FROM indicator_snapshot ORDER BY 1, 2"))).all()
        await upgrade(other, service.migrations, service.metadata)
    shuffled = scenario.events[::-1]
    await kit.apply(other, shuffled)
    rebuilt = await values(other, threshold=6)
    async with other.sessions() as session:
        snapshots_after = (await session.execute(sa.text(
            "SELECT cpts_id, period_key, digest FROM indicator_snapshot ORDER BY 1, 2"))).all()
    if other is not database:
        await other.dispose()
    assert {k: (v.total, v.breakdowns) for k, v in rebuilt.items()} == \
        {k: (v.total, v.breakdowns) for k, v in incremental.items()}
    assert snapshots_after == snapshots_before


async def test_the_identity_of_a_patient_without_mt_never_reaches_the_tables(database, kit):
    await kit.apply(database, kit.march().events)
    dump = ""
    async with database.sessions() as session:
        for table in ("indicator_fact", "indicator_snapshot", "outbox_event"):
            dump += str((await session.execute(sa.text(f"SELECT * FROM {table}"))).all())
    assert "seen_in_snp" in dump or "patient_without_mt" in dump
    for secret in ("Zorglub", "Ninon", "0600000000", "280056912345678", "1980-05-04"):
        assert secret not in dump


async def test_periods_of_every_kind_give_consistent_counts(database, kit):
    await kit.apply(database, kit.march().events)
    weeks = [parse_period(PeriodKind.WEEK, f"2026-W{n:02d}") for n in range(10, 13)]
    days = [parse_period(PeriodKind.DAY, f"2026-03-{d:02d}") for d in range(1, 32)]
    async with database.sessions() as session:
        by_day = await published_values(session, cpts_id=kit.CPTS, periods=days, threshold=1,
                                        ids=["snp.requests.received"])
        quarter = parse_period(PeriodKind.QUARTER, "2026-Q1")
        by_quarter = await published_values(session, cpts_id=kit.CPTS, periods=[quarter], threshold=1,
                                            ids=["snp.requests.received", "registry.members"])
        by_week = await published_values(session, cpts_id=kit.CPTS, periods=weeks, threshold=1,
                                         ids=["snp.requests.received"])
    assert sum(v.total.value for v in by_day) == 18
    assert [v.total.value for v in by_quarter] == [9, 18]  # catalogue order: members, then requests
    assert [v.period.key for v in by_week] == ["2026-W10", "2026-W11", "2026-W12"]
    assert [v.total.value for v in by_week] == [7, 7, 4]  # 2-8, 9-15, 16-19 March
    assert weeks[0].start == kit.paris("2026-03-02T00:00") and days[0].end == kit.paris("2026-03-02T00:00")
    assert timedelta(hours=23) == days[28].end - days[28].start  # 29 March: summer time


async def test_mission_1a_follows_the_list_of_patients_without_mt(database, kit):
    from datetime import date

    from cpts_events import patient_matching as m

    groups = {1: "ald", 2: "ald", 3: "ald", 4: "70+", 5: "70+", 6: "c2s", 7: "none", 8: "none", 9: "ald"}

    def patient(n: int) -> dict:
        return dict(patient_id=f"p-{n}", cpts_id=kit.CPTS, commune_insee="69259", age_band="adult",
                    priority_group=groups[n], source="guichet" if n % 2 else "snp",
                    enrolled_on=date(2026, 2, n))

    def proposal(n: int) -> dict:
        return dict(patient(n), proposal_id=f"prop-{n}", idnps=kit.gp(n % 3 + 1), round_id="round-1",
                    distance_km=2.5, made_at=kit.paris("2026-03-02T09:00"))

    def on(when: str, payload) -> object:
        return kit.at(payload, kit.paris(when))

    events = [on(f"2026-02-{n:02d}T10:00", m.PatientEnrolled(**patient(n), enrolled_at=kit.paris(
        f"2026-02-{n:02d}T10:00"))) for n in range(1, 9)]
    events.append(on("2026-03-10T10:00", m.PatientEnrolled(**patient(9),
                                                           enrolled_at=kit.paris("2026-03-10T10:00"))))
    deadline = kit.paris("2026-03-09T09:00")
    events += [on("2026-03-02T09:00", m.ProposalMade(**proposal(n), deadline=deadline))
               for n in (1, 2, 4, 6, 7)]
    for n, days in ((1, 20), (2, 30), (4, 40)):
        events.append(on("2026-03-04T09:00", m.ProposalAccepted(**proposal(n),
                                                                accepted_at=kit.paris("2026-03-04T09:00"))))
        events.append(on("2026-03-04T09:05", m.MtDeclared(
            **patient(n), idnps=kit.gp(n % 3 + 1), proposal_id=f"prop-{n}", waiting_days=days,
            declared_at=kit.paris("2026-03-04T09:05"))))
    events += [
        on("2026-03-05T09:00", m.ProposalDeclined(**proposal(6), declined_by="gp", reason="no_capacity",
                                                  declined_at=kit.paris("2026-03-05T09:00"))),
        on("2026-03-09T09:01", m.ProposalExpired(**proposal(7), deadline=deadline,
                                                 expired_at=kit.paris("2026-03-09T09:01"))),
        on("2026-03-12T10:00", m.PatientFoundElsewhere(**patient(5), waiting_days=35,
                                                       found_at=kit.paris("2026-03-12T10:00"))),
        on("2026-03-13T10:00", m.PatientWithdrawn(**patient(8), reason="moved_away", waiting_days=36,
                                                  withdrawn_at=kit.paris("2026-03-13T10:00"))),
    ]
    await kit.apply(database, events[::-1])  # any order: a record's state is its latest by event time
    found = await values(database)
    february = await values(database, parse_period(PeriodKind.MONTH, "2026-02"))
    expected = {
        "mt.patients.waiting": 4,  # 3, 6, 7 and 9
        "mt.patients.waiting.priority": 3,  # 3 and 9 (ALD), 6 (C2S)
        "mt.patients.enrolled": 1, "mt.patients.mt_declared": 3, "mt.patients.found_elsewhere": 1,
        "mt.patients.waiting_days_median": 30,
        "mt.general_practitioners.new_patients": 2,  # GP 2 took two of them
        "mt.proposals.made": 5, "mt.proposals.accepted": 3, "mt.proposals.answered": 5,
        "mt.proposals.acceptance_rate": 60.0,
    }
    assert {k: found[k].total.value for k in expected} == expected
    assert february["mt.patients.waiting"].total.value == 8
    waiting_groups = found["mt.patients.waiting"].breakdowns["priority_group"]
    assert {c: cell.value for c, cell in waiting_groups.items()} == {"ald": 2, "c2s": 1, "none": 1}


async def test_a_failing_snapshot_never_loses_the_facts(database, kit, monkeypatch):
    from cpts_indicators import snapshots

    def broken(*args, **kwargs):
        raise ValueError("a bug in the snapshots")

    monkeypatch.setattr(snapshots, "refresh_snapshots", broken)
    monkeypatch.setattr(snapshots, "compute_snapshots", broken)
    await kit.apply(database, kit.march().events)
    assert (await values(database))["snp.requests.received"].total.value == 18
    assert await kit.outbox(database) == []
    monkeypatch.undo()
    cpts, _, sent = await rebuild_snapshots(database=database, kinds=[PeriodKind.MONTH], threshold=6)
    assert cpts == 2 and sent > 0 and len(await kit.outbox(database)) == sent
