"""Tables of the indicators service: the facts the indicators are computed from, the last snapshot sent to the
ARS per CPTS and period, and the registry read model behind `/professionals`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_indicators.domain.facts import PROFESSIONAL_SCOPE
from cpts_platform.db import UtcDateTime, add_platform_tables, upsert


class IndicatorsTable(SQLModel, registry=registry()):
    pass


class CptsProfessionalCount(IndicatorsTable, table=True):
    """Registrations counted per CPTS: a flow, moved once per event (no double count under redelivery)."""

    __tablename__ = "cpts_professional_count"

    cpts_id: str = Field(primary_key=True, max_length=9)
    professionals: int = 0
    last_event_time: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class CptsMember(IndicatorsTable, table=True):
    """The members of each CPTS (a stock), from registrations and membership changes."""

    __tablename__ = "cpts_member"

    cpts_id: str = Field(primary_key=True, max_length=9)
    idnps: str = Field(primary_key=True, max_length=12)
    status: str = Field(max_length=10)
    since: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class IndicatorFact(IndicatorsTable, table=True):
    """Append-only: what an event says about a CPTS (or, with `cpts_id` '*', about a professional).

    One row per event and CPTS, written in the consumer's transaction with the processed event id: a
    redelivered event is skipped, and the primary key refuses a second copy anyway. No patient identity.
    """

    __tablename__ = "indicator_fact"
    __table_args__ = (
        sa.Index("ix_indicator_fact_event_time", "cpts_id", "event_type", "event_time"),
        sa.Index("ix_indicator_fact_ref_time", "cpts_id", "event_type", "ref_time"),
        sa.Index("ix_indicator_fact_entity", "cpts_id", "entity"),
        sa.Index("ix_indicator_fact_subject", "subject", "event_type"),
    )

    event_id: str = Field(primary_key=True, max_length=36)
    cpts_id: str = Field(primary_key=True, max_length=9)
    event_type: str = Field(max_length=200)
    event_time: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    ref_time: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))
    entity: str | None = Field(default=None, max_length=64)
    subject: str | None = Field(default=None, max_length=12)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON(), nullable=False))
    recorded_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class IndicatorSnapshot(IndicatorsTable, table=True):
    """The last snapshot of a CPTS and period sent on the `indicators` topic (masked values only): a new one
    is sent when the published content changes, with the next sequence number."""

    __tablename__ = "indicator_snapshot"

    cpts_id: str = Field(primary_key=True, max_length=9)
    period: str = Field(primary_key=True, max_length=10)
    period_key: str = Field(primary_key=True, max_length=10)
    period_start: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    sequence: int = 0
    digest: str | None = Field(default=None, max_length=64)
    content: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    emitted_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))
    final: bool = False


class IndicatorPendingSnapshot(IndicatorsTable, table=True):
    """A CPTS and period whose snapshot must be recomputed: marked by the consumer's transaction, cleared by
    the snapshot worker once it has recomputed it (so ingestion does not pay a recomputation per batch)."""

    __tablename__ = "indicator_pending_snapshot"

    cpts_id: str = Field(primary_key=True, max_length=9)
    period: str = Field(primary_key=True, max_length=10)
    period_key: str = Field(primary_key=True, max_length=10)
    marked_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


metadata = IndicatorsTable.metadata
tables = add_platform_tables(metadata)
facts_table: sa.Table = IndicatorFact.__table__  # type: ignore[assignment]
snapshots_table: sa.Table = IndicatorSnapshot.__table__  # type: ignore[assignment]
pending_table: sa.Table = IndicatorPendingSnapshot.__table__  # type: ignore[assignment]

TERRITORY_EVENTS = ("fr.cpts.registry.cpts.registered.v1", "fr.cpts.registry.cpts.territory.changed.v1")


async def count_registrations(session: AsyncSession, counts: dict[str, tuple[int, datetime]]) -> None:
    """Add registrations to CPTS counts (CPTS id -> (number, time of the latest)), atomically and in CPTS order
    (several consumers may count at once)."""
    if not counts:
        return
    table = CptsProfessionalCount.__table__
    dialect = session.bind.dialect.name
    statement = upsert(dialect, table)
    latest = sa.func.max if dialect == "sqlite" else sa.func.greatest
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.cpts_id],
        set_={"professionals": table.c.professionals + statement.excluded.professionals,
              "last_event_time": latest(table.c.last_event_time, statement.excluded.last_event_time)})
    await session.execute(statement, [{"cpts_id": cpts_id, "professionals": n, "last_event_time": at}
                                      for cpts_id, (n, at) in sorted(counts.items())])


async def set_members(session: AsyncSession, changes: Iterable[tuple[str, str, str, datetime]]) -> None:
    """Apply membership changes (CPTS, IDNPS, status, time), in their order, in two statements: a member who
    left is removed; one who joins again is a member since then; a status change keeps the date joined."""
    state: dict[tuple[str, str], tuple[str, datetime] | None] = {}
    left: set[tuple[str, str]] = set()
    for cpts_id, idnps, status, at in changes:
        key = (cpts_id, idnps)
        if status == "left":
            state[key] = None
            left.add(key)
            continue
        before = state.get(key)
        state[key] = (status, before[1] if before else at)
    table = CptsMember.__table__
    if left:
        # Whatever was there before a departure is gone; what came after it is inserted below.
        await session.execute(sa.delete(table).where(sa.tuple_(table.c.cpts_id, table.c.idnps).in_(sorted(left))))
    rows = [{"cpts_id": cpts_id, "idnps": idnps, "status": kept[0], "since": kept[1]}
            for (cpts_id, idnps), kept in sorted(state.items()) if kept is not None]
    if rows:
        statement = upsert(session.bind.dialect.name, table)
        await session.execute(statement.on_conflict_do_update(
            index_elements=[table.c.cpts_id, table.c.idnps], set_={"status": statement.excluded.status}), rows)


async def professional_figures(session: AsyncSession, cpts_id: str) -> tuple[int, int, int, datetime | None]:
    """(members, active members, registrations counted, time of the last registration counted)."""
    counted = await session.get(CptsProfessionalCount, cpts_id)
    members, active = (await session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(CptsMember.status == "active"))
        .where(CptsMember.cpts_id == cpts_id))).one()
    return (members, active, counted.professionals if counted else 0,
            counted.last_event_time if counted else None)


async def latest_professional_attributes(session: AsyncSession, idnps: list[str], event_types: Iterable[str]
                                         ) -> dict[str, dict[str, Any]]:
    """The attributes of the latest fact of each professional among `event_types` (e.g. their profession)."""
    if not idnps:
        return {}
    f = facts_table
    rows = (await session.execute(
        sa.select(f.c.subject, f.c.attributes)
        .where(f.c.cpts_id == PROFESSIONAL_SCOPE, f.c.subject.in_(idnps),
               f.c.event_type.in_(list(event_types)))
        .order_by(f.c.event_time, f.c.event_id))).all()
    return {subject: attributes for subject, attributes in rows}


async def cpts_profile(session: AsyncSession, cpts_id: str) -> dict[str, Any] | None:
    """The CPTS's territory as its latest registry fact says it (name, départements, population), or None."""
    f = facts_table
    row = (await session.execute(
        sa.select(f.c.attributes).where(f.c.cpts_id == cpts_id, f.c.entity == cpts_id,
                                        f.c.event_type.in_(TERRITORY_EVENTS))
        .order_by(f.c.event_time.desc(), f.c.event_id.desc()).limit(1))).first()
    if row is None:
        return None
    name = (await session.execute(
        sa.select(f.c.attributes).where(f.c.cpts_id == cpts_id, f.c.event_type == TERRITORY_EVENTS[0])
        .limit(1))).first()
    return {**row[0], "name": name[0].get("name") if name else None}


async def known_cpts(session: AsyncSession) -> list[str]:
    f = facts_table
    return list((await session.execute(
        sa.select(f.c.cpts_id).where(f.c.cpts_id != PROFESSIONAL_SCOPE).distinct().order_by(f.c.cpts_id)
    )).scalars())


class IndicatorTarget(IndicatorsTable, table=True):
    """A yearly ACI target of a CPTS for one indicator of the catalogue, recorded by its coordinator."""

    __tablename__ = "indicator_target"

    cpts_id: str = Field(primary_key=True, max_length=9)
    year: int = Field(primary_key=True)
    indicator_id: str = Field(primary_key=True, max_length=100)
    target: float
    recorded_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    recorded_by: str = Field(max_length=200)


targets_table: sa.Table = IndicatorTarget.__table__  # type: ignore[assignment]
CONTRACT_EVENTS = ("fr.cpts.registry.cpts.registered.v1", "fr.cpts.registry.cpts.stage.changed.v1")


async def replace_targets(session: AsyncSession, *, cpts_id: str, year: int, targets: dict[str, float],
                          recorded_by: str, now: datetime) -> None:
    """Make `targets` the whole set of targets of a CPTS for a year (an indicator left out has none)."""
    t = targets_table
    await session.execute(sa.delete(t).where(t.c.cpts_id == cpts_id, t.c.year == year))
    if targets:
        await session.execute(sa.insert(t), [
            {"cpts_id": cpts_id, "year": year, "indicator_id": indicator_id, "target": target,
             "recorded_at": now, "recorded_by": recorded_by} for indicator_id, target in targets.items()])


async def targets_of(session: AsyncSession, cpts_id: str, year: int) -> list[IndicatorTarget]:
    return list((await session.execute(
        sa.select(IndicatorTarget).where(IndicatorTarget.cpts_id == cpts_id, IndicatorTarget.year == year)
        .order_by(IndicatorTarget.indicator_id))).scalars())


async def cpts_contract(session: AsyncSession, cpts_id: str) -> dict[str, Any] | None:
    """The CPTS's ACI contract as its latest registry fact says it (stage, `missions`, `aci_signed_on`), or
    None; `missions` is absent from facts recorded before the registry's missions were kept."""
    f = facts_table
    row = (await session.execute(
        sa.select(f.c.attributes).where(f.c.cpts_id == cpts_id, f.c.entity == cpts_id,
                                        f.c.event_type.in_(CONTRACT_EVENTS))
        .order_by(f.c.event_time.desc(), f.c.event_id.desc()).limit(1))).first()
    return dict(row[0]) if row is not None else None


class SteeringQuestionnaire(IndicatorsTable, table=True):
    """The yearly steering questionnaire of a CPTS: a draft its coordinator saves and completes, then submits
    (read-only from then on). `answers` maps item ids to values; `prefilled` lists the items whose answer was
    taken from the registry when submitted."""

    __tablename__ = "steering_questionnaire"

    cpts_id: str = Field(primary_key=True, max_length=9)
    year: int = Field(primary_key=True)
    status: str = Field(max_length=10)
    questionnaire_version: str = Field(max_length=20)
    answers: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON(), nullable=False))
    prefilled: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    updated_by: str = Field(max_length=200)
    submitted_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))


questionnaires_table: sa.Table = SteeringQuestionnaire.__table__  # type: ignore[assignment]


async def questionnaire_of(session: AsyncSession, cpts_id: str, year: int, *, for_update: bool = False
                           ) -> SteeringQuestionnaire | None:
    statement = sa.select(SteeringQuestionnaire).where(SteeringQuestionnaire.cpts_id == cpts_id,
                                                       SteeringQuestionnaire.year == year)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalars().first()


async def lock_questionnaire(session: AsyncSession, cpts_id: str, year: int, *, version: str, by: str,
                             now: datetime) -> SteeringQuestionnaire:
    """The questionnaire of a CPTS and year, locked until the transaction ends: an empty draft is inserted first
    when there is none (two first saves at once then wait for each other instead of colliding)."""
    q = questionnaires_table
    await session.execute(upsert(session.bind.dialect.name, q).values(
        cpts_id=cpts_id, year=year, status="draft", questionnaire_version=version, answers={}, prefilled=[],
        updated_at=now, updated_by=by).on_conflict_do_nothing(index_elements=[q.c.cpts_id, q.c.year]))
    row = await questionnaire_of(session, cpts_id, year, for_update=True)
    assert row is not None
    return row


async def questionnaires(session: AsyncSession, *, cpts_ids: Iterable[str] | None = None, year: int | None = None,
                         status: str | None = None) -> list[SteeringQuestionnaire]:
    """The questionnaires of these CPTS (all when None), of one year or all years, by CPTS then year."""
    q = SteeringQuestionnaire
    statement = sa.select(q).order_by(q.cpts_id, q.year)
    if cpts_ids is not None:
        statement = statement.where(q.cpts_id.in_(list(cpts_ids)))
    if year is not None:
        statement = statement.where(q.year == year)
    if status is not None:
        statement = statement.where(q.status == status)
    return list((await session.execute(statement)).scalars())


async def cpts_territories(session: AsyncSession) -> dict[str, dict[str, Any]]:
    """Every CPTS's territory as its latest registry fact says it (as `cpts_profile`, for all CPTS at once)."""
    f = facts_table
    out: dict[str, dict[str, Any]] = {}
    for cpts_id, event_type, attributes in (await session.execute(
            sa.select(f.c.cpts_id, f.c.event_type, f.c.attributes)
            .where(f.c.entity == f.c.cpts_id, f.c.event_type.in_(TERRITORY_EVENTS))
            .order_by(f.c.cpts_id, f.c.event_time, f.c.event_id))).all():
        name = out.get(cpts_id, {}).get("name")
        if event_type == TERRITORY_EVENTS[0] and name is None:
            name = attributes.get("name")
        out[cpts_id] = {**attributes, "name": name}
    return out


class CustomIndicator(IndicatorsTable, table=True):
    """An indicator a CPTS defined itself (`domain/custom.py`): a count, or a ratio of two counts, of facts.
    `numerator` / `denominator` hold each part (kind of fact, filters). Deleting one deactivates it: its id
    stays the CPTS's, and defining it again makes its next version."""

    __tablename__ = "custom_indicator"

    cpts_id: str = Field(primary_key=True, max_length=9)
    slug: str = Field(primary_key=True, max_length=40)
    version: int = 1
    active: bool = True
    label: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    unit: str = Field(max_length=40)
    direction: str = Field(max_length=10)
    kind: str = Field(max_length=10)
    scale: float = 1.0
    numerator: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON(), nullable=False))
    denominator: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    updated_by: str = Field(max_length=200)


async def custom_indicators_of(session: AsyncSession, cpts_id: str, *, active_only: bool = True
                               ) -> list[CustomIndicator]:
    statement = sa.select(CustomIndicator).where(CustomIndicator.cpts_id == cpts_id) \
        .order_by(CustomIndicator.slug)
    if active_only:
        statement = statement.where(CustomIndicator.active.is_(True))
    return list((await session.execute(statement)).scalars())


async def custom_indicator(session: AsyncSession, cpts_id: str, slug: str, *, for_update: bool = False
                           ) -> CustomIndicator | None:
    statement = sa.select(CustomIndicator).where(CustomIndicator.cpts_id == cpts_id,
                                                 CustomIndicator.slug == slug)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalars().first()


async def registry_cpts(session: AsyncSession) -> list[dict[str, Any]]:
    """Every CPTS the registry told the indicators about, as its latest facts say it: name, stage,
    départements, population, size band; with its members and active members (`cpts_member`)."""
    f = facts_table
    out: dict[str, dict[str, Any]] = {}
    rows = await session.execute(
        sa.select(f.c.cpts_id, f.c.event_type, f.c.attributes)
        .where(f.c.cpts_id != PROFESSIONAL_SCOPE, f.c.entity == f.c.cpts_id,
               f.c.event_type.in_(sorted({*TERRITORY_EVENTS, *CONTRACT_EVENTS})))
        .order_by(f.c.event_time, f.c.event_id))
    for cpts_id, event_type, attributes in rows:
        cpts = out.setdefault(cpts_id, {"cpts_id": cpts_id, "name": None, "stage": None, "departements": [],
                                        "population": None, "size_band": None})
        if event_type == TERRITORY_EVENTS[0]:
            cpts["name"] = attributes.get("name")
        if event_type in TERRITORY_EVENTS:
            cpts |= {k: attributes.get(k) for k in ("departements", "population", "size_band")}
        if event_type in CONTRACT_EVENTS:
            cpts["stage"] = attributes.get("stage")
    counts = await session.execute(
        sa.select(CptsMember.cpts_id, sa.func.count(), sa.func.count().filter(CptsMember.status == "active"))
        .group_by(CptsMember.cpts_id))
    members = {cpts_id: (n, active) for cpts_id, n, active in counts}
    for cpts_id, cpts in out.items():
        cpts["members"], cpts["active_members"] = members.get(cpts_id, (0, 0))
    return [out[k] for k in sorted(out)]
