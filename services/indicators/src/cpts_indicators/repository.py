"""Tables of the indicators service: counters maintained from the events."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

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


metadata = IndicatorsTable.metadata
tables = add_platform_tables(metadata)


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


async def set_member(session: AsyncSession, *, cpts_id: str, idnps: str, status: str, event_time: datetime) -> None:
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
