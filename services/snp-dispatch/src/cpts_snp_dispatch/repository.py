"""Tables of the snp-dispatch service, including its read model of the registry's professionals."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_platform.db import UtcDateTime, add_platform_tables


class DispatchTable(SQLModel, registry=registry()):
    pass


class ProfessionalView(DispatchTable, table=True):
    """What snp-dispatch knows of a professional (effecteur), built from the `registry` topic."""

    __tablename__ = "professional_view"

    idnps: str = Field(primary_key=True, max_length=12)
    civility: str | None = Field(default=None, max_length=20)
    family_name: str = Field(max_length=100)
    given_name: str = Field(max_length=100)
    profession_code: str = Field(max_length=10)
    specialty_code: str | None = Field(default=None, max_length=10)
    commune_insee: str | None = Field(default=None, max_length=5, index=True)
    cpts_ids: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    sites: list[dict] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False,
                                                                        server_default="[]"))
    sas_participant: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    sas_mode: str | None = Field(default=None, max_length=20)
    accepts_en_sus: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    en_sus_weekly_cap: int | None = None
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


metadata = DispatchTable.metadata
tables = add_platform_tables(metadata)


async def get_professional(session: AsyncSession, idnps: str) -> ProfessionalView | None:
    return await session.get(ProfessionalView, idnps)
