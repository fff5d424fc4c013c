"""Facts: what the indicators keep of each event, per CPTS, without any identity of a patient.

One event gives one fact per CPTS it concerns (a slot of a professional who belongs to two CPTS counts for
both), or one fact about a professional (`cpts_id` = `PROFESSIONAL_SCOPE`) that definitions join with the
memberships at query time. A fact carries:

- `event_time`: when the thing happened, as the event says it (the payload's own time when it has one,
  such as `received_at` or `booked_at`, else the CloudEvents `time`); never the time it was consumed;
- `ref_time`: the time of the thing the fact is about, the same in all its facts, for definitions that place
  it there: a slot's start, the reception of the care request an appointment or a closure answers;
- `entity`: the thing whose successive states the facts describe (slot, appointment, request, membership);
- `subject`: the professional (IDNPS) concerned, if any, for joins with memberships and professions;
- `attributes`: the few values definitions filter, break down or aggregate on (`FACT_SCHEMAS`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Literal

from cpts_events import Event
from cpts_events import patient_matching as m
from cpts_events import registry as r
from cpts_events import snp_dispatch as s

PROFESSIONAL_SCOPE = "*"
ENTITY_MAX_LENGTH = 64
FINESS = re.compile(r.FINESS_PATTERN)
AttributeType = Literal["str", "num", "bool", "list"]
Scope = Literal["cpts", "professional"]


@dataclass(slots=True)
class Fact:
    """Treated as immutable (never changed once built); not a frozen dataclass because a frozen one sets each
    field through `object.__setattr__`, which doubled the cost of building the facts of an event."""

    event_id: str
    cpts_id: str
    event_type: str
    event_time: datetime
    ref_time: datetime | None = None
    entity: str | None = None
    subject: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Ids are opaque here; one longer than the column is kept as its digest (same entity, same digest).
        if self.entity is not None and len(self.entity) > ENTITY_MAX_LENGTH:
            self.entity = hashlib.sha256(self.entity.encode()).hexdigest()

    def row(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "cpts_id": self.cpts_id, "event_type": self.event_type,
                "event_time": self.event_time, "ref_time": self.ref_time, "entity": self.entity,
                "subject": self.subject, "attributes": self.attributes}


@dataclass(frozen=True)
class FactSchema:
    """What the facts of one event type hold, per scope: the attributes of its facts about a CPTS and of its
    facts about a professional, and what its `ref_time` is (None: it has none)."""

    cpts: dict[str, AttributeType] | None = None
    professional: dict[str, AttributeType] | None = None
    ref_time: str | None = None

    def attributes(self, scope: Scope) -> dict[str, AttributeType] | None:
        return self.cpts if scope == "cpts" else self.professional


_PROFESSION: dict[str, AttributeType] = {"profession_code": "str", "specialty_code": "str", "active": "bool"}
_SLOT: dict[str, AttributeType] = {"hours": "num", "vis_snp": "bool", "service_type": "str",
                                   "appointment_type": "str", "withdrawn": "bool"}
_APPOINTMENT: dict[str, AttributeType] = {
    "kind": "str", "origin": "str", "service_type": "str", "request_id": "str", "professional_cpts": "bool",
    "request_cpts": "bool"}
_TERRITORY: dict[str, AttributeType] = {"population": "num", "size_band": "num", "departements": "list",
                                        "communes": "num"}
_CONTRACT: dict[str, AttributeType] = {"stage": "str", "missions": "list", "aci_signed_on": "str"}
_PATIENT: dict[str, AttributeType] = {"priority_group": "str", "age_band": "str", "source": "str",
                                      "status": "str"}
_PROPOSAL: dict[str, AttributeType] = {"priority_group": "str", "age_band": "str", "distance_km": "num"}

FACT_SCHEMAS: dict[str, FactSchema] = {
    r.ProfessionalRegistered.__event_type__: FactSchema(cpts={"status": "str"}, professional=_PROFESSION),
    r.ProfessionalUpdated.__event_type__: FactSchema(professional=_PROFESSION),
    r.ProfessionalDeactivated.__event_type__: FactSchema(professional={**_PROFESSION, "reason": "str"}),
    r.MembershipChanged.__event_type__: FactSchema(cpts={"status": "str"}),
    r.SasParticipationChanged.__event_type__: FactSchema(professional={
        "participating": "bool", "mode": "str", "hours_per_week": "num", "accepts_en_sus": "bool"}),
    r.MtCapacityChanged.__event_type__: FactSchema(professional={"accepting": "bool",
                                                                 "new_patients_per_month": "num"}),
    r.CptsRegistered.__event_type__: FactSchema(cpts={**_TERRITORY, **_CONTRACT, "name": "str"}),
    r.CptsTerritoryChanged.__event_type__: FactSchema(cpts=_TERRITORY),
    r.CptsStageChanged.__event_type__: FactSchema(cpts=_CONTRACT),
    s.SlotPublished.__event_type__: FactSchema(cpts=_SLOT, ref_time="slot start"),
    s.SlotVisibilityChanged.__event_type__: FactSchema(cpts=_SLOT, ref_time="slot start"),
    s.SlotWithdrawn.__event_type__: FactSchema(cpts=_SLOT, ref_time="slot start"),
    s.CareRequestReceived.__event_type__: FactSchema(
        cpts={"origin": "str", "urgency": "str", "age_band": "str", "has_mt": "bool"}),
    s.CareRequestClosedWithoutSlot.__event_type__: FactSchema(
        cpts={"origin": "str", "urgency": "str", "orientation": "str", "reason": "str"},
        ref_time="request received"),
    s.AppointmentBooked.__event_type__: FactSchema(cpts={**_APPOINTMENT, "delay_hours": "num"},
                                                   ref_time="request received"),
    s.AppointmentCancelled.__event_type__: FactSchema(cpts={**_APPOINTMENT, "reason": "str"},
                                                      ref_time="request received"),
    s.AppointmentFulfilled.__event_type__: FactSchema(cpts=_APPOINTMENT, ref_time="request received"),
    s.AppointmentNoShow.__event_type__: FactSchema(cpts=_APPOINTMENT, ref_time="request received"),
    # Carries a patient's identity: only its occurrence is kept (CPTS and time), nothing from the payload.
    s.PatientWithoutMtSeen.__event_type__: FactSchema(cpts={}),
    # Patient matching (mission 1a): the patient record is known by its pseudonymous id only.
    m.PatientEnrolled.__event_type__: FactSchema(cpts={**_PATIENT, "re_enrolment": "bool"}),
    m.PatientWithdrawn.__event_type__: FactSchema(cpts={**_PATIENT, "reason": "str", "waiting_days": "num"}),
    m.PatientFoundElsewhere.__event_type__: FactSchema(cpts={**_PATIENT, "waiting_days": "num"}),
    m.MtDeclared.__event_type__: FactSchema(cpts={**_PATIENT, "waiting_days": "num"}),
    m.ProposalMade.__event_type__: FactSchema(cpts=_PROPOSAL),
    m.ProposalAccepted.__event_type__: FactSchema(cpts=_PROPOSAL),
    m.ProposalDeclined.__event_type__: FactSchema(cpts={**_PROPOSAL, "declined_by": "str", "reason": "str"}),
    m.ProposalExpired.__event_type__: FactSchema(cpts=_PROPOSAL),
}


def _profession(event: Event, **extra: Any) -> Fact:
    p = event.payload
    return Fact(event.id, PROFESSIONAL_SCOPE, event.type, event.time, entity=p.idnps, subject=p.idnps,
                attributes={"profession_code": p.profession_code, "specialty_code": p.specialty_code,
                            "active": p.active, **extra})


def _registered(event: Event[r.ProfessionalRegistered]) -> list[Fact]:
    p = event.payload
    members = [Fact(event.id, cpts_id, event.type, event.time, entity=p.idnps, subject=p.idnps,
                    attributes={"status": "adherent"}) for cpts_id in sorted(set(p.cpts_ids))]
    return [_profession(event), *members]


def _membership(event: Event[r.MembershipChanged]) -> list[Fact]:
    p = event.payload
    return [Fact(event.id, p.cpts_id, event.type, event.time, entity=p.idnps, subject=p.idnps,
                 attributes={"status": p.status})]


def _sas(event: Event[r.SasParticipationChanged]) -> list[Fact]:
    p = event.payload
    return [Fact(event.id, PROFESSIONAL_SCOPE, event.type, event.time, entity=p.idnps, subject=p.idnps,
                 attributes={"participating": p.participating, "mode": p.mode,
                             "hours_per_week": p.hours_per_week, "accepts_en_sus": p.accepts_en_sus})]


def _mt_capacity(event: Event[r.MtCapacityChanged]) -> list[Fact]:
    p = event.payload
    return [Fact(event.id, PROFESSIONAL_SCOPE, event.type, event.time, entity=p.idnps, subject=p.idnps,
                 attributes={"accepting": p.accepting, "new_patients_per_month": p.new_patients_per_month})]


def _territory(event: Event[r.CptsRegistered | r.CptsTerritoryChanged]) -> list[Fact]:
    p = event.payload
    attributes: dict[str, Any] = {"population": p.population, "size_band": p.size_band,
                                  "departements": sorted(p.departements), "communes": len(p.communes)}
    if isinstance(p, r.CptsRegistered):
        attributes |= {"name": p.name, **_contract(p)}
    return [Fact(event.id, p.cpts_id, event.type, event.time, entity=p.cpts_id, attributes=attributes)]


def _contract(p: r.CptsRegistered | r.CptsStageChanged) -> dict[str, Any]:
    """The ACI contract as the registry states it: stage, signature date, missions contracted."""
    return {"stage": p.stage, "missions": sorted(p.missions),
            "aci_signed_on": p.aci_signed_on.isoformat() if p.aci_signed_on else None}


def _stage(event: Event[r.CptsStageChanged]) -> list[Fact]:
    p = event.payload
    return [Fact(event.id, p.cpts_id, event.type, event.time, entity=p.cpts_id, attributes=_contract(p))]


def _slot(event: Event[s.SlotPublished | s.SlotVisibilityChanged | s.SlotWithdrawn]) -> list[Fact]:
    p = event.payload
    attributes = {"hours": round((p.end - p.start).total_seconds() / 3600, 6),
                  "vis_snp": "SNP" in p.visibility, "service_type": p.service_type,
                  "appointment_type": p.appointment_type, "withdrawn": isinstance(p, s.SlotWithdrawn)}
    return [Fact(event.id, cpts_id, event.type, event.time, ref_time=p.start, entity=p.slot_id,
                 subject=p.idnps, attributes=attributes) for cpts_id in sorted(set(p.cpts_ids))]


def _request_received(event: Event[s.CareRequestReceived]) -> list[Fact]:
    p = event.payload
    if p.cpts_id is None:
        return []
    return [Fact(event.id, p.cpts_id, event.type, p.received_at, entity=p.request_id,
                 attributes={"origin": p.origin, "urgency": p.urgency, "age_band": p.age_band,
                             "has_mt": p.has_mt})]


def _request_closed(event: Event[s.CareRequestClosedWithoutSlot]) -> list[Fact]:
    p = event.payload
    if p.cpts_id is None:
        return []
    return [Fact(event.id, p.cpts_id, event.type, p.closed_at, ref_time=p.received_at, entity=p.request_id,
                 attributes={"origin": p.origin, "urgency": p.urgency, "orientation": p.orientation,
                             "reason": p.reason})]


def appointment_delay_hours(p: s.AppointmentBooked) -> float | None:
    """Hours from the care request's reception to the appointment: the slot's start, or the booking itself for
    an appointment en sus (it has no slot; the effecteur sees the patient the same day)."""
    if p.request_received_at is None:
        return None
    seen = p.start or p.booked_at
    return round(max((seen - p.request_received_at).total_seconds(), 0) / 3600, 4)


APPOINTMENT_TIME = {s.AppointmentBooked: "booked_at", s.AppointmentCancelled: "cancelled_at"}


def _appointment(event: Event[s.AppointmentFacts]) -> list[Fact]:
    p = event.payload
    when = APPOINTMENT_TIME.get(type(p), "recorded_at")
    professional_side = set(p.cpts_ids)
    request_side = {p.request_cpts_id} if p.request_cpts_id and p.request_id else set()
    attributes: dict[str, Any] = {"kind": p.kind, "origin": p.origin, "service_type": p.service_type,
                                  "request_id": p.request_id}
    if isinstance(p, s.AppointmentBooked):
        attributes["delay_hours"] = appointment_delay_hours(p)
    if isinstance(p, s.AppointmentCancelled):
        attributes["reason"] = p.reason
    return [Fact(event.id, cpts_id, event.type, getattr(p, when), ref_time=p.request_received_at,
                 entity=p.appointment_id, subject=p.idnps,
                 attributes={**attributes, "professional_cpts": cpts_id in professional_side,
                             "request_cpts": cpts_id in request_side})
            for cpts_id in sorted(professional_side | request_side)]


def _patient_without_mt_seen(event: Event[s.PatientWithoutMtSeen]) -> list[Fact]:
    # Only the CPTS and the time are read: the patient's identity never reaches the indicators' tables.
    cpts_id, seen_at = event.payload.cpts_id, event.payload.seen_at
    return [Fact(event.id, cpts_id, event.type, seen_at)] if cpts_id else []


# Where a patient record stands on the CPTS's list after each event (updates and priority changes leave it).
LIST_STATUS = {m.PatientEnrolled: "waiting", m.PatientWithdrawn: "withdrawn",
               m.PatientFoundElsewhere: "found_elsewhere", m.MtDeclared: "with_mt"}
PATIENT_TIME = {m.PatientEnrolled: "enrolled_at", m.PatientWithdrawn: "withdrawn_at",
                m.PatientFoundElsewhere: "found_at", m.MtDeclared: "declared_at"}
PROPOSAL_TIME = {m.ProposalMade: "made_at", m.ProposalAccepted: "accepted_at",
                 m.ProposalDeclined: "declined_at", m.ProposalExpired: "expired_at"}


def _patient(event: Event[m.PatientFacts]) -> list[Fact]:
    p = event.payload
    attributes: dict[str, Any] = {"priority_group": p.priority_group, "age_band": p.age_band,
                                  "source": p.source, "status": LIST_STATUS[type(p)]}
    if isinstance(p, m.PatientEnrolled):
        attributes["re_enrolment"] = p.re_enrolment
    if isinstance(p, m.PatientWithdrawn):
        attributes["reason"] = p.reason
    if isinstance(p, (m.PatientWithdrawn, m.PatientFoundElsewhere, m.MtDeclared)):
        attributes["waiting_days"] = p.waiting_days
    subject = p.idnps if isinstance(p, m.MtDeclared) else None
    return [Fact(event.id, p.cpts_id, event.type, getattr(p, PATIENT_TIME[type(p)]), entity=p.patient_id,
                 subject=subject, attributes=attributes)]


def _proposal(event: Event[m.ProposalFacts]) -> list[Fact]:
    p = event.payload
    attributes: dict[str, Any] = {"priority_group": p.priority_group, "age_band": p.age_band,
                                  "distance_km": p.distance_km}
    if isinstance(p, m.ProposalDeclined):
        attributes |= {"declined_by": p.declined_by, "reason": p.reason}
    return [Fact(event.id, p.cpts_id, event.type, getattr(p, PROPOSAL_TIME[type(p)]), entity=p.proposal_id,
                 subject=p.idnps, attributes=attributes)]


FACT_BUILDERS: dict[str, Callable[[Event], list[Fact]]] = {
    r.ProfessionalRegistered.__event_type__: _registered,
    r.ProfessionalUpdated.__event_type__: lambda event: [_profession(event)],
    r.MembershipChanged.__event_type__: _membership,
    r.SasParticipationChanged.__event_type__: _sas,
    r.MtCapacityChanged.__event_type__: _mt_capacity,
    r.CptsRegistered.__event_type__: _territory,
    r.CptsTerritoryChanged.__event_type__: _territory,
    r.CptsStageChanged.__event_type__: _stage,
    s.SlotPublished.__event_type__: _slot,
    s.SlotVisibilityChanged.__event_type__: _slot,
    s.SlotWithdrawn.__event_type__: _slot,
    s.CareRequestReceived.__event_type__: _request_received,
    s.CareRequestClosedWithoutSlot.__event_type__: _request_closed,
    s.AppointmentBooked.__event_type__: _appointment,
    s.AppointmentCancelled.__event_type__: _appointment,
    s.AppointmentFulfilled.__event_type__: _appointment,
    s.AppointmentNoShow.__event_type__: _appointment,
    s.PatientWithoutMtSeen.__event_type__: _patient_without_mt_seen,
    **{kind.__event_type__: _patient for kind in LIST_STATUS},
    **{kind.__event_type__: _proposal for kind in PROPOSAL_TIME},
}


def facts_of(event: Event) -> list[Fact]:
    """The facts an event gives (none for an event about no CPTS, or about a CPTS id that is no FINESS).
    A deactivation is built by the consumer, which completes it with the profession of earlier facts."""
    return [fact for fact in FACT_BUILDERS[event.type](event)
            if fact.cpts_id == PROFESSIONAL_SCOPE or FINESS.match(fact.cpts_id)]


def deactivation_fact(event: Event[r.ProfessionalDeactivated], previous: dict[str, Any] | None) -> Fact:
    """The professional no longer practises: the profession of their last fact, `active` false."""
    previous = previous or {}
    return Fact(event.id, PROFESSIONAL_SCOPE, event.type, event.time, entity=event.payload.idnps,
                subject=event.payload.idnps,
                attributes={"profession_code": previous.get("profession_code"),
                            "specialty_code": previous.get("specialty_code"), "active": False,
                            "reason": event.payload.reason})
