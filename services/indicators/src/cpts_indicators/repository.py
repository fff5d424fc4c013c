"""Tables of the indicators service: the facts the indicators are computed from, the last snapshot sent to the
ARS per CPTS and period, and the registry read model behind `/professionals`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_indicators.domain.facts import PROFESSIONAL_SCOPE, Fact
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


async def count_registration(session: AsyncSession, *, cpts_id: str, event_time: datetime) -> None:
    """Add one professional to a CPTS's count, atomically (several consumers may count at once)."""
    table = CptsProfessionalCount.__table__
    statement = upsert(session.bind.dialect.name, table).values(
        cpts_id=cpts_id, professionals=1, last_event_time=event_time
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.cpts_id],
        set_={"professionals": table.c.professionals + 1,
              "last_event_time": sa.func.max(table.c.last_event_time, statement.excluded.last_event_time)
              if session.bind.dialect.name == "sqlite"
              else sa.func.greatest(table.c.last_event_time, statement.excluded.last_event_time)},
    )
    await session.execute(statement)


async def set_member(session: AsyncSession, *, cpts_id: str, idnps: str, status: str,
                     event_time: datetime) -> None:
    row = await session.get(CptsMember, (cpts_id, idnps))
    if status == "left":
        if row is not None:
            await session.delete(row)
        return
    row = row or CptsMember(cpts_id=cpts_id, idnps=idnps, status=status, since=event_time)
    row.status = status
    session.add(row)


async def professional_figures(session: AsyncSession, cpts_id: str) -> tuple[int, int, int, datetime | None]:
    """(members, active members, registrations counted, time of the last registration counted)."""
    counted = await session.get(CptsProfessionalCount, cpts_id)
    members, active = (await session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(CptsMember.status == "active"))
        .where(CptsMember.cpts_id == cpts_id))).one()
    return (members, active, counted.professionals if counted else 0,
            counted.last_event_time if counted else None)


async def insert_facts(session: AsyncSession, facts: Iterable[Fact], *, now: datetime) -> None:
    """Append facts; a fact already there (same event and CPTS) is left as it is."""
    rows = [{**fact.row(), "recorded_at": now} for fact in facts]
    for start in range(0, len(rows), 1000):
        statement = upsert(session.bind.dialect.name, facts_table).on_conflict_do_nothing(
            index_elements=[facts_table.c.event_id, facts_table.c.cpts_id])
        await session.execute(statement, rows[start:start + 1000])


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
