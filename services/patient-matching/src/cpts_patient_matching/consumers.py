"""Events patient-matching consumes: the registry's GPs (capacity, practice site) and CPTS territories, and
the SAS's patients seen without a médecin traitant, who consented to be referred for one."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, topics
from cpts_events.registry import (
    CptsRegistered,
    CptsTerritoryChanged,
    MembershipChanged,
    MtCapacityChanged,
    ProfessionalDeactivated,
    ProfessionalRegistered,
    ProfessionalSitesChanged,
    ProfessionalUpdated,
)
from cpts_events.snp_dispatch import PatientWithoutMtSeen
from cpts_patient_matching import handlers
from cpts_patient_matching.domain.errors import InvalidPatient
from cpts_patient_matching.domain.gp import can_be_medecin_traitant
from cpts_patient_matching.domain.intake import check_nir
from cpts_patient_matching.repository import CptsView, GpView
from cpts_patient_matching.settings import current_settings
from cpts_platform.auth import Principal
from cpts_platform.consumer import PermanentEventError
from cpts_platform.service import Subscription

SNP_REFERRAL = Principal(subject="event:snp-dispatch", roles=frozenset())
"""The actor of enrolments from the SAS's events, in the audit trail."""


async def on_professional(session: AsyncSession,
                          event: Event[ProfessionalRegistered | ProfessionalUpdated]) -> None:
    p = event.payload
    view = await session.get(GpView, p.idnps)
    if not can_be_medecin_traitant(p.profession_code, p.specialty_code):
        if view is not None:
            await session.delete(view)
        return
    view = view or GpView(idnps=p.idnps, updated_at=event.time)
    view.family_name, view.given_name = p.family_name, p.given_name
    view.commune_insee, view.cpts_ids, view.active = p.commune_insee, list(p.cpts_ids), p.active
    view.updated_at = event.time
    session.add(view)


async def on_deactivated(session: AsyncSession, event: Event[ProfessionalDeactivated]) -> None:
    view = await session.get(GpView, event.payload.idnps)
    if view is not None:
        view.active, view.accepting, view.updated_at = False, False, event.time
        session.add(view)


async def on_mt_capacity(session: AsyncSession, event: Event[MtCapacityChanged]) -> None:
    p = event.payload
    view = await session.get(GpView, p.idnps)
    if view is not None:
        view.accepting, view.new_patients_per_month = p.accepting, p.new_patients_per_month
        view.publics, view.accepting_until, view.updated_at = list(p.publics), p.until, event.time
        session.add(view)


async def on_sites(session: AsyncSession, event: Event[ProfessionalSitesChanged]) -> None:
    """Distances are measured to the practice site in the GP's main commune (else the first site with a point,
    else the first site's commune)."""
    view = await session.get(GpView, event.payload.idnps)
    if view is None:
        return
    sites = list(event.payload.sites)
    located = [s for s in sites if s.lat is not None and s.lon is not None]
    main = next((s for s in located if s.commune_insee == view.commune_insee), None) or (
        located[0] if located else sites[0] if sites else None)
    view.site_commune_insee = main.commune_insee if main else None
    view.lat, view.lon = (main.lat, main.lon) if main else (None, None)
    view.updated_at = event.time
    session.add(view)


async def on_membership(session: AsyncSession, event: Event[MembershipChanged]) -> None:
    p = event.payload
    view = await session.get(GpView, p.idnps)
    if view is not None:
        ids = set(view.cpts_ids)
        ids.discard(p.cpts_id) if p.status == "left" else ids.add(p.cpts_id)
        view.cpts_ids, view.updated_at = sorted(ids), event.time
        session.add(view)


async def on_cpts(session: AsyncSession, event: Event[CptsRegistered | CptsTerritoryChanged]) -> None:
    p = event.payload
    view = await session.get(CptsView, p.cpts_id) or CptsView(cpts_id=p.cpts_id, updated_at=event.time)
    if isinstance(p, CptsRegistered):
        view.name = p.name
    view.communes, view.updated_at = list(p.communes), event.time
    session.add(view)


async def on_patient_seen(session: AsyncSession, event: Event[PatientWithoutMtSeen]) -> None:
    """Enrol the patient (consent was given to the SAS) in the list of their CPTS: the request's CPTS, else
    the CPTS whose territory holds their commune (none: not ours to enrol). The same person is not enrolled
    twice (INS or identity traits); an invalid NIR is dropped rather than the patient; other invalid data
    sends the event to the dead-letter topic with the field at fault (never a value)."""
    p = event.payload
    cpts_id = p.cpts_id or await handlers.cpts_of_commune(session, p.commune_insee)
    if cpts_id is None:
        return
    ins_nir = p.patient.ins_nir
    if ins_nir is not None:
        try:
            check_nir(ins_nir)
        except InvalidPatient:
            ins_nir = None
    enrolment = handlers.Enrolment(
        identity=handlers.Identity(birth_name=p.patient.family_name, first_names=p.patient.given_name,
                                   birth_date=p.patient.birth_date, sex=p.patient.sex, phone=p.patient.phone,
                                   ins_nir=ins_nir),
        commune_insee=p.commune_insee, consent=True, consent_source="snp_referral")
    try:
        await handlers.enrol(session, cpts_id=cpts_id, enrolment=enrolment, source="snp",
                             source_ref=p.request_id, by=SNP_REFERRAL, weights=current_settings().priority,
                             now=event.time)
    except InvalidPatient as exc:
        raise PermanentEventError(f"patient cannot be enrolled: invalid {exc.field}") from None


SUBSCRIPTIONS = [
    Subscription(
        group_id="patient-matching.registry",
        topics=[topics.REGISTRY],
        handlers={
            ProfessionalRegistered.__event_type__: on_professional,
            ProfessionalUpdated.__event_type__: on_professional,
            ProfessionalDeactivated.__event_type__: on_deactivated,
            ProfessionalSitesChanged.__event_type__: on_sites,
            MtCapacityChanged.__event_type__: on_mt_capacity,
            MembershipChanged.__event_type__: on_membership,
            CptsRegistered.__event_type__: on_cpts,
            CptsTerritoryChanged.__event_type__: on_cpts,
        },
    ),
    Subscription(
        group_id="patient-matching.snp-dispatch",
        topics=[topics.SNP_DISPATCH],
        handlers={PatientWithoutMtSeen.__event_type__: on_patient_seen},
    ),
]
