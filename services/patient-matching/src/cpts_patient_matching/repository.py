"""Tables of the patient-matching service, including its read model of the GPs of the registry."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_platform.db import UtcDateTime, add_platform_tables


class MatchingTable(SQLModel, registry=registry()):
    pass


class GpView(MatchingTable, table=True):
    """A GP who can be proposed as médecin traitant, built from the `registry` topic."""

    __tablename__ = "gp_view"

    idnps: str = Field(primary_key=True, max_length=12)
    commune_insee: str | None = Field(default=None, max_length=5, index=True)
    cpts_ids: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    accepting: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    new_patients_per_month: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    publics: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False,
                                                                         server_default="[]"))
    accepting_until: date | None = None
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


metadata = MatchingTable.metadata
tables = add_platform_tables(metadata)


async def get_gp(session: AsyncSession, idnps: str) -> GpView | None:
    return await session.get(GpView, idnps)
