"""REST API of snp-dispatch: slots, care requests and their ranked search, holds, appointments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Callable

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_geo import communes
from cpts_platform import audit
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.db import Database
from cpts_platform.problems import ProblemError
from cpts_platform.ratelimit import rate_limited
from cpts_platform.service import DatabaseDep, ReadSessionDep, RuntimeDep
from cpts_snp_dispatch import handlers, queries
from cpts_snp_dispatch.api.schemas import (
    AppointmentIn,
    AppointmentPublic,
    CancelIn,
    CareRequestIn,
    CareRequestPublic,
    CloseIn,
    EffecteurPublic,
    EnSusIn,
    HoldIn,
    HoldPublic,
    OutcomeIn,
    PatientIn,
    RecurringPublish,
    SearchResult,
    SlotPage,
    SlotPublic,
    SlotsPublish,
    VisibilityIn,
)
from cpts_snp_dispatch.domain.errors import DispatchError, InvalidIntake
from cpts_snp_dispatch.domain.intake import check_birth_date, check_nir
from cpts_snp_dispatch.domain.slots import PARIS, SlotSpec, WeeklyRecurrence
from cpts_snp_dispatch.repository import AppointmentRow, CareRequestRow, ProfessionalView, SlotRow, get_professional

slots = APIRouter(prefix="/slots", tags=["créneaux"])
care_requests = APIRouter(prefix="/care-requests", tags=["demandes de soins"])
appointments = APIRouter(prefix="/appointments", tags=["rendez-vous"])
effecteurs = APIRouter(prefix="/effecteurs", tags=["effecteurs"])

Dispatcher = Annotated[Principal, Depends(require_roles(Role.REGULATOR, Role.SECRETARY, Role.COORDINATOR))]
SlotManager = Annotated[Principal, Depends(require_roles(Role.PROFESSIONAL, Role.SECRETARY, Role.COORDINATOR))]
Booker = Annotated[Principal, Depends(require_roles(Role.REGULATOR, Role.SECRETARY, Role.COORDINATOR,
                                                    Role.PROFESSIONAL))]


def dispatch_problem(exc: DispatchError) -> ProblemError:
    errors = [{"field": exc.field, "in": "body", "message": exc.detail}] if exc.field else None
    return ProblemError(exc.status, exc.detail, errors=errors)


# Installed in app.py: every domain error answers with its status and the field at fault.
DOMAIN_PROBLEMS: dict[type[Exception], Callable[[Exception], ProblemError]] = {DispatchError: dispatch_problem}


def _now() -> datetime:
    return datetime.now(UTC)


# --- Scope -------------------------------------------------------------------------------------------------


def manages_professional(principal: Principal, professional: ProfessionalView) -> bool:
    """The professional themself, or a secretary / coordinator of one of their CPTS."""
    if principal.is_professional(professional.idnps):
        return True
    return principal.has_role(Role.SECRETARY, Role.COORDINATOR) and any(
        principal.can_access_cpts(c) for c in professional.cpts_ids)


async def _managed_professional(database: Database, principal: Principal, idnps: str) -> ProfessionalView:
    # Checks read in a short session of their own: a request never holds a connection while it waits for the
    # unit of work's (under load, that would starve the pool).
    async with database.sessions() as session:
        professional = await get_professional(session, idnps)
    if professional is None or not professional.active:
        raise ProblemError(404, f"No active professional {idnps}.",
                           errors=[{"field": "idnps", "in": "body", "message": "unknown professional"}])
    ensure(manages_professional(principal, professional), f"You do not manage the agenda of {idnps}.")
    return professional


def can_access_request(principal: Principal, request: CareRequestRow) -> bool:
    """Regulators: the requests of their départements; secretaries and coordinators: those of their CPTS."""
    if Role.ADMIN in principal.roles:
        return True
    if principal.has_role(Role.REGULATOR) and request.departement in principal.departements:
        return True
    return (principal.has_role(Role.SECRETARY, Role.COORDINATOR) and request.cpts_id is not None
            and request.cpts_id in principal.cpts_ids)


async def _request_for(database: Database, principal: Principal, request_id: str, *, purpose: str
                       ) -> CareRequestRow:
    """The care request if the caller may see it (404 otherwise: its existence is private); the read is audited
    (committed) before anything of the record is served."""
    async with database.sessions() as session:
        request = await session.get(CareRequestRow, request_id)
    if request is None or not can_access_request(principal, request):
        raise ProblemError(404, f"No care request {request_id}.")
    async with database.transaction() as write:
        await audit.record(write, principal, action="read", record_type="care_request", record_id=request_id,
                           purpose=purpose)
    return request


def audited(principal: Principal, action: str, purpose: str, *, record_type: str = "appointment"
            ) -> handlers.Audit:
    """The audit line of a command (a booking, a cancellation, an outcome, a closing...), which its handler
    writes in the command's own transaction: the change and its line commit together, and the answer is built
    from what that transaction returns, so a change that is stored is never answered 503 for want of its
    line."""
    async def write(session: AsyncSession, record_id: str) -> None:
        await audit.record(session, principal, action=action, record_type=record_type, record_id=record_id,
                           purpose=purpose)
    return write


# --- Slots -------------------------------------------------------------------------------------------------


@slots.post("", status_code=201, response_model=list[SlotPublic],
            summary="Publier des créneaux d'un professionnel sur un lieu d'exercice.",
            responses={409: {"description": "Chevauchement avec un créneau du même professionnel."}})
async def publish(body: SlotsPublish, principal: SlotManager, database: DatabaseDep) -> list[SlotPublic]:
    await _managed_professional(database, principal, body.idnps)
    specs = [SlotSpec(idnps=body.idnps, site_id=body.site_id, start=s.start, end=s.end, service_type=s.service_type,
                      visibility=frozenset(s.visibility), appointment_type=s.appointment_type, comment=s.comment,
                      field=f"slots[{i}]") for i, s in enumerate(body.slots)]
    rows = await handlers.publish_slots(database=database, by=principal.subject, specs=specs)
    now = _now()
    return [queries.slot_public(r, now) for r in rows]


@slots.post("/recurring", status_code=201, response_model=SlotPage,
            summary="Publier une disponibilité récurrente (ex. chaque mardi 14 h-16 h en créneaux de 15 min, "
                    "6 semaines).")
async def publish_recurring(body: RecurringPublish, principal: SlotManager, database: DatabaseDep) -> SlotPage:
    await _managed_professional(database, principal, body.idnps)
    now = _now()
    rule = WeeklyRecurrence(weekdays=tuple(body.weekdays), start_time=body.start_time, end_time=body.end_time,
                            slot_minutes=body.slot_minutes, first_day=body.first_day, weeks=body.weeks)
    pairs = rule.expand(now)
    if not pairs:
        raise ProblemError(422, "The rule gives no slot in the future.",
                           errors=[{"field": "first_day", "in": "body", "message": "no future slot"}])
    specs = [SlotSpec(idnps=body.idnps, site_id=body.site_id, start=start, end=end, service_type=body.service_type,
                      visibility=frozenset(body.visibility), appointment_type=body.appointment_type,
                      field=f"occurrence[{i}]") for i, (start, end) in enumerate(pairs)]
    rows = await handlers.publish_slots(database=database, by=principal.subject, specs=specs, now=now)
    return SlotPage(items=[queries.slot_public(r, now) for r in rows], total=len(rows))


@slots.get("", response_model=SlotPage, summary="L'agenda d'un professionnel (ses créneaux sur une période).")
async def agenda(principal: SlotManager, session: ReadSessionDep, database: DatabaseDep,
                 idnps: Annotated[str, Query(pattern=r"^(8\d{11}|0[0-9A-Z]{9})$")],
                 start: Annotated[date | None, Query(alias="from", description="Premier jour (défaut : aujourd'hui).")]
                 = None,
                 days: Annotated[int, Query(ge=1, le=62)] = 7,
                 include_withdrawn: bool = False) -> SlotPage:
    await _managed_professional(database, principal, idnps)
    now = _now()
    first = datetime.combine(start or now.astimezone(PARIS).date(), datetime.min.time(), PARIS)
    items = await queries.list_slots(session, idnps=idnps, start=first, end=first + timedelta(days=days), now=now,
                                     include_withdrawn=include_withdrawn)
    return SlotPage(items=items, total=len(items))


async def _managed_slot(database: Database, principal: Principal, slot_id: str) -> SlotRow:
    async with database.sessions() as session:
        slot = await session.get(SlotRow, slot_id)
    if slot is None:
        raise ProblemError(404, f"No slot {slot_id}.")
    await _managed_professional(database, principal, slot.idnps)
    return slot


@slots.delete("/{slot_id}", response_model=SlotPublic,
              summary="Retirer un créneau ; s'il était réservé, le rendez-vous est annulé (et notifié).")
async def withdraw(slot_id: str, principal: SlotManager, database: DatabaseDep) -> SlotPublic:
    await _managed_slot(database, principal, slot_id)
    row = await handlers.withdraw_slot(database=database, slot_id=slot_id, principal=principal)
    return queries.slot_public(row, _now())


@slots.put("/{slot_id}/visibility", response_model=SlotPublic, summary="Changer la visibilité d'un créneau.")
async def put_visibility(slot_id: str, body: VisibilityIn, principal: SlotManager, database: DatabaseDep
                         ) -> SlotPublic:
    await _managed_slot(database, principal, slot_id)
    row = await handlers.change_visibility(database=database, slot_id=slot_id, visibility=frozenset(body.visibility))
    return queries.slot_public(row, _now())


@slots.post("/{slot_id}/hold", status_code=201, response_model=HoldPublic,
            summary="Bloquer un créneau quelques minutes pour une demande, le temps de confirmer.",
            responses={409: {"description": "Créneau déjà réservé, bloqué par quelqu'un d'autre ou retiré."}})
async def hold(slot_id: str, body: HoldIn, principal: Dispatcher, database: DatabaseDep, runtime: RuntimeDep
               ) -> HoldPublic:
    await _request_for(database, principal, body.request_id, purpose="hold a slot")
    await _visible_slot(database, principal, slot_id)
    row = await handlers.hold_slot(database=database, slot_id=slot_id, request_id=body.request_id,
                                   ttl=timedelta(seconds=runtime.settings.hold_ttl_seconds))
    return HoldPublic(slot_id=slot_id, hold_id=row.hold_id, request_id=body.request_id, expires_at=row.held_until)


@slots.delete("/{slot_id}/hold/{hold_id}", status_code=204, summary="Relâcher un créneau bloqué.")
async def release(slot_id: str, hold_id: str, principal: Dispatcher, database: DatabaseDep) -> Response:
    async with database.sessions() as session:
        slot = await session.get(SlotRow, slot_id)
        request = (await session.get(CareRequestRow, slot.hold_request_id)
                   if slot is not None and slot.hold_request_id else None)
    if request is not None and not can_access_request(principal, request):
        raise ProblemError(404, f"No hold {hold_id} on slot {slot_id}.")  # held for a request the caller may not see
    await handlers.release_hold(database=database, slot_id=slot_id, hold_id=hold_id)
    return Response(status_code=204)


async def _visible_slot(database: Database, principal: Principal, slot_id: str) -> SlotRow:
    async with database.sessions() as session:
        slot = await session.get(SlotRow, slot_id)
        professional = await get_professional(session, slot.idnps) if slot else None
        audience = await queries.audience_for(session, principal)
    if slot is None or not (audience.sees(slot, professional.cpts_ids if professional else [])
                            or (professional is not None and manages_professional(principal, professional))):
        raise ProblemError(404, f"No slot {slot_id}.", errors=[{"field": "slot_id", "in": "body",
                                                                "message": "unknown slot"}])
    return slot


# --- Care requests -----------------------------------------------------------------------------------------


def _resolve_location(body: CareRequestIn) -> tuple[str, float, float, str]:
    """(commune, lat, lon, located_by): an address with its geocoded point is precise; otherwise the commune's."""
    location = body.location
    insee = location.commune_insee
    if insee is None and location.postcode is not None:
        matches = communes().by_postcode(location.postcode)
        if not matches:
            raise InvalidIntake(f"unknown postcode {location.postcode}", field="location.postcode")
        if len(matches) > 1:
            names = ", ".join(f"{c.insee} {c.name}" for c in matches[:8])
            raise InvalidIntake(f"postcode {location.postcode} covers several communes ({names}): "
                                "give location.commune_insee", field="location.commune_insee")
        insee = matches[0].insee
    if insee is None:
        raise InvalidIntake("give location.commune_insee or location.postcode", field="location.commune_insee")
    commune = communes().get(insee)
    if commune is None or commune.lat is None:
        raise InvalidIntake(f"unknown commune {insee}", field="location.commune_insee")
    if location.lat is not None and location.lon is not None:
        if location.address is None:
            raise InvalidIntake("a point needs the address it was geocoded from", field="location.address")
        return insee, location.lat, location.lon, "address"
    return insee, commune.lat, commune.lon, "commune"


def _check_intake(principal: Principal, body: CareRequestIn, departement: str) -> str | None:
    """Who may take which request; returns the CPTS of the request when a secretary takes it."""
    if body.origin == "sas":
        ensure(principal.has_role(Role.REGULATOR), "Only SAS regulators take requests of origin sas.")
        ensure(principal.can_access_departement(departement), f"Département {departement} is outside your SAS.")
        return body.cpts_id
    ensure(principal.has_role(Role.SECRETARY, Role.COORDINATOR),
           "Only CPTS secretaries and coordinators take CPTS requests.")
    cpts_id = body.cpts_id
    if cpts_id is None:
        if len(principal.cpts_ids) != 1:
            raise InvalidIntake("give the CPTS the request is taken for", field="cpts_id")
        cpts_id = next(iter(principal.cpts_ids))
    ensure(principal.can_access_cpts(cpts_id), f"CPTS {cpts_id} is outside your scope.")
    return cpts_id


def _request_public(row: CareRequestRow) -> CareRequestPublic:
    return CareRequestPublic(
        request_id=row.request_id, origin=row.origin, cpts_id=row.cpts_id, departement=row.departement,
        patient=PatientIn(family_name=row.family_name, given_name=row.given_name, birth_date=row.birth_date,
                          sex=row.sex, phone=row.phone, ins_nir=row.ins_nir),
        commune_insee=row.commune_insee, address=row.address, located_by=row.located_by,
        reason_category=row.reason_category, reason_text=row.reason_text, urgency=row.urgency,
        needs_home_visit=row.needs_home_visit, teleconsultation_ok=row.teleconsultation_ok, mt_idnps=row.mt_idnps,
        consent_mt_referral=row.consent_mt_referral, status=row.status, orientation=row.orientation,
        closed_reason=row.closed_reason, received_at=row.received_at, closed_at=row.closed_at)


@care_requests.post("", status_code=201, response_model=CareRequestPublic,
                    summary="Enregistrer une demande de soins non programmés (régulation SAS ou secrétariat CPTS).")
async def create_care_request(body: CareRequestIn, principal: Dispatcher, database: DatabaseDep) -> CareRequestPublic:
    now = _now()
    if body.patient.ins_nir is not None:
        check_nir(body.patient.ins_nir)
    check_birth_date(body.patient.birth_date, now.astimezone(PARIS).date())
    if body.mt_idnps is not None and body.mt_none:
        raise InvalidIntake("give mt_idnps or mt_none, not both", field="mt_none")
    if body.consent_mt_referral and body.mt_idnps is not None:
        raise InvalidIntake("consent to be referred for a médecin traitant is for patients without one",
                            field="consent_mt_referral")
    insee, lat, lon, located_by = _resolve_location(body)
    cpts_id = _check_intake(principal, body, communes().get(insee).departement)
    request = handlers.NewCareRequest(
        origin=body.origin, cpts_id=cpts_id, family_name=body.patient.family_name,
        given_name=body.patient.given_name, birth_date=body.patient.birth_date, sex=body.patient.sex,
        phone=body.patient.phone, ins_nir=body.patient.ins_nir, commune_insee=insee, address=body.location.address,
        lat=lat, lon=lon, located_by=located_by, reason_category=body.reason_category,
        reason_text=body.reason_text, urgency=body.urgency, needs_home_visit=body.needs_home_visit,
        teleconsultation_ok=body.teleconsultation_ok, mt_idnps=body.mt_idnps,
        consent_mt_referral=body.consent_mt_referral)
    row = await handlers.create_care_request(database=database, by=principal.subject, request=request, now=now,
                                             audit=audited(principal, "create", "intake", record_type="care_request"))
    return _request_public(row)


@care_requests.get("/{request_id}", response_model=CareRequestPublic, summary="Une demande de soins (tracé).")
async def read_care_request(request_id: str, principal: Dispatcher, database: DatabaseDep,
                            purpose: audit.PurposeParameter = "follow-up") -> CareRequestPublic:
    return _request_public(await _request_for(database, principal, request_id, purpose=purpose))


@care_requests.get("/{request_id}/candidates", response_model=SearchResult,
                   summary="Professionnels et créneaux classés selon les règles du SAS pour cette demande.",
                   dependencies=[Depends(rate_limited("search"))],
                   responses={429: {"description": "Trop de recherches : réessayer après `Retry-After` s."}})
async def candidates(request_id: str, principal: Dispatcher, database: DatabaseDep, runtime: RuntimeDep,
                     service_type: Annotated[list[Annotated[str, Field(max_length=3)]] | None, Query(
                         max_length=3,
                         description="AMB cabinet, HH visite, VR téléconsultation (défaut : selon la demande).")]
                     = None,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20,
                     offset: Annotated[int, Query(ge=0, le=10_000)] = 0) -> SearchResult:
    for value in service_type or []:
        if value not in ("AMB", "HH", "VR"):
            raise ProblemError(422, "service_type must be AMB, HH or VR", errors=[
                {"field": "service_type", "in": "query", "message": "must be AMB, HH or VR"}])
    request = await _request_for(database, principal, request_id, purpose="search")
    async with database.sessions() as session:
        audience = await queries.audience_for(session, principal)
        return await queries.search(session, request=request, audience=audience, settings=runtime.settings,
                                    now=_now(), service_types=service_type, limit=limit, offset=offset)


@care_requests.post("/{request_id}/close", response_model=CareRequestPublic,
                    summary="Clore sans créneau, avec l'orientation donnée au patient et la raison.")
async def close(request_id: str, body: CloseIn, principal: Dispatcher, database: DatabaseDep) -> CareRequestPublic:
    await _request_for(database, principal, request_id, purpose="close without slot")
    row = await handlers.close_without_slot(
        database=database, request_id=request_id, orientation=body.orientation, reason=body.reason,
        comment=body.comment, audit=audited(principal, "close", "close without slot", record_type="care_request"))
    return _request_public(row)


# --- Appointments ------------------------------------------------------------------------------------------


def _appointment_public(row: AppointmentRow) -> AppointmentPublic:
    return AppointmentPublic.model_validate(row, from_attributes=True)


async def audit_access(database: Database, principal: Principal, action: str, record_id: str, purpose: str,
                       *, record_type: str = "appointment") -> None:
    """A read of an appointment (or a FHIR update stating its status again, which changes nothing) in the audit
    trail, committed before the record is served. A change writes its line in its own transaction (`audited`)."""
    async with database.transaction() as session:
        await audit.record(session, principal, action=action, record_type=record_type, record_id=record_id,
                           purpose=purpose)


@appointments.post("", status_code=201, response_model=AppointmentPublic,
                   summary="Réserver un créneau (bloqué par cette demande, ou libre).",
                   responses={409: {"description": "Le créneau vient d'être pris, ou est bloqué par un autre."}})
async def book(body: AppointmentIn, principal: Booker, database: DatabaseDep) -> AppointmentPublic:
    if body.request_id is not None:
        await _request_for(database, principal, body.request_id, purpose="book")
    else:
        ensure(principal.has_role(Role.PROFESSIONAL, Role.SECRETARY, Role.COORDINATOR),
               "A regulator books for a care request.")
    slot = await _visible_slot(database, principal, body.slot_id)
    if body.request_id is None:
        await _managed_professional(database, principal, slot.idnps)
    row = await handlers.book_slot(database=database, by=principal.subject, slot_id=body.slot_id,
                                   request_id=body.request_id, hold_id=body.hold_id,
                                   audit=audited(principal, "create", "booking"))
    return _appointment_public(row)


@appointments.post("/en-sus", status_code=201, response_model=AppointmentPublic,
                   summary="Adresser le patient en sus à un effecteur qui l'accepte (dans son plafond hebdomadaire).")
async def book_en_sus(body: EnSusIn, principal: Dispatcher, database: DatabaseDep) -> AppointmentPublic:
    await _request_for(database, principal, body.request_id, purpose="book en sus")
    row = await handlers.book_en_sus(database=database, by=principal.subject, request_id=body.request_id,
                                     idnps=body.idnps, audit=audited(principal, "create", "booking en sus"))
    return _appointment_public(row)


async def _appointment_for(database: Database, principal: Principal, appointment_id: str) -> AppointmentRow:
    async with database.sessions() as session:
        return await _appointment_in(session, principal, appointment_id)


async def _appointment_in(session, principal: Principal, appointment_id: str) -> AppointmentRow:
    row = await session.get(AppointmentRow, appointment_id)
    if row is None:
        raise ProblemError(404, f"No appointment {appointment_id}.")
    if principal.is_professional(row.idnps):
        return row
    request = await session.get(CareRequestRow, row.request_id) if row.request_id else None
    professional = await get_professional(session, row.idnps)
    if (request is not None and can_access_request(principal, request)) or (
            request is None and professional is not None and manages_professional(principal, professional)):
        return row
    raise ProblemError(404, f"No appointment {appointment_id}.")


@appointments.get("/{appointment_id}", response_model=AppointmentPublic, summary="Un rendez-vous.")
async def read_appointment(appointment_id: str, principal: Booker, database: DatabaseDep) -> AppointmentPublic:
    row = await _appointment_for(database, principal, appointment_id)
    await audit_access(database, principal, "read", appointment_id, "follow-up")
    return _appointment_public(row)


@appointments.post("/{appointment_id}/cancel", response_model=AppointmentPublic,
                   summary="Annuler un rendez-vous ; le créneau redevient libre.")
async def cancel(appointment_id: str, body: CancelIn, principal: Booker, database: DatabaseDep
                 ) -> AppointmentPublic:
    await _appointment_for(database, principal, appointment_id)
    row = await handlers.cancel_appointment(database=database, appointment_id=appointment_id, reason=body.reason,
                                            audit=audited(principal, "cancel", "booking: cancellation"))
    return _appointment_public(row)


@appointments.post("/{appointment_id}/outcome", response_model=AppointmentPublic,
                   summary="Enregistrer l'issue : patient vu (fulfilled) ou absent (noshow).")
async def outcome(appointment_id: str, body: OutcomeIn, principal: Booker, database: DatabaseDep
                  ) -> AppointmentPublic:
    await _appointment_for(database, principal, appointment_id)
    row = await handlers.record_outcome(database=database, appointment_id=appointment_id, outcome=body.outcome,
                                        audit=audited(principal, "outcome", "care: outcome"))
    return _appointment_public(row)


# --- Effecteurs (read model of the registry) ---------------------------------------------------------------


@effecteurs.get("", response_model=list[EffecteurPublic],
                summary="Les effecteurs connus (modèle de lecture du registre), par CPTS et participation au SAS.")
async def list_effecteurs(_: Booker, session: ReadSessionDep,
                          cpts_id: Annotated[str | None, Query(pattern=r"^\d{2}[0-9AB]\d{6}$")] = None,
                          sas_participant: bool | None = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                          offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> list[EffecteurPublic]:
    query = select(ProfessionalView).where(ProfessionalView.active).order_by(ProfessionalView.idnps)
    if sas_participant is not None:
        query = query.where(ProfessionalView.sas_participant == sas_participant)
    rows = (await session.exec(query)).all()
    if cpts_id is not None:
        rows = [r for r in rows if cpts_id in r.cpts_ids]
    return [EffecteurPublic.model_validate(r, from_attributes=True) for r in rows[offset:offset + limit]]


@effecteurs.get("/{idnps}", response_model=EffecteurPublic,
                summary="Un professionnel tel que connu pour l'orientation (modèle de lecture du registre).")
async def read_effecteur(idnps: str, _: Dispatcher, session: ReadSessionDep) -> EffecteurPublic:
    row = await get_professional(session, idnps)
    if row is None:
        raise ProblemError(404, f"No professional {idnps}.")
    return EffecteurPublic.model_validate(row, from_attributes=True)


router = APIRouter(dependencies=[Depends(audit.capture_declared_purpose)])
for sub in (care_requests, slots, appointments, effecteurs, audit.audit_router()):
    router.include_router(sub)
