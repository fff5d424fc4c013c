"""Events published by the snp-dispatch service (topic `snp-dispatch`).

Slot and appointment events are keyed by the professional's IDNPS, so one professional's agenda stays in order;
care-request events are keyed by the request id. None of them carries a patient's identity, except
`patient_without_mt.seen`, which patient matching needs to enrol the patient and which is only published when the
patient consented to be referred for a médecin traitant.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from cpts_events.catalogue import event_type, topics
from cpts_events.envelope import EventPayload
from cpts_events.registry import FINESS_PATTERN, INSEE_PATTERN, Idnps

ServiceType = Literal["AMB", "HH", "VR"]
Visibility = Literal["PUBLIC", "PRO", "SNP", "CPTS"]
Origin = Literal["sas", "cpts_phone", "member_referral"]
Urgency = Literal["same_day", "24h", "48h"]
Orientation = Literal["pdsa", "mmg", "emergency_department", "other"]


class SlotFacts(EventPayload):
    slot_id: str = Field(min_length=1, max_length=64)
    idnps: str = Idnps
    cpts_ids: list[str] = Field(default_factory=list, description="CPTS the professional belongs to.")
    site_id: str = Field(min_length=1, max_length=40)
    commune_insee: str | None = Field(default=None, pattern=INSEE_PATTERN)
    start: datetime
    end: datetime
    service_type: ServiceType
    visibility: list[Visibility]
    appointment_type: Literal["ROUTINE", "WALKIN"]


@event_type("fr.cpts.snp.slot.published.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="A professional published a slot of unscheduled care.")
class SlotPublished(SlotFacts):
    pass


@event_type("fr.cpts.snp.slot.withdrawn.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="A slot was withdrawn (a booked one is cancelled first, with its own event).")
class SlotWithdrawn(SlotFacts):
    had_appointment: bool = False


@event_type("fr.cpts.snp.slot.visibility.changed.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="The visibility of a slot changed (state after the change).")
class SlotVisibilityChanged(SlotFacts):
    pass


@event_type("fr.cpts.snp.slot.held.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="A slot is held for a care request until `expires_at`; after that it is free again.")
class SlotHeld(EventPayload):
    slot_id: str
    idnps: str = Idnps
    hold_id: str
    request_id: str
    expires_at: datetime


@event_type("fr.cpts.snp.slot.released.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="A hold was released before it expired, without a booking.")
class SlotReleased(EventPayload):
    slot_id: str
    idnps: str = Idnps
    hold_id: str


@event_type("fr.cpts.snp.slot.hold_expired.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="A hold reached its expiry without a booking: the slot is free again.")
class SlotHoldExpired(EventPayload):
    slot_id: str
    idnps: str = Idnps
    hold_id: str
    request_id: str
    expired_at: datetime


@event_type("fr.cpts.snp.care_request.received.v1", topic=topics.SNP_DISPATCH, key="request_id",
            description="A care request was taken by a regulator or a CPTS secretary (no patient identity).")
class CareRequestReceived(EventPayload):
    request_id: str
    origin: Origin
    cpts_id: str | None = Field(default=None, pattern=FINESS_PATTERN,
                                description="The secretary's CPTS, or the CPTS whose territory holds the commune.")
    commune_insee: str = Field(pattern=INSEE_PATTERN)
    departement: str
    urgency: Urgency
    reason_category: str
    has_mt: bool
    age_band: Literal["child", "adult", "70+"]
    received_at: datetime


class AppointmentFacts(EventPayload):
    appointment_id: str
    request_id: str | None = None
    idnps: str = Idnps
    cpts_ids: list[str] = Field(default_factory=list)
    request_cpts_id: str | None = None
    origin: Origin | None = None
    kind: Literal["slot", "en_sus"]
    slot_id: str | None = None
    start: datetime | None = Field(default=None, description="Start of the slot; none for an en-sus booking.")
    service_type: ServiceType | None = None
    request_received_at: datetime | None = None


@event_type("fr.cpts.snp.appointment.booked.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="An appointment was booked on a slot, or en sus (beyond the published slots).")
class AppointmentBooked(AppointmentFacts):
    booked_at: datetime


@event_type("fr.cpts.snp.appointment.cancelled.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="An appointment was cancelled; its slot, if any, is free again unless withdrawn.")
class AppointmentCancelled(AppointmentFacts):
    cancelled_at: datetime
    reason: Literal["patient", "professional", "slot_withdrawn", "other"]


@event_type("fr.cpts.snp.appointment.fulfilled.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="The patient was seen.")
class AppointmentFulfilled(AppointmentFacts):
    recorded_at: datetime


@event_type("fr.cpts.snp.appointment.noshow.v1", topic=topics.SNP_DISPATCH, key="idnps",
            description="The patient did not come.")
class AppointmentNoShow(AppointmentFacts):
    recorded_at: datetime


@event_type("fr.cpts.snp.care_request.closed_without_slot.v1", topic=topics.SNP_DISPATCH, key="request_id",
            description="No appointment fitted: the request was closed with an orientation and a reason.")
class CareRequestClosedWithoutSlot(EventPayload):
    request_id: str
    origin: Origin
    cpts_id: str | None = None
    commune_insee: str = Field(pattern=INSEE_PATTERN)
    departement: str
    urgency: Urgency
    orientation: Orientation
    reason: Literal["no_slot_in_window", "no_slot_for_modality", "patient_declined", "outside_regulated_hours",
                    "other"]
    received_at: datetime
    closed_at: datetime


class PatientIdentity(EventPayload):
    family_name: str = Field(max_length=100)
    given_name: str = Field(max_length=100)
    birth_date: date
    sex: Literal["F", "M", "U"]
    phone: str | None = Field(default=None, max_length=20)
    ins_nir: str | None = Field(default=None, max_length=15)


@event_type("fr.cpts.snp.patient_without_mt.seen.v1", topic=topics.SNP_DISPATCH, key="request_id",
            description="A patient without a médecin traitant was seen and consented to be referred for one "
                        "(carries identity: for patient matching only, never for indicators).")
class PatientWithoutMtSeen(EventPayload):
    request_id: str
    appointment_id: str
    cpts_id: str | None = None
    commune_insee: str = Field(pattern=INSEE_PATTERN)
    patient: PatientIdentity
    seen_by: str = Idnps
    seen_at: datetime
