"""Tables of the patient-matching service: the patients' list, proposals, rounds, the duplicates to review,
the scheduler's state, and its read models of the registry (GPs and their capacity, CPTS territories).

`patient` holds identities: every read of it is authorised and written to `audit_log`.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_platform.audit import add_audit_table
from cpts_platform.db import UtcDateTime, add_platform_tables


class MatchingTable(SQLModel, registry=registry()):
    pass


def _json_list() -> sa.Column:
    return sa.Column(sa.JSON, nullable=False, server_default="[]")


class GpView(MatchingTable, table=True):
    """A GP who can be proposed as médecin traitant, built from the `registry` topic."""

    __tablename__ = "gp_view"

    idnps: str = Field(primary_key=True, max_length=12)
    family_name: str | None = Field(default=None, max_length=100)
    given_name: str | None = Field(default=None, max_length=100)
    commune_insee: str | None = Field(default=None, max_length=5, index=True)
    cpts_ids: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    accepting: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    new_patients_per_month: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    publics: list[str] = Field(default_factory=list, sa_column=_json_list())
    accepting_until: date | None = None
    site_commune_insee: str | None = Field(
        default=None, max_length=5, description="Commune of the practice site distances are measured to.")
    lat: float | None = Field(default=None, description="Point of the practice site (None: the commune's).")
    lon: float | None = None
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class CptsView(MatchingTable, table=True):
    """A CPTS and its communes, from the `registry` topic: the CPTS of a patient seen by the SAS."""

    __tablename__ = "cpts_view"

    cpts_id: str = Field(primary_key=True, max_length=9)
    name: str = Field(default="", max_length=200)
    communes: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


ONE_INS_PER_CPTS = "ins_nir IS NOT NULL AND status <> 'merged'"


class PatientRow(MatchingTable, table=True):
    """A patient of a CPTS's list of patients without a médecin traitant (one person, one record per CPTS)."""

    __tablename__ = "patient"
    __table_args__ = (
        sa.Index("ix_patient_cpts_status", "cpts_id", "status"),
        sa.Index("ix_patient_cpts_trait_key", "cpts_id", "trait_key"),
        sa.Index("ix_patient_cpts_used_trait_key", "cpts_id", "used_trait_key"),
        sa.Index("ix_patient_cpts_birth_date", "cpts_id", "birth_date"),
        sa.Index("ux_patient_cpts_ins", "cpts_id", "ins_nir", unique=True,
                 postgresql_where=sa.text(ONE_INS_PER_CPTS), sqlite_where=sa.text(ONE_INS_PER_CPTS)),
    )

    patient_id: str = Field(primary_key=True, max_length=36)
    cpts_id: str = Field(max_length=9)
    status: str = Field(default="waiting", max_length=20)
    source: str = Field(max_length=20, description="guichet, snp or cpam_list")
    source_ref: str | None = Field(default=None, max_length=64, description="e.g. the SAS care request id.")
    birth_name: str = Field(max_length=100)
    used_name: str | None = Field(default=None, max_length=100)
    first_names: str = Field(max_length=200)
    birth_date: date
    sex: str = Field(max_length=1)
    phone: str | None = Field(default=None, max_length=20)
    ins_nir: str | None = Field(default=None, max_length=15)
    trait_key: str = Field(max_length=300)
    used_trait_key: str | None = Field(default=None, max_length=300)
    commune_insee: str = Field(max_length=5)
    lat: float
    lon: float
    max_distance_km: float | None = Field(default=None, description="None: the service's default mobility.")
    needs_home_visit: bool = False
    consent_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    consent_source: str = Field(max_length=30)
    ald: bool = False
    c2s: bool = False
    pregnancy: bool = False
    disability: bool = False
    hospital_discharge_on: date | None = None
    complex: bool = False
    complex_assessed_on: date | None = None
    complex_assessed_by: str | None = Field(default=None, max_length=100)
    priority_facts: list[str] = Field(default_factory=list, sa_column=_json_list(),
                                      description="The facts last announced in an event (to detect changes).")
    age_band: str = Field(max_length=5)
    enrolled_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    status_changed_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    mt_idnps: str | None = Field(default=None, max_length=12)
    ended_reason: str | None = Field(default=None, max_length=30)
    merged_into: str | None = Field(default=None, max_length=36)
    created_by: str = Field(max_length=200)


class ExclusionRow(MatchingTable, table=True):
    """A GP never to be proposed to a patient again: declined by the GP (or expired), or by the patient."""

    __tablename__ = "exclusion"

    patient_id: str = Field(primary_key=True, max_length=36)
    idnps: str = Field(primary_key=True, max_length=12)
    reason: str = Field(max_length=20, description="gp_declined, gp_expired or patient_declined")
    at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


ONE_PENDING = "status = 'pending'"


class ProposalRow(MatchingTable, table=True):
    """A patient proposed to a GP by a round; `deadline` for the GP's answer."""

    __tablename__ = "proposal"
    __table_args__ = (
        sa.Index("ix_proposal_gp_status", "idnps", "status"),
        sa.Index("ix_proposal_status_deadline", "status", "deadline"),
        sa.Index("ix_proposal_cpts_status", "cpts_id", "status"),
        sa.Index("ix_proposal_gp_made_at", "idnps", "made_at"),
        sa.Index("ux_proposal_pending_patient", "patient_id", unique=True,
                 postgresql_where=sa.text(ONE_PENDING), sqlite_where=sa.text(ONE_PENDING)),
    )

    proposal_id: str = Field(primary_key=True, max_length=36)
    patient_id: str = Field(max_length=36, index=True)
    idnps: str = Field(max_length=12)
    cpts_id: str = Field(max_length=9)
    round_id: str = Field(max_length=36, index=True)
    status: str = Field(default="pending", max_length=10)
    distance_km: float
    made_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    deadline: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    decided_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))
    decided_by: str | None = Field(default=None, max_length=200)
    declined_by: str | None = Field(default=None, max_length=10, description="gp or patient")
    decline_reason: str | None = Field(default=None, max_length=30)


class RoundRow(MatchingTable, table=True):
    """A matching round, with its objective and the first-come-first-served baseline on the same input."""

    __tablename__ = "matching_round"
    __table_args__ = (sa.Index("ix_matching_round_cpts_started", "cpts_id", "started_at"),)

    round_id: str = Field(primary_key=True, max_length=36)
    cpts_id: str = Field(max_length=9)
    trigger: str = Field(max_length=10, description="manual or scheduled")
    started_by: str = Field(max_length=200)
    started_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    duration_ms: int = 0
    patients: int = 0
    gps: int = 0
    capacity: int = 0
    proposals: int = 0
    weight_waiting: int = 0
    weighted_served: int = 0
    total_distance_units: int = 0
    spread_cost: int = 0
    fcfs_served: int = 0
    fcfs_weighted_served: int = 0
    fcfs_total_distance_units: int = 0
    fcfs_spread_cost: int = 0
    groups: dict = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False),
                         description="Per priority group: waiting, served by the round, served by FCFS.")


class DuplicateRow(MatchingTable, table=True):
    """Two records that may be one person, waiting for a human decision (merge or keep separate)."""

    __tablename__ = "duplicate_candidate"
    __table_args__ = (
        sa.UniqueConstraint("patient_a", "patient_b", name="uq_duplicate_pair"),
        sa.Index("ix_duplicate_cpts_status", "cpts_id", "status"),
    )

    candidate_id: str = Field(primary_key=True, max_length=36)
    cpts_id: str = Field(max_length=9)
    patient_a: str = Field(max_length=36, index=True, description="The older record.")
    patient_b: str = Field(max_length=36, index=True, description="The newer record.")
    reason: str = Field(max_length=200)
    status: str = Field(default="open", max_length=15, description="open, merged, kept_separate or obsolete")
    detected_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))
    resolved_by: str | None = Field(default=None, max_length=200)


class SchedulerStateRow(MatchingTable, table=True):
    """When a periodic job runs next; its row is locked by the replica that runs it."""

    __tablename__ = "scheduler_state"

    job: str = Field(primary_key=True, max_length=40)
    next_run_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    last_run_at: datetime | None = Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=True))


metadata = MatchingTable.metadata
tables = add_platform_tables(metadata)
audit_table = add_audit_table(metadata)


async def get_gp(session: AsyncSession, idnps: str) -> GpView | None:
    return await session.get(GpView, idnps)
