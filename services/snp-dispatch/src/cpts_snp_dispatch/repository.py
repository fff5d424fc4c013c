"""Tables of the snp-dispatch service: slots, care requests, appointments, and read models of the registry."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_platform.audit import add_audit_table
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


class CptsMemberView(DispatchTable, table=True):
    """Which CPTS each professional belongs to (the `cpts_ids` of `ProfessionalView`, one row per pair): who
    sees the CPTS slots of whom, answered by an index rather than by reading every professional."""

    __tablename__ = "cpts_member_view"

    cpts_id: str = Field(primary_key=True, max_length=9)
    idnps: str = Field(primary_key=True, max_length=12, index=True)


@sa.event.listens_for(ProfessionalView, "after_insert")
@sa.event.listens_for(ProfessionalView, "after_update")
def _follow_memberships(_mapper, connection: sa.Connection, view: ProfessionalView) -> None:
    """`cpts_member_view` follows `ProfessionalView.cpts_ids` in the flush that writes them, whoever writes."""
    m = CptsMemberView.__table__
    if not sa.inspect(view).attrs.cpts_ids.history.has_changes():
        return
    connection.execute(sa.delete(m).where(m.c.idnps == view.idnps))
    if view.cpts_ids:
        connection.execute(sa.insert(m), [{"cpts_id": c, "idnps": view.idnps} for c in sorted(set(view.cpts_ids))])


class CptsView(DispatchTable, table=True):
    """A CPTS and its communes, built from the `registry` topic (scope of secretaries, CPTS of a request)."""

    __tablename__ = "cpts_view"

    cpts_id: str = Field(primary_key=True, max_length=9)
    name: str = Field(default="", max_length=200)
    communes: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    departements: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class ScheduleRow(DispatchTable, table=True):
    """A professional's agenda at one practice site (FHIR Schedule): slots hang off it."""

    __tablename__ = "schedule"
    __table_args__ = (sa.UniqueConstraint("idnps", "site_id", name="uq_schedule_professional_site"),)

    schedule_id: str = Field(primary_key=True, max_length=64)
    idnps: str = Field(max_length=12, index=True)
    site_id: str = Field(max_length=40)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class SlotRow(DispatchTable, table=True):
    """A published slot. `status` is free, booked or withdrawn; a hold is a free slot with `held_until` ahead.

    The site's coordinates and commune are copied at publication so that the search reads one table.
    """

    __tablename__ = "slot"
    __table_args__ = (
        # Covers the search's aggregate: free slots of a few map cells in the window, per professional and site,
        # answered from the index alone (one range seek on start per cell). It starts with the cell so that the
        # queries by professional (agenda, first slots, FHIR) keep to ix_slot_professional_start.
        sa.Index("ix_slot_free_cell", "geo_cell", "status", "start", "lat", "lon", "idnps", "service_type",
                 "held_until", "vis_public", "vis_pro", "vis_snp", "vis_cpts"),
        sa.Index("ix_slot_professional_start", "idnps", "start"),
        # The few held slots, for the sweep of expired holds.
        sa.Index("ix_slot_held_until", "held_until", postgresql_where=sa.text("held_until IS NOT NULL"),
                 sqlite_where=sa.text("held_until IS NOT NULL")),
        sa.CheckConstraint('"end" > start', name="ck_slot_end_after_start"),
    )

    slot_id: str = Field(primary_key=True, max_length=64)
    idnps: str = Field(max_length=12)
    site_id: str = Field(max_length=40)
    schedule_id: str = Field(max_length=64, index=True)
    commune_insee: str | None = Field(default=None, max_length=5)
    departement: str | None = Field(default=None, max_length=3)
    lat: float | None = None
    lon: float | None = None
    geo_cell: int | None = Field(default=None, description="Map cell of the site (`domain.cells`).")
    start: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    end: datetime = Field(sa_column=sa.Column("end", UtcDateTime(), nullable=False))
    service_type: str = Field(max_length=3)
    vis_public: bool = False
    vis_pro: bool = False
    vis_snp: bool = False
    vis_cpts: bool = False
    appointment_type: str = Field(default="ROUTINE", max_length=10)
    status: str = Field(default="free", max_length=10)
    held_until: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))
    hold_id: str | None = Field(default=None, max_length=36)
    hold_request_id: str | None = Field(default=None, max_length=36)
    comment: str | None = Field(default=None, max_length=500)
    published_by: str = Field(max_length=200)
    published_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))

    @property
    def visibility(self) -> list[str]:
        return list(visibility_codes(self))


# The visibility codes of a slot, in this order, by the bit mask of its flags (PUBLIC 1, PRO 2, SNP 4, CPTS 8).
_VISIBILITY_CODES = tuple(tuple(code for bit, code in enumerate(("PUBLIC", "PRO", "SNP", "CPTS")) if mask >> bit & 1)
                          for mask in range(16))


def visibility_codes(slot: Any) -> tuple[str, ...]:
    """The visibility codes of a slot (a `SlotRow`, or a row with its `vis_*` columns)."""
    return _VISIBILITY_CODES[(slot.vis_public and 1) | (slot.vis_pro and 2) | (slot.vis_snp and 4)
                             | (slot.vis_cpts and 8)]


class CareRequestRow(DispatchTable, table=True):
    """A care request (intake): holds the patient's identity, so every read of it is authorised and audited."""

    __tablename__ = "care_request"

    request_id: str = Field(primary_key=True, max_length=36)
    origin: str = Field(max_length=20)
    cpts_id: str | None = Field(default=None, max_length=9, index=True)
    departement: str = Field(max_length=3, index=True)
    created_by: str = Field(max_length=200)
    family_name: str = Field(max_length=100)
    given_name: str = Field(max_length=100)
    birth_date: date
    sex: str = Field(max_length=1)
    phone: str | None = Field(default=None, max_length=20)
    ins_nir: str | None = Field(default=None, max_length=15)
    commune_insee: str = Field(max_length=5)
    address: str | None = Field(default=None, max_length=300)
    lat: float
    lon: float
    located_by: str = Field(max_length=10, description="address (precise point) or commune")
    reason_category: str = Field(max_length=40)
    reason_text: str | None = Field(default=None, max_length=1000)
    urgency: str = Field(max_length=10)
    needs_home_visit: bool = False
    teleconsultation_ok: bool = False
    mt_idnps: str | None = Field(default=None, max_length=12)
    consent_mt_referral: bool = False
    search_seed: int
    status: str = Field(default="open", max_length=20, index=True)
    orientation: str | None = Field(default=None, max_length=30)
    closed_reason: str | None = Field(default=None, max_length=40)
    closed_comment: str | None = Field(default=None, max_length=500)
    received_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))


ACTIVE_APPOINTMENT = "status IN ('booked', 'fulfilled', 'noshow')"


class AppointmentRow(DispatchTable, table=True):
    """An appointment on a slot, or en sus (no slot). The partial unique index is the last line of defence
    against a double booking: at most one live appointment per slot, whatever the concurrency."""

    __tablename__ = "appointment"
    __table_args__ = (
        sa.Index("ux_appointment_live_slot", "slot_id", unique=True,
                 postgresql_where=sa.text(ACTIVE_APPOINTMENT), sqlite_where=sa.text(ACTIVE_APPOINTMENT)),
        sa.Index("ix_appointment_en_sus_week", "idnps", "kind", "booked_at"),
    )

    appointment_id: str = Field(primary_key=True, max_length=36)
    identifier: str = Field(max_length=100, unique=True, description="Business identifier (FHIR Appointment).")
    request_id: str | None = Field(default=None, max_length=36, index=True)
    slot_id: str | None = Field(default=None, max_length=64)
    idnps: str = Field(max_length=12)
    kind: str = Field(max_length=10, description="slot or en_sus")
    status: str = Field(default="booked", max_length=10)
    start: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))
    end: datetime | None = Field(default=None, sa_column=sa.Column("end", UtcDateTime(), nullable=True))
    service_type: str | None = Field(default=None, max_length=3)
    booked_by: str = Field(max_length=200)
    booked_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    cancel_reason: str | None = Field(default=None, max_length=20)
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


metadata = DispatchTable.metadata
tables = add_platform_tables(metadata)
audit_table = add_audit_table(metadata)


async def get_professional(session: AsyncSession, idnps: str) -> ProfessionalView | None:
    return await session.get(ProfessionalView, idnps)
