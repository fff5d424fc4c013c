"""Events published by the patient-matching service (topic `patient-matching`).

Every event is keyed by the patient record's id (a pseudonymous UUID), so the story of one patient stays in
order on one partition. No event carries a patient's identity (names, birth date, phone, INS): indicators
consume them, and only need the CPTS, the commune, the priority group(s), the age band and dates.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from cpts_events.catalogue import event_type, topics
from cpts_events.envelope import EventPayload
from cpts_events.registry import FINESS_PATTERN, INSEE_PATTERN, Idnps

PriorityGroup = Literal["ald", "70+", "c2s", "other_priority", "none"]
"""The highest priority group of a patient: ALD first, then 70 and over, then C2S, then the other facts
(pregnancy, disability, recent hospital discharge, complex patient after a nurse assessment)."""
PriorityFact = Literal["ald", "70+", "c2s", "pregnancy", "disability", "recent_hospital_discharge", "complex"]
AgeBand = Literal["child", "adult", "70+"]
EnrolmentSource = Literal["guichet", "snp", "cpam_list"]
WithdrawalReason = Literal["patient_request", "moved_away", "deceased", "unreachable", "merged_duplicate",
                           "other"]
GpDeclineReason = Literal["no_capacity", "too_far", "public_not_taken", "other"]
PatientDeclineReason = Literal["too_far", "prefers_another_gp", "no_longer_needed", "other"]


class PatientFacts(EventPayload):
    """What indicators may know of a patient record: never an identity."""

    patient_id: str = Field(min_length=1, max_length=36, description="Pseudonymous id of the patient record.")
    cpts_id: str = Field(pattern=FINESS_PATTERN, description="FINESS of the CPTS holding the record.")
    commune_insee: str = Field(pattern=INSEE_PATTERN, description="Commune of residence.")
    age_band: AgeBand
    priority_group: PriorityGroup
    priority_facts: list[PriorityFact] = Field(
        default_factory=list, description="Every priority fact that applies (the group is the highest).")
    source: EnrolmentSource
    enrolled_on: date


@event_type("fr.cpts.matching.patient.enrolled.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="A patient without a médecin traitant was enrolled (or enrolled again) in a CPTS's "
                        "list.")
class PatientEnrolled(PatientFacts):
    enrolled_at: datetime
    re_enrolment: bool = Field(default=False, description="The record existed and left the list before.")


@event_type("fr.cpts.matching.patient.updated.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="A patient record was corrected or completed (facts after the change).")
class PatientUpdated(PatientFacts):
    changed: list[Literal["identity", "contact", "commune", "mobility", "priority_facts"]]
    updated_at: datetime


@event_type("fr.cpts.matching.patient.priority.changed.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="The priority facts of a patient changed (new fact, 70th birthday, discharge no "
                        "longer recent...); the waiting time alone never emits it.")
class PriorityChanged(PatientFacts):
    previous_group: PriorityGroup
    previous_facts: list[PriorityFact]
    changed_at: datetime


@event_type("fr.cpts.matching.patient.withdrawn.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="A patient left the list (at their request, moved away, merged into another "
                        "record...).")
class PatientWithdrawn(PatientFacts):
    reason: WithdrawalReason
    merged_into: str | None = Field(default=None, description="The surviving record of a merged duplicate.")
    waiting_days: int = Field(ge=0)
    withdrawn_at: datetime


@event_type("fr.cpts.matching.patient.found_elsewhere.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="A patient of the list found a médecin traitant by other means.")
class PatientFoundElsewhere(PatientFacts):
    waiting_days: int = Field(ge=0)
    found_at: datetime


class ProposalFacts(PatientFacts):
    proposal_id: str = Field(min_length=1, max_length=36)
    idnps: str = Idnps
    round_id: str = Field(min_length=1, max_length=36)
    distance_km: float = Field(ge=0)
    made_at: datetime


@event_type("fr.cpts.matching.proposal.made.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="A matching round proposed the patient to a GP, who answers before the deadline.")
class ProposalMade(ProposalFacts):
    deadline: datetime


@event_type("fr.cpts.matching.proposal.accepted.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="The GP accepted the patient (a médecin traitant declaration follows).")
class ProposalAccepted(ProposalFacts):
    accepted_at: datetime


@event_type("fr.cpts.matching.proposal.declined.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="The GP or the patient declined the proposal: the patient waits again, never to be "
                        "proposed to that GP again.")
class ProposalDeclined(ProposalFacts):
    declined_by: Literal["gp", "patient"]
    reason: GpDeclineReason | PatientDeclineReason
    declined_at: datetime


@event_type("fr.cpts.matching.proposal.expired.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="The GP did not answer before the deadline: counted as declined by the GP.")
class ProposalExpired(ProposalFacts):
    deadline: datetime
    expired_at: datetime


@event_type("fr.cpts.matching.mt.declared.v1", topic=topics.PATIENT_MATCHING, key="patient_id",
            description="The patient has a médecin traitant through the CPTS (the GP accepted a proposal).")
class MtDeclared(PatientFacts):
    idnps: str = Idnps
    proposal_id: str = Field(min_length=1, max_length=36)
    waiting_days: int = Field(ge=0)
    declared_at: datetime
