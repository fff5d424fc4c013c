"""Request and response bodies of the patient-matching REST API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from cpts_events.patient_matching import GpDeclineReason, PatientDeclineReason, WithdrawalReason
from cpts_events.registry import INSEE_PATTERN
from cpts_platform.problems import RequestModel

Sex = Literal["F", "M", "U"]
PatientStatus = Literal["waiting", "proposed", "mt_declared", "withdrawn", "found_elsewhere", "merged"]
ProposalStatus = Literal["pending", "accepted", "declined", "expired", "cancelled"]
PHONE_PATTERN = r"^\+?[0-9 .]{6,20}$"


# --- Patients -----------------------------------------------------------------------------------------------


class IdentityIn(RequestModel):
    birth_name: str = Field(min_length=1, max_length=100, description="Nom de naissance.")
    used_name: str | None = Field(default=None, max_length=100, description="Nom d'usage, s'il diffère.")
    first_names: str = Field(min_length=1, max_length=200, description="Prénoms, le premier d'abord.")
    birth_date: date
    sex: Sex
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    ins_nir: str | None = Field(default=None, max_length=25,
                                description="NIR of a qualified INS identity (key checked).")


class IdentityPublic(BaseModel):
    birth_name: str
    used_name: str | None
    first_names: str
    birth_date: date
    sex: Sex
    phone: str | None
    ins_nir: str | None


class MobilityIn(RequestModel):
    max_distance_km: float | None = Field(
        default=None, ge=0, le=200, description="How far the patient can travel (none: the default).")
    needs_home_visit: bool = False


class PriorityFactsIn(RequestModel):
    ald: bool = Field(default=False, description="Affection de longue durée.")
    c2s: bool = Field(default=False, description="Complémentaire santé solidaire.")
    pregnancy: bool = False
    disability: bool = False
    hospital_discharge_on: date | None = Field(default=None, description="End of a recent hospital stay.")
    complex: bool = Field(default=False, description="Complex patient, after a nurse's assessment.")
    complex_assessed_on: date | None = Field(default=None, description="Required when complex is true.")
    complex_assessed_by: str | None = Field(default=None, max_length=100,
                                            description="The nurse who assessed (name or IDNPS).")


class EnrolmentIn(RequestModel):
    identity: IdentityIn
    commune_insee: str = Field(pattern=INSEE_PATTERN, description="Commune of residence.")
    mobility: MobilityIn = Field(default_factory=MobilityIn)
    priority: PriorityFactsIn = Field(default_factory=PriorityFactsIn)
    consent: bool = Field(description="The patient agrees to be on the list and proposed to a GP (required).")


class PatientUpdateIn(RequestModel):
    """Only the parts given are changed; `identity` and `priority` are replaced as a whole."""

    identity: IdentityIn | None = None
    commune_insee: str | None = Field(default=None, pattern=INSEE_PATTERN)
    mobility: MobilityIn | None = None
    priority: PriorityFactsIn | None = None


class WithdrawIn(RequestModel):
    reason: WithdrawalReason


class ComponentPublic(BaseModel):
    key: str
    label: str
    points: int


class PriorityPublic(BaseModel):
    score: int
    group: Literal["ald", "70+", "c2s", "other_priority", "none"]
    facts: list[str]
    age: int
    waiting_days: int
    explanation: str = Field(description="e.g. « ALD, 74 ans, attend depuis 63 jours ».")
    components: list[ComponentPublic]


class PendingProposal(BaseModel):
    proposal_id: str
    idnps: str
    deadline: datetime


class PatientPublic(BaseModel):
    patient_id: str
    cpts_id: str
    status: PatientStatus
    status_label: str
    source: str
    identity: IdentityPublic
    commune_insee: str
    commune_name: str | None
    mobility: MobilityIn
    is_child: bool
    priority_facts: PriorityFactsIn
    priority: PriorityPublic
    consent_at: datetime
    consent_source: str
    enrolled_at: datetime
    status_changed_at: datetime
    mt_idnps: str | None
    ended_reason: str | None
    merged_into: str | None
    pending_proposal: PendingProposal | None
    excluded_gps: int = Field(description="GPs never to be proposed again to this patient.")


class DuplicateBrief(BaseModel):
    candidate_id: str
    other_patient_id: str
    reason: str


class EnrolmentResult(BaseModel):
    outcome: Literal["created", "existing", "re_enrolled"]
    patient: PatientPublic
    near_duplicates: list[DuplicateBrief] = Field(
        description="Records that may be the same person, put on the review list (not merged).")


class PatientSummary(BaseModel):
    patient_id: str
    status: PatientStatus
    birth_name: str
    used_name: str | None
    first_names: str
    birth_date: date
    commune_insee: str
    priority: PriorityPublic
    rank: int | None = Field(description="Position in the priority order among the waiting patients.")
    enrolled_at: datetime


class PatientPage(BaseModel):
    items: list[PatientSummary]
    total: int


class ComparedPatient(BaseModel):
    patient_id: str
    priority: PriorityPublic
    enrolled_at: datetime


class ComparisonPublic(BaseModel):
    first: str = Field(description="patient_id of the one who comes first.")
    score_difference: int
    differences: list[ComponentPublic] = Field(description="Components that differ: points of a minus b.")
    explanation: str
    a: ComparedPatient
    b: ComparedPatient


# --- Duplicates ---------------------------------------------------------------------------------------------


class DuplicateSide(BaseModel):
    patient_id: str
    status: PatientStatus
    birth_name: str
    used_name: str | None
    first_names: str
    birth_date: date
    sex: str
    commune_insee: str
    has_ins: bool
    enrolled_at: datetime


class DuplicatePublic(BaseModel):
    candidate_id: str
    reason: str
    status: Literal["open", "merged", "kept_separate", "obsolete"]
    detected_at: datetime
    resolved_at: datetime | None
    a: DuplicateSide
    b: DuplicateSide


class DuplicatePage(BaseModel):
    items: list[DuplicatePublic]
    total: int


class ResolveIn(RequestModel):
    decision: Literal["merge", "keep_separate"]
    keep: str | None = Field(default=None, max_length=36,
                             description="For a merge: the record kept (default: the older one).")


class ResolveResult(BaseModel):
    candidate_id: str
    status: str
    kept: PatientPublic | None


# --- Rounds and proposals -----------------------------------------------------------------------------------


class GroupFigures(BaseModel):
    waiting: int
    exact: int = Field(description="Proposed by the round.")
    fcfs: int = Field(description="Would have been proposed first come, first served.")


class RoundPublic(BaseModel):
    round_id: str
    cpts_id: str
    trigger: Literal["manual", "scheduled"]
    started_by: str
    started_at: datetime
    duration_ms: int
    patients: int
    gps: int
    capacity: int
    proposals: int
    weight_waiting: int
    weighted_served: int
    weighted_coverage: float = Field(description="Priority weight served / weight waiting.")
    total_distance_km: float
    spread_cost: int
    fcfs_served: int
    fcfs_weighted_served: int
    fcfs_weighted_coverage: float
    fcfs_total_distance_km: float
    fcfs_spread_cost: int
    groups: dict[str, GroupFigures]
    summary: str


class RoundPage(BaseModel):
    items: list[RoundPublic]
    total: int


class ProposalPublic(BaseModel):
    """A proposal as the CPTS sees it."""

    proposal_id: str
    patient_id: str
    idnps: str
    gp_name: str | None
    round_id: str
    status: ProposalStatus
    distance_km: float
    made_at: datetime
    deadline: datetime
    decided_at: datetime | None
    declined_by: str | None
    decline_reason: str | None


class ProposalPage(BaseModel):
    items: list[ProposalPublic]
    total: int


class PatientContact(BaseModel):
    """What a GP needs to call a patient proposed to them, and nothing more."""

    family_name: str
    first_name: str
    birth_year: int
    age: int
    phone: str | None
    commune_insee: str
    commune_name: str | None
    needs_home_visit: bool
    is_child: bool


class GpProposal(BaseModel):
    """A proposal as the GP sees it: the patient's contact only while it is pending or accepted."""

    proposal_id: str
    status: ProposalStatus
    made_at: datetime
    deadline: datetime
    decided_at: datetime | None
    distance_km: float
    patient: PatientContact | None


class GpProposalPage(BaseModel):
    items: list[GpProposal]
    total: int


class GpDeclineIn(RequestModel):
    reason: GpDeclineReason


class PatientDeclineIn(RequestModel):
    reason: PatientDeclineReason
