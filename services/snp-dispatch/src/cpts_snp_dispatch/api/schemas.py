"""Request and response bodies of the snp-dispatch REST API."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from cpts_events.registry import FINESS_PATTERN, IDNPS_PATTERN, INSEE_PATTERN
from cpts_platform.problems import RequestModel

ServiceType = Literal["AMB", "HH", "VR"]
Visibility = Literal["PUBLIC", "PRO", "SNP", "CPTS"]
DEFAULT_VISIBILITY: list[Visibility] = ["SNP", "PRO"]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs an explicit UTC offset, e.g. 2026-11-24T14:00:00+01:00")
    return value


# --- Slots ---------------------------------------------------------------------------------------------------


class SlotIn(RequestModel):
    start: datetime
    end: datetime
    service_type: ServiceType = "AMB"
    visibility: list[Visibility] = Field(default_factory=lambda: list(DEFAULT_VISIBILITY), min_length=1, max_length=4)
    appointment_type: Literal["ROUTINE", "WALKIN"] = "ROUTINE"
    comment: str | None = Field(default=None, max_length=500)

    _aware = field_validator("start", "end")(_aware)


class SlotsPublish(RequestModel):
    """Slots of one professional at one practice site."""

    idnps: str = Field(pattern=IDNPS_PATTERN)
    site_id: str = Field(min_length=1, max_length=40)
    slots: list[SlotIn] = Field(min_length=1, max_length=500)


class RecurringPublish(RequestModel):
    """"Every Tuesday 14:00-16:00 in 15-minute slots for 6 weeks", in Paris local time."""

    idnps: str = Field(pattern=IDNPS_PATTERN)
    site_id: str = Field(min_length=1, max_length=40)
    weekdays: list[int] = Field(min_length=1, max_length=7, description="ISO weekdays: 1 Monday ... 7 Sunday.")
    start_time: time
    end_time: time
    slot_minutes: int = Field(ge=5, le=240)
    first_day: date
    weeks: int = Field(ge=1, le=26)
    service_type: ServiceType = "AMB"
    visibility: list[Visibility] = Field(default_factory=lambda: list(DEFAULT_VISIBILITY), min_length=1, max_length=4)
    appointment_type: Literal["ROUTINE", "WALKIN"] = "ROUTINE"

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if any(d < 1 or d > 7 for d in value):
            raise ValueError("weekdays are ISO numbers from 1 (Monday) to 7 (Sunday)")
        return sorted(set(value))


class VisibilityIn(RequestModel):
    visibility: list[Visibility] = Field(min_length=1, max_length=4)


class SlotPublic(BaseModel):
    slot_id: str
    idnps: str
    site_id: str
    schedule_id: str
    commune_insee: str | None
    start: datetime
    end: datetime
    service_type: str
    visibility: list[str]
    appointment_type: str
    status: Literal["free", "held", "booked", "withdrawn"]
    held_until: datetime | None = None


class SlotPage(BaseModel):
    items: list[SlotPublic]
    total: int


class HoldIn(RequestModel):
    request_id: str = Field(min_length=1, max_length=36)


class HoldPublic(BaseModel):
    slot_id: str
    hold_id: str
    request_id: str
    expires_at: datetime


# --- Care requests -------------------------------------------------------------------------------------------


class PatientIn(RequestModel):
    family_name: str = Field(min_length=1, max_length=100)
    given_name: str = Field(min_length=1, max_length=100)
    birth_date: date
    sex: Literal["F", "M", "U"]
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 .]{6,20}$")
    ins_nir: str | None = Field(default=None, max_length=25,
                                description="NIR of a qualified INS identity; its key is checked.")


class LocationIn(RequestModel):
    """Where the patient is: an address with its commune (and its point when geocoded), a commune, or a postcode."""

    address: str | None = Field(default=None, max_length=300)
    commune_insee: str | None = Field(default=None, pattern=INSEE_PATTERN)
    postcode: str | None = Field(default=None, pattern=r"^\d{5}$")
    lat: float | None = Field(default=None, ge=-90, le=90, description="Geocoded point of the address.")
    lon: float | None = Field(default=None, ge=-180, le=180)


class CareRequestIn(RequestModel):
    origin: Literal["sas", "cpts_phone", "member_referral"]
    cpts_id: str | None = Field(default=None, pattern=FINESS_PATTERN,
                                description="The secretary's CPTS (required when the token holds several).")
    patient: PatientIn
    location: LocationIn
    reason_category: Literal["fever", "pain", "respiratory", "digestive", "skin", "trauma_minor", "urinary",
                             "ent", "mental_health", "prescription_renewal", "certificate", "child", "other"]
    reason_text: str | None = Field(default=None, max_length=1000)
    urgency: Literal["same_day", "24h", "48h"] = "48h"
    needs_home_visit: bool = False
    teleconsultation_ok: bool = False
    mt_idnps: str | None = Field(default=None, pattern=IDNPS_PATTERN,
                                 description="The patient's médecin traitant; absent when mt_none is true.")
    mt_none: bool = Field(default=False, description="The patient has no médecin traitant.")
    consent_mt_referral: bool = Field(
        default=False, description="A patient without a médecin traitant agrees to be referred for one.")


class CareRequestPublic(BaseModel):
    request_id: str
    origin: str
    cpts_id: str | None
    departement: str
    patient: PatientIn
    commune_insee: str
    address: str | None
    located_by: Literal["address", "commune"]
    reason_category: str
    reason_text: str | None
    urgency: str
    needs_home_visit: bool
    teleconsultation_ok: bool
    mt_idnps: str | None
    consent_mt_referral: bool
    status: str
    orientation: str | None
    closed_reason: str | None
    received_at: datetime
    closed_at: datetime | None


class CloseIn(RequestModel):
    orientation: Literal["pdsa", "mmg", "emergency_department", "other"]
    reason: Literal["no_slot_in_window", "no_slot_for_modality", "patient_declined", "outside_regulated_hours",
                    "other"]
    comment: str | None = Field(default=None, max_length=500)


# --- Search --------------------------------------------------------------------------------------------------


class SlotBrief(BaseModel):
    slot_id: str
    start: datetime
    end: datetime
    service_type: str
    bookable: bool = Field(description="ROUTINE slots are booked; WALKIN ones are open consultations.")
    site_id: str
    distance_km: float | None


class Card(BaseModel):
    rank: int
    group: Literal["own_doctor", "participant_with_slots", "non_participant_with_slots",
                   "participant_without_slots", "others"]
    idnps: str
    civility: str | None
    family_name: str
    given_name: str
    profession_code: str
    specialty_code: str | None
    sas_participant: bool
    accepts_en_sus: bool
    is_own_doctor: bool
    distance_km: float | None
    commune_insee: str | None
    free_slot_count: int
    slots: dict[Literal["today", "tomorrow", "after_tomorrow"], list[SlotBrief]]


class EnSusCandidate(BaseModel):
    idnps: str
    civility: str | None
    family_name: str
    given_name: str
    distance_km: float | None
    remaining_this_week: int | None = Field(description="None when no weekly cap was declared.")


class SearchResult(BaseModel):
    request_id: str
    window_start: datetime
    window_end: datetime
    radius_km: float
    order: Literal["distance", "neutral"]
    service_types: list[str]
    cards: list[Card]
    total_cards: int
    professionals_with_slots: int
    en_sus: list[EnSusCandidate] = Field(description="Effecteurs accepting patients en sus, offered when no slot "
                                                     "is free.")


# --- Appointments --------------------------------------------------------------------------------------------


class AppointmentIn(RequestModel):
    slot_id: str = Field(min_length=1, max_length=64)
    request_id: str | None = Field(default=None, max_length=36)
    hold_id: str | None = Field(default=None, max_length=36)


class EnSusIn(RequestModel):
    request_id: str = Field(min_length=1, max_length=36)
    idnps: str = Field(pattern=IDNPS_PATTERN)


class CancelIn(RequestModel):
    reason: Literal["patient", "professional", "other"] = "patient"


class OutcomeIn(RequestModel):
    outcome: Literal["fulfilled", "noshow"]


class AppointmentPublic(BaseModel):
    appointment_id: str
    identifier: str
    request_id: str | None
    slot_id: str | None
    idnps: str
    kind: Literal["slot", "en_sus"]
    status: Literal["booked", "cancelled", "fulfilled", "noshow"]
    start: datetime | None
    end: datetime | None
    service_type: str | None
    booked_at: datetime
    cancel_reason: str | None


class EffecteurPublic(BaseModel):
    idnps: str
    civility: str | None
    family_name: str
    given_name: str
    profession_code: str
    specialty_code: str | None
    commune_insee: str | None
    cpts_ids: list[str]
    active: bool
    sites: list[dict]
    sas_participant: bool
    sas_mode: str | None
    accepts_en_sus: bool
    en_sus_weekly_cap: int | None
    updated_at: datetime
