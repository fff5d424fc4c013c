"""Tables of the registry service (its own database; other services learn it from events only)."""

from __future__ import annotations

from datetime import date, datetime

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
    civility: str | None = Field(default=None, max_length=20)
    family_name: str = Field(max_length=100)
    given_name: str = Field(max_length=100)
    profession_code: str = Field(max_length=10, index=True)
    profession_label: str | None = Field(default=None, max_length=100)
    specialty_code: str | None = Field(default=None, max_length=10, index=True)
    specialty_label: str | None = Field(default=None, max_length=150)
    commune_insee: str | None = Field(default=None, max_length=5, index=True)
    active: bool = True
    source: str = Field(default="api", max_length=20, description="api or rpps-import")
    content_hash: str | None = Field(default=None, max_length=32, description="Of the last imported RPPS rows.")
    registered_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))


class PracticeSiteRow(RegistryTable, table=True):
    __tablename__ = "practice_site"

    site_id: str = Field(primary_key=True, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=300)
    postcode: str | None = Field(default=None, max_length=10, index=True)
    commune_insee: str | None = Field(default=None, max_length=5, index=True)
    phone: str | None = Field(default=None, max_length=20)
    lat: float | None = None
    lon: float | None = None


class ActivityRow(RegistryTable, table=True):
    """A professional practising at a site (one RPPS row)."""

    __tablename__ = "activity"

    idnps: str = Field(primary_key=True, max_length=12, foreign_key="professional.idnps")
    site_id: str = Field(primary_key=True, max_length=40, foreign_key="practice_site.site_id", index=True)
    practice_mode: str | None = Field(default=None, max_length=2)
    sector_code: str | None = Field(default=None, max_length=10)


class CptsRow(RegistryTable, table=True):
    __tablename__ = "cpts"

    cpts_id: str = Field(primary_key=True, max_length=9, description="FINESS")
    name: str = Field(max_length=200)
    stage: str = Field(max_length=30)
    aci_signed_on: date | None = None
    missions: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    population: int = 0
    size_band: int = 1
    departements: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    registered_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))


class CptsCommuneRow(RegistryTable, table=True):
    """The primary key on the commune is what keeps a commune in at most one CPTS, under any concurrency."""

    __tablename__ = "cpts_commune"

    commune_insee: str = Field(primary_key=True, max_length=5)
    cpts_id: str = Field(max_length=9, foreign_key="cpts.cpts_id", index=True)


class MembershipRow(RegistryTable, table=True):
    __tablename__ = "membership"

    cpts_id: str = Field(primary_key=True, max_length=9, foreign_key="cpts.cpts_id")
    idnps: str = Field(primary_key=True, max_length=12, foreign_key="professional.idnps", index=True)
    status: str = Field(max_length=10)
    since: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class SasParticipationRow(RegistryTable, table=True):
    __tablename__ = "sas_participation"

    idnps: str = Field(primary_key=True, max_length=12, foreign_key="professional.idnps")
    mode: str = Field(max_length=20)
    hours_per_week: float
    accepts_en_sus: bool = False
    en_sus_weekly_cap: int | None = None
    start_date: date
    end_date: date | None = None
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class MtCapacityRow(RegistryTable, table=True):
    __tablename__ = "mt_capacity"

    idnps: str = Field(primary_key=True, max_length=12, foreign_key="professional.idnps")
    accepting: bool
    new_patients_per_month: int = 0
    publics: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    until: date | None = None
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


metadata = RegistryTable.metadata
tables = add_platform_tables(metadata)


async def get_professional(session: AsyncSession, idnps: str) -> ProfessionalRow | None:
    return await session.get(ProfessionalRow, idnps)


async def list_professionals(session: AsyncSession, *, limit: int, offset: int) -> list[ProfessionalRow]:
    query = select(ProfessionalRow).order_by(ProfessionalRow.idnps).limit(limit).offset(offset)
    return list((await session.exec(query)).all())


async def cpts_ids_of(session: AsyncSession, idnps: str) -> list[str]:
    query = select(MembershipRow.cpts_id).where(MembershipRow.idnps == idnps).order_by(MembershipRow.cpts_id)
    return list((await session.exec(query)).all())
