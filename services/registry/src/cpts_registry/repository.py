"""Tables of the registry service (its own database; other services learn it from events only)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_platform.db import UtcDateTime, add_platform_tables


class RegistryTable(SQLModel, registry=registry()):
    pass


class ProfessionalRow(RegistryTable, table=True):
    __tablename__ = "professional"

    idnps: str = Field(primary_key=True, max_length=12)
    family_name: str = Field(max_length=100)
    given_name: str = Field(max_length=100)
    profession_code: str = Field(max_length=10, index=True)
    specialty_code: str | None = Field(default=None, max_length=10)
    commune_insee: str | None = Field(default=None, max_length=5, index=True)
    cpts_ids: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    active: bool = True
    registered_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


metadata = RegistryTable.metadata
tables = add_platform_tables(metadata)


async def get_professional(session: AsyncSession, idnps: str) -> ProfessionalRow | None:
    return await session.get(ProfessionalRow, idnps)


async def list_professionals(session: AsyncSession, *, limit: int, offset: int) -> list[ProfessionalRow]:
    query = select(ProfessionalRow).order_by(ProfessionalRow.idnps).limit(limit).offset(offset)
    return list((await session.exec(query)).all())
