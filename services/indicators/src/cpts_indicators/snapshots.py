"""Snapshots for the ARS: the indicators of a CPTS and period sent on the `indicators` topic when they change.

The consumer records the new facts of a transaction in the session; just before it commits, the periods those
facts change are recomputed, once per CPTS and period however many events the batch held, and a snapshot is
written to the outbox (same transaction) when its published, masked content differs from the last one sent.

Which periods a fact changes: the periods of its event time and ref time; for a fact read as a stock
(memberships, professions, SAS participation, territory), every period from its own to the current one and
any later one already sent; for a fact about a professional, in each CPTS they have been a member of; and
the periods of the earlier facts of the same entity (a later state can move it from one period to another).

Concurrent transactions (several instances) lock the snapshot rows of their CPTS and periods, in key order,
before computing: the last to commit computes after the others committed, so the last snapshot sent always
includes every fact.

Final snapshots: once a period has closed (Paris time: a day after its midnight, a month after its last day),
the worker (`finalize_closed_periods`, every `FINAL_SWEEP_SECONDS` and whenever the Paris day changes) sends,
once per CPTS and closed period, a snapshot with `final` true: for every closed period with a snapshot not yet
final, and for the closed periods after a CPTS's last snapshot that no event touched (its stocks, such as its
members, still have values). The snapshot row keeps `final`: a late event for a period already final is still
counted (API, series, exports) and, when it changes the published content, sends a corrected snapshot that is
final too, with the next sequence number: the ARS keeps, per CPTS and period, the snapshot of highest sequence.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import defaultdict
from dataclasses import fields
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, Callable, Iterable

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import encode, new_event
from cpts_events.indicators import (
    IndicatorBreakdown,
    IndicatorBreakdownCell,
    IndicatorSnapshot,
    IndicatorValue,
)
from cpts_events.registry import MembershipChanged, ProfessionalRegistered
from cpts_indicators.domain.catalogue import Catalogue, catalogue
from cpts_indicators.domain.facts import PROFESSIONAL_SCOPE, Fact
from cpts_indicators.domain.masking import PublishedValue, publish
from cpts_indicators.domain.periods import (
    PARIS,
    Period,
    PeriodKind,
    local_day,
    parse_period,
    period_of_day,
    periods_from,
)
from cpts_indicators.queries import evaluate
from cpts_indicators.repository import facts_table, pending_table, snapshots_table, tables
from cpts_indicators.settings import current_settings
from cpts_platform.consumer import is_transient
from cpts_platform.db import Database, UtcDateTime, one_of, upsert
from cpts_platform.logging import get_logger

log = get_logger(__name__)

SOURCE = "/cpts/indicators"
SNAPSHOT_SHARE = 0.2  # at most this share of the process's time goes to snapshots while events pour in
FINAL_SWEEP_SECONDS = 60.0
PENDING_FACTS = "indicators.pending_facts"
UNWRITTEN_FACTS = "indicators.unwritten_facts"
RECORDED_AT = "indicators.recorded_at"
MEMBERSHIP_EVENTS = (ProfessionalRegistered.__event_type__, MembershipChanged.__event_type__)

Target = tuple[str, PeriodKind, Period]


def track_new_facts(session: AsyncSession, facts: list[Fact], *, now: datetime | None = None) -> None:
    """Queue facts for this transaction: they are inserted in bulk (a few statements whatever the number of
    handler calls) and their periods marked for a snapshot, just before it commits. The facts of a transaction
    are recorded at one time, that of the first queued."""
    if not facts:
        return
    pending = session.info.get(PENDING_FACTS)
    if pending is None:
        pending = session.info[PENDING_FACTS] = []
        session.info[UNWRITTEN_FACTS] = []
        session.info[RECORDED_AT] = now or datetime.now(UTC)
        sa.event.listen(session.sync_session, "before_commit", _before_commit, once=True)
    pending.extend(facts)
    session.info[UNWRITTEN_FACTS].extend(facts)


def write_pending_facts(session: Session) -> None:
    """Insert the facts queued in this transaction (before a query that must see them, and before commit)."""
    unwritten = session.info.get(UNWRITTEN_FACTS)
    if not unwritten:
        return
    session.info[UNWRITTEN_FACTS] = []
    _insert_facts(session, unwritten, session.info[RECORDED_AT])


def _recordset_type(column: sa.Column) -> str:
    # Strings as text: one too long for its column is refused by the insert, not cut short by a cast.
    compiled = column.type.compile(dialect=postgresql.dialect())
    return "text" if compiled.startswith("VARCHAR") else compiled


_FACT_COLUMNS = [c.name for c in facts_table.c]
# The facts as one JSON document, each as orjson writes a `Fact` (its fields); the time they were recorded as
# one parameter for the whole statement.
_RECORDED_AT = "recorded_at"
_FACT_FIELDS = [c for c in facts_table.c if c.name != _RECORDED_AT]
_FACT_RECORDSET = sa.text(
    f"INSERT INTO {facts_table.name} ({', '.join(_FACT_COLUMNS)}) SELECT "
    + ", ".join("CAST(:recorded_at AS timestamptz)" if name == _RECORDED_AT else name for name in _FACT_COLUMNS)
    + " FROM json_to_recordset(CAST(:rows AS json)) AS u("
    + ", ".join(f"{c.name} {_recordset_type(c)}" for c in _FACT_FIELDS)
    + ") ON CONFLICT (event_id, cpts_id) DO NOTHING").bindparams(
    sa.bindparam("rows", type_=sa.Text()), sa.bindparam("recorded_at", type_=UtcDateTime()))
if {f.name for f in fields(Fact)} != {c.name for c in _FACT_FIELDS}:
    raise RuntimeError("a Fact is written field by field: its fields must be the fact table's columns")


def _insert_facts(session: Session, facts: list[Fact], recorded_at: datetime) -> None:
    """Insert facts recorded at `recorded_at`; a fact already there (same event and CPTS) is left."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # One statement per chunk, the facts as one JSON document (encoded by orjson, read by the server): one
        # plan, and no per-value encoding on this side.
        for fact in facts:
            if fact.event_time.tzinfo is None or (fact.ref_time is not None and fact.ref_time.tzinfo is None):
                raise ValueError("naive datetime: the platform stores aware UTC timestamps only")
        for chunk in _chunks(facts, 5000):
            session.execute(_FACT_RECORDSET, {"rows": orjson.dumps(chunk).decode(), "recorded_at": recorded_at})
        return
    statement = _facts_upsert(dialect)
    for chunk in _chunks(facts, 1000):
        session.execute(statement, [{**fact.row(), "recorded_at": recorded_at} for fact in chunk])


@cache
def _facts_upsert(dialect: str) -> sa.Insert:
    return upsert(dialect, facts_table).on_conflict_do_nothing(
        index_elements=[facts_table.c.event_id, facts_table.c.cpts_id])


def _before_commit(session: Session) -> None:
    facts = session.info.pop(PENDING_FACTS, [])
    unwritten = session.info.pop(UNWRITTEN_FACTS, [])
    recorded_at = session.info.pop(RECORDED_AT, None)
    if not facts:
        return
    settings = current_settings()
    try:
        with session.begin_nested():
            # Read before the facts are written: only the earlier facts of their entities come back.
            targets = changed_periods(session, facts, kinds=settings.snapshot_periods)
            _insert_facts(session, unwritten, recorded_at)
            if settings.snapshot_interval_seconds > 0:
                mark_pending(session, targets)
            else:
                refresh_snapshots(session, targets, threshold=settings.small_cell_threshold,
                                  event_types={fact.event_type for fact in facts})
    except Exception as exc:
        if is_transient(exc):
            raise
        # The facts, rolled back with the savepoint, still commit (the values served are right);
        # `POST /indicators/snapshots/rebuild` resends.
        _insert_facts(session, unwritten, recorded_at)
        log.error("indicator_snapshots_failed", error_type=type(exc).__name__, facts=len(facts))


def mark_pending(session: Session, targets: Iterable[Target]) -> None:
    """Record that the snapshots of `targets` must be recomputed (by `refresh_pending`, soon after)."""
    now = datetime.now(UTC)
    ordered = sorted(targets, key=lambda t: (t[0], t[1].value, t[2].first_day))
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # One statement whatever the number of targets (a multi-row VALUES would be a new statement for each);
        # the rows locked in the order given, as two transactions marking the same periods must.
        for chunk in _chunks(ordered, 5000):
            session.execute(_MARK_ARRAYS, {"cpts_ids": [c for c, _, _ in chunk],
                                           "periods": [k.value for _, k, _ in chunk],
                                           "keys": [per.key for _, _, per in chunk], "at": now})
        return
    statement = _mark(dialect)
    for chunk in _chunks(ordered):
        session.execute(statement, [{"cpts_id": c, "period": k.value, "period_key": per.key, "marked_at": now}
                                    for c, k, per in chunk])


_MARK_ARRAYS = sa.text(
    f"INSERT INTO {pending_table.name} (cpts_id, period, period_key, marked_at) "
    "SELECT cpts_id, period, period_key, :at FROM unnest(CAST(:cpts_ids AS text[]), CAST(:periods AS text[]), "
    "CAST(:keys AS text[])) WITH ORDINALITY AS u(cpts_id, period, period_key, n) ORDER BY n "
    "ON CONFLICT (cpts_id, period, period_key) DO UPDATE SET marked_at = excluded.marked_at").bindparams(
    sa.bindparam("at", type_=UtcDateTime()))


@cache
def _mark(dialect: str) -> sa.Insert:
    p = pending_table
    statement = upsert(dialect, p)
    return statement.on_conflict_do_update(index_elements=[p.c.cpts_id, p.c.period, p.c.period_key],
                                           set_={"marked_at": statement.excluded.marked_at})


async def refresh_pending(database: Database, *, threshold: int | None = None, limit: int = 2000) -> int:
    """Recompute the snapshots marked pending and send those whose content changed; returns how many were
    sent.

    Two steps, so that ingestion is not held up while the values are computed: the values are computed in a
    read-only session (no write lock, SQLite included), then a short transaction locks the snapshot rows,
    writes the snapshots whose content changed and clears the marks. A snapshot sent by someone else in
    between (another instance) is not overwritten with older values: its period is marked again. A period
    marked again meanwhile keeps its mark (its `marked_at` moved) and is recomputed next time. A failure
    that is not transient is logged and the marks dropped: `POST /indicators/snapshots/rebuild` resends, as
    when an inline refresh fails."""
    threshold = threshold if threshold is not None else current_settings().small_cell_threshold
    p, s = pending_table, snapshots_table
    async with database.sessions() as session:
        rows = (await session.execute(sa.select(p.c.cpts_id, p.c.period, p.c.period_key, p.c.marked_at)
                                      .order_by(p.c.cpts_id, p.c.period, p.c.period_key).limit(limit))).all()
        if not rows:
            return 0
        targets = sorted({(c, PeriodKind(k), parse_period(PeriodKind(k), key)) for c, k, key, _ in rows},
                         key=lambda t: (t[0], t[1].value, t[2].first_day))
        seen: dict[tuple[str, str, str], int] = {}
        for chunk in _chunks(sorted({c for c, _, _ in targets})):
            for c, k, key, sequence in (await session.execute(sa.select(
                    s.c.cpts_id, s.c.period, s.c.period_key, s.c.sequence).where(s.c.cpts_id.in_(chunk)))):
                seen[(c, k, key)] = sequence
        computed = None
        try:
            computed = await session.run_sync(
                lambda sync: compute_snapshots(sync, targets, threshold=threshold))
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("indicator_snapshots_failed", error_type=type(exc).__name__, periods=len(rows))
    async with database.transaction() as session:
        sent = 0
        if computed is not None:
            sent = await session.run_sync(
                lambda sync: write_snapshots(sync, computed, seen, threshold=threshold))
        for chunk in _chunks(rows, 200):
            await session.execute(sa.delete(p).where(sa.or_(*(
                sa.and_(p.c.cpts_id == c, p.c.period == k, p.c.period_key == key, p.c.marked_at == at)
                for c, k, key, at in chunk))))
        return sent


def compute_snapshots(session: Session, targets: list[Target], *, threshold: int,
                      definitions: Catalogue | None = None) -> list[tuple[Target, list[IndicatorValue]]]:
    """The published values of every target, computed from the facts (no lock, nothing written)."""
    definitions = definitions or catalogue()
    groups: dict[tuple[str, PeriodKind], list[Period]] = defaultdict(list)
    for cpts_id, kind, period in targets:
        groups[(cpts_id, kind)].append(period)
    out = []
    for (cpts_id, kind), periods in groups.items():
        raw = evaluate(session, definitions, cpts_id, periods)
        for period in periods:
            fresh = indicator_values(publish(definitions, period, raw.get(period.key, {}),
                                             threshold=threshold))
            out.append(((cpts_id, kind, period), [fresh[d.id] for d in definitions.indicators]))
    return out


def write_snapshots(session: Session, computed: list[tuple[Target, list[IndicatorValue]]],
                    seen: dict[tuple[str, str, str], int], *, threshold: int,
                    definitions: Catalogue | None = None, now: datetime | None = None,
                    finalize: bool = False) -> int:
    """Lock the snapshot rows, send those whose content changed; a row whose sequence moved since `seen` was
    read is marked pending again instead (someone sent newer values meanwhile). A snapshot is final when its
    row already is (a correction after a late event) or when `finalize` (its period has closed)."""
    definitions = definitions or catalogue()
    now = now or datetime.now(UTC)
    current = _lock(session, [target for target, _ in computed])
    s = snapshots_table
    events, again = [], []
    for (cpts_id, kind, period), indicators in computed:
        row = current[(cpts_id, kind.value, period.key)]
        if row.sequence != seen.get((cpts_id, kind.value, period.key), 0):
            again.append((cpts_id, kind, period))
            continue
        final = bool(row.final) or finalize
        payload = snapshot_payload(cpts_id, period, indicators, threshold=threshold,
                                   sequence=row.sequence + 1, computed_at=now, definitions=definitions,
                                   final=final)
        content, digest = _content(payload)
        if digest == row.digest:
            continue
        session.execute(sa.update(s).where(s.c.cpts_id == cpts_id, s.c.period == kind.value,
                                           s.c.period_key == period.key)
                        .values(sequence=row.sequence + 1, digest=digest, content=content, emitted_at=now,
                                final=final))
        events.append(new_event(payload, source=SOURCE, subject=f"cpts/{cpts_id}/{kind.value}/{period.key}"))
    if again:
        mark_pending(session, again)
    _write_outbox(session, events)
    return len(events)


async def snapshot_worker(database: Database, interval: float, *,
                          clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                          backlog: Callable[[], bool] = lambda: False,
                          max_delay: float = 5.0) -> None:
    """Every `interval` seconds, the pending snapshots; every `FINAL_SWEEP_SECONDS` and whenever the Paris day
    changes, the final snapshots of the periods that closed (run inside the service, next to the consumers).

    A pass recomputes each pending period from all its facts, whatever the number of new ones. So while the
    consumers catch up with a backlog (`backlog()`: a burst, a replay of the topics), passes wait until it is
    caught up, or `max_delay` seconds after the previous one: the events of the backlog are then counted in a
    few passes instead of one every `interval`. And when passes take long, the next one waits long enough
    that snapshots take at most `SNAPSHOT_SHARE` of the time, and the consumers the rest."""
    swept: tuple[datetime, date] | None = None
    loop = asyncio.get_running_loop()
    spent = 0.0
    while True:
        finished = loop.time()
        await asyncio.sleep(max(interval, spent * (1 - SNAPSHOT_SHARE) / SNAPSHOT_SHARE))
        while backlog() and loop.time() - finished < max_delay:
            await asyncio.sleep(min(interval, 0.1))
        started = loop.time()
        try:
            while await _refresh_round(database) >= 2000:
                pass
            now = clock()
            if swept is None or local_day(now) != swept[1] \
                    or (now - swept[0]).total_seconds() >= FINAL_SWEEP_SECONDS:
                while await finalize_closed_periods(database, now=now) >= 2000:
                    pass
                swept = (now, local_day(now))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("indicator_snapshot_worker_failed", error_type=type(exc).__name__)
        spent = loop.time() - started


def closed_periods_to_finalize(rows: Iterable[tuple[str, str, str, bool]], latest: Iterable[tuple[str, str, str]],
                               *, kinds: Iterable[PeriodKind], now: datetime, limit: int = 2000) -> list[Target]:
    """The (CPTS, period) whose final snapshot is due at `now`: from the snapshot rows not final yet
    (`rows`: CPTS, kind, key, final) those whose period has ended, and the closed periods after the last
    period with a snapshot of each CPTS and kind (`latest`: CPTS, kind, key), at most `limit`."""
    wanted = {k.value for k in kinds}
    out: set[Target] = set()
    for cpts_id, kind, key, final in rows:
        if kind in wanted and not final:
            period = parse_period(PeriodKind(kind), key)
            if period.end <= now:
                out.add((cpts_id, PeriodKind(kind), period))
    for cpts_id, kind, key in latest:
        if kind not in wanted:
            continue
        period = parse_period(PeriodKind(kind), key).next()
        while period.end <= now and len(out) < limit:
            out.add((cpts_id, PeriodKind(kind), period))
            period = period.next()
    return sorted(out, key=lambda t: (t[0], t[1].value, t[2].first_day))[:limit]


async def finalize_closed_periods(database: Database, *, now: datetime | None = None,
                                  kinds: Iterable[PeriodKind] | None = None, threshold: int | None = None,
                                  limit: int = 2000) -> int:
    """Send the final snapshot of every CPTS and period that has closed by `now` and has none yet; returns how
    many were due. As `refresh_pending`: the values are computed in a read-only session, then one short
    transaction locks the rows and writes them (a row another instance sent meanwhile is marked pending, and
    finalised by the next sweep)."""
    settings = current_settings()
    now = now or datetime.now(UTC)
    kinds = list(kinds if kinds is not None else settings.snapshot_periods)
    threshold = threshold if threshold is not None else settings.small_cell_threshold
    s = snapshots_table
    async with database.sessions() as session:
        open_rows = (await session.execute(sa.select(s.c.cpts_id, s.c.period, s.c.period_key, s.c.final).where(
            s.c.final.is_(False), s.c.period_start < now))).all()
        latest_start = sa.select(s.c.cpts_id, s.c.period, sa.func.max(s.c.period_start).label("start")) \
            .group_by(s.c.cpts_id, s.c.period).subquery()
        latest = (await session.execute(sa.select(s.c.cpts_id, s.c.period, s.c.period_key).join(
            latest_start, sa.and_(s.c.cpts_id == latest_start.c.cpts_id, s.c.period == latest_start.c.period,
                                  s.c.period_start == latest_start.c.start)))).all()
        targets = closed_periods_to_finalize(open_rows, latest, kinds=kinds, now=now, limit=limit)
        if not targets:
            return 0
        seen: dict[tuple[str, str, str], int] = {}
        for chunk in _chunks(sorted({c for c, _, _ in targets})):
            for c, k, key, sequence in (await session.execute(sa.select(
                    s.c.cpts_id, s.c.period, s.c.period_key, s.c.sequence).where(s.c.cpts_id.in_(chunk)))):
                seen[(c, k, key)] = sequence
        computed = await session.run_sync(lambda sync: compute_snapshots(sync, targets, threshold=threshold))
    async with database.transaction() as session:
        sent = await session.run_sync(lambda sync: write_snapshots(sync, computed, seen, threshold=threshold,
                                                                   now=now, finalize=True))
    log.info("indicator_snapshots_finalized", periods=len(targets), sent=sent)
    return len(targets)


async def _refresh_round(database: Database) -> int:
    p = pending_table
    async with database.sessions() as session:
        waiting = (await session.execute(sa.select(sa.func.count()).select_from(p))).scalar_one()
    if waiting:
        await refresh_pending(database)
    return waiting


def _member_cpts(session: Session, subjects: set[str]) -> dict[str, set[str]]:
    """The CPTS each professional is or has been a member of, from the membership facts."""
    f = facts_table
    out: dict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted(subjects)):
        for cpts_id, subject in session.execute(
                sa.select(f.c.cpts_id, f.c.subject).distinct().where(
                    f.c.subject.in_(chunk), f.c.event_type.in_(MEMBERSHIP_EVENTS),
                    f.c.cpts_id != PROFESSIONAL_SCOPE)):
            out[subject].add(cpts_id)
    return out


# An index probe per pair, whatever the planner's estimates: the lateral subquery with OFFSET 0 is not flattened
# into a join. As a join, up to some hundreds of thousands of facts the planner prices each probe as a random
# read from disk and reads the whole table instead, hashed or sorted, for every batch: 28 ms instead of 2 ms
# for 440 pairs over 22,000 facts.
_EARLIER_FACTS_BY_PAIRS = sa.text(
    "SELECT p.cpts_id, p.entity, f.day "
    "FROM unnest(CAST(:cpts_ids AS text[]), CAST(:entities AS text[])) AS p(cpts_id, entity) "
    f"CROSS JOIN LATERAL (SELECT DISTINCT unnest(ARRAY[(event_time AT TIME ZONE '{PARIS.key}')::date, "
    f"(ref_time AT TIME ZONE '{PARIS.key}')::date]) AS day FROM {facts_table.name} AS f "
    "WHERE f.cpts_id = p.cpts_id AND f.entity = p.entity OFFSET 0) AS f WHERE f.day IS NOT NULL"
).columns(sa.column("cpts_id"), sa.column("entity"), sa.column("day"))


@cache
def _earlier_facts(dialect: str) -> sa.Select:
    f = facts_table
    # Entity and CPTS apart (an index range scan per list), the pairs kept by the caller.
    return sa.select(f.c.cpts_id, f.c.entity, f.c.event_time, f.c.ref_time).where(
        one_of(dialect, f.c.cpts_id, "cpts_ids"), one_of(dialect, f.c.entity, "entities"))


def _earlier_times(session: Session, facts: list[Fact]) -> dict[tuple[str, str], set[date]]:
    """The Paris days of the event and ref times of the facts already held about the same entities of the same
    CPTS."""
    pairs = sorted({(fact.cpts_id, fact.entity) for fact in facts
                    if fact.entity is not None and fact.cpts_id != PROFESSIONAL_SCOPE})
    out: dict[tuple[str, str], set[date]] = defaultdict(set)
    if session.get_bind().dialect.name == "postgresql":
        # One index lookup per (CPTS, entity) pair, the pairs as two arrays: one statement, one plan; the
        # Paris days computed there, each once per pair.
        for chunk in _chunks(pairs, 5000):
            for cpts_id, entity, day in session.execute(_EARLIER_FACTS_BY_PAIRS, {
                    "cpts_ids": [c for c, _ in chunk], "entities": [e for _, e in chunk]}):
                out[(cpts_id, entity)].add(day)
        return out
    cpts_ids = sorted({cpts_id for cpts_id, _ in pairs})
    statement = _earlier_facts(session.get_bind().dialect.name)
    wanted = set(pairs)
    for chunk in _chunks(sorted({entity for _, entity in pairs})):
        for cpts_id, entity, event_time, ref_time in session.execute(
                statement, {"cpts_ids": cpts_ids, "entities": chunk}):
            if (cpts_id, entity) in wanted:
                days = out[(cpts_id, entity)]
                days.add(local_day(event_time))
                if ref_time is not None:
                    days.add(local_day(ref_time))
    return out


def _sent_periods(session: Session, cpts_ids: set[str], kinds: Iterable[PeriodKind]
                  ) -> dict[tuple[str, str], list[str]]:
    s = snapshots_table
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for chunk in _chunks(sorted(cpts_ids)):
        for cpts_id, period, key in session.execute(sa.select(s.c.cpts_id, s.c.period, s.c.period_key).where(
                s.c.cpts_id.in_(chunk), s.c.period.in_([k.value for k in kinds]))):
            out[(cpts_id, period)].append(key)
    return out


def _chunks(items: list, size: int = 500) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def changed_periods(session: Session, facts: list[Fact], *, kinds: Iterable[PeriodKind],
                    now: datetime | None = None, definitions: Catalogue | None = None) -> set[Target]:
    """The (CPTS, period) whose values the new facts may change, for the period kinds sent as snapshots.

    Read before or after the facts are written (their own memberships and times count either way); the periods
    are computed once per CPTS and Paris day, however many facts fall on it."""
    kinds = list(kinds)
    now = now or datetime.now(UTC)
    stocks = (definitions or catalogue()).stock_event_types()
    about_professionals = {f.subject for f in facts if f.cpts_id == PROFESSIONAL_SCOPE and f.subject}
    members = _member_cpts(session, about_professionals)
    for fact in facts:
        if fact.subject in about_professionals and fact.event_type in MEMBERSHIP_EVENTS \
                and fact.cpts_id != PROFESSIONAL_SCOPE:
            members[fact.subject].add(fact.cpts_id)
    earlier = _earlier_times(session, facts)
    days: dict[str, set[date]] = defaultdict(set)
    stock_since: dict[str, datetime] = {}
    for fact in facts:
        cpts_ids = (members.get(fact.subject or "", set()) if fact.cpts_id == PROFESSIONAL_SCOPE
                    else (fact.cpts_id,))
        own = {local_day(fact.event_time)}
        if fact.ref_time is not None:
            own.add(local_day(fact.ref_time))
        for cpts_id in cpts_ids:
            if fact.event_type in stocks:
                since = stock_since.get(cpts_id)
                stock_since[cpts_id] = fact.event_time if since is None else min(since, fact.event_time)
            held = days[cpts_id]
            held |= own
            held |= earlier.get((cpts_id, fact.entity or ""), own)
    targets: set[Target] = set()
    for cpts_id, held in days.items():
        for kind in kinds:
            targets.update((cpts_id, kind, period_of_day(kind, day)) for day in held)
    sent = _sent_periods(session, set(stock_since), kinds)
    for cpts_id, since in stock_since.items():
        for kind in kinds:
            targets.update((cpts_id, kind, p) for p in periods_from(kind, since, now))
            later = (parse_period(kind, key) for key in sent.get((cpts_id, kind.value), []))
            targets.update((cpts_id, kind, p) for p in later if p.end > since)
    return targets


def indicator_values(values: list[PublishedValue]) -> dict[str, IndicatorValue]:
    """The published values as the snapshot carries them, by indicator id."""
    return {v.definition.id: IndicatorValue(
        indicator_id=v.definition.id, version=v.definition.version, unit=v.definition.unit,
        value=v.total.value, masked=v.total.masked, last_event_time=v.total.last_event_time,
        breakdowns=[IndicatorBreakdown(attribute=name, cells=[
            IndicatorBreakdownCell(category=category, value=cell.value, masked=cell.masked,
                                   last_event_time=cell.last_event_time)
            for category, cell in sorted(cells.items())]) for name, cells in v.breakdowns.items()])
        for v in values}


def snapshot_payload(cpts_id: str, period: Period, indicators: list[IndicatorValue], *, threshold: int,
                     sequence: int, computed_at: datetime, definitions: Catalogue, final: bool = False
                     ) -> IndicatorSnapshot:
    return IndicatorSnapshot(
        cpts_id=cpts_id, period=period.kind.value, period_key=period.key, period_start=period.start,
        period_end=period.end, final=final, sequence=sequence, catalogue_version=definitions.version,
        small_cell_threshold=threshold, computed_at=computed_at, indicators=indicators)


def _content(payload: IndicatorSnapshot) -> tuple[dict[str, Any], str]:
    """What is compared between two snapshots (not their sequence nor when computed), and its digest."""
    content = payload.model_dump(mode="json", exclude={"sequence", "computed_at"})
    return content, hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _lock(session: Session, targets: list[Target]) -> dict[tuple[str, str, str], Any]:
    s = snapshots_table
    rows = [{"cpts_id": c, "period": k.value, "period_key": p.key, "period_start": p.start, "sequence": 0,
             "final": False} for c, k, p in targets]
    for chunk in _chunks(rows):
        session.execute(upsert(session.get_bind().dialect.name, s).on_conflict_do_nothing(
            index_elements=[s.c.cpts_id, s.c.period, s.c.period_key]), chunk)
    out = {}
    # One at a time, in key order: two transactions never wait on each other in a cycle.
    for c, k, p in targets:
        row = session.execute(sa.select(s.c.sequence, s.c.digest, s.c.content, s.c.final).where(
            s.c.cpts_id == c, s.c.period == k.value, s.c.period_key == p.key).with_for_update()).one()
        out[(c, k.value, p.key)] = row
    return out


def _reusable(content: dict[str, Any] | None, definitions: Catalogue, threshold: int
              ) -> dict[str, IndicatorValue] | None:
    """The values of the last snapshot sent, if computed with this catalogue, its versions and threshold."""
    if not content or content.get("catalogue_version") != definitions.version \
            or content.get("small_cell_threshold") != threshold:
        return None
    sent = {i["indicator_id"]: i for i in content.get("indicators", [])}
    if any(sent.get(d.id, {}).get("version") != d.version for d in definitions.indicators):
        return None
    return {indicator_id: IndicatorValue.model_validate(value) for indicator_id, value in sent.items()}


def refresh_snapshots(session: Session, targets: Iterable[Target], *, threshold: int,
                      definitions: Catalogue | None = None, now: datetime | None = None,
                      event_types: set[str] | None = None) -> int:
    """Recompute the snapshots of `targets` and send (through the outbox) those whose content changed.

    With `event_types` (those of the new facts), only the indicators reading them are recomputed; the others
    are taken from the last snapshot sent, which no fact of theirs has changed since."""
    definitions = definitions or catalogue()
    ordered = sorted(targets, key=lambda t: (t[0], t[1].value, t[2].first_day))
    if not ordered:
        return 0
    now = now or datetime.now(UTC)
    current = _lock(session, ordered)
    groups: dict[tuple[str, PeriodKind], list[Period]] = defaultdict(list)
    for cpts_id, kind, period in ordered:
        groups[(cpts_id, kind)].append(period)
    affected = sorted(definitions.reading(event_types)) if event_types is not None else None
    events = []
    s = snapshots_table
    for (cpts_id, kind), periods in groups.items():
        previous = {p.key: _reusable(current[(cpts_id, kind.value, p.key)].content, definitions, threshold)
                    for p in periods}
        partial = [p for p in periods if affected is not None and previous[p.key] is not None]
        full = [p for p in periods if p not in partial]
        raw = evaluate(session, definitions, cpts_id, full) if full else {}
        if partial and affected:
            raw |= evaluate(session, definitions, cpts_id, partial, affected)
        for period in periods:
            row = current[(cpts_id, kind.value, period.key)]
            ids = affected if period in partial else None
            fresh = indicator_values(publish(definitions, period, raw.get(period.key, {}),
                                             threshold=threshold, ids=ids)) if ids != [] else {}
            kept = previous[period.key] or {}
            indicators = [fresh[d.id] if d.id in fresh else kept[d.id] for d in definitions.indicators]
            payload = snapshot_payload(cpts_id, period, indicators, threshold=threshold,
                                       sequence=row.sequence + 1, computed_at=now, definitions=definitions,
                                       final=bool(row.final))
            content, digest = _content(payload)
            if digest == row.digest:
                continue
            session.execute(sa.update(s).where(s.c.cpts_id == cpts_id, s.c.period == kind.value,
                                               s.c.period_key == period.key)
                            .values(sequence=row.sequence + 1, digest=digest, content=content,
                                    emitted_at=now))
            subject = f"cpts/{cpts_id}/{kind.value}/{period.key}"
            events.append(new_event(payload, source=SOURCE, subject=subject))
    _write_outbox(session, events)
    return len(events)


def _write_outbox(session: Session, events: list) -> None:
    """Outbox rows of `events` as `cpts_platform.outbox.add_events` writes them, from synchronous code."""
    if not events:
        return
    now = datetime.now(UTC)
    rows = []
    for event in events:
        record = encode(event)
        rows.append({"event_id": event.id, "event_type": event.type, "topic": record.topic, "key": record.key,
                     "value": record.value, "headers": [[n, v.decode()] for n, v in record.headers],
                     "created_at": now})
    session.execute(sa.insert(tables.outbox), rows)
    session.info["outbox_written"] = True
