"""FHIR R4 interface of snp-dispatch (`/fhir`): the SAS aggregator's Slot search (ans.fhir.fr.sas 1.2.0, PS
indiv and CPTS variants) and the shared-agenda writes (GAP 3.0.0): create a Schedule or a Slot, book a slot by
creating an Appointment, change an Appointment's status by a conditional update on its identifier. Shapes are
in `cpts_snp_dispatch.fhir_mapping`; every write goes through the service's commands (`handlers`).

Answers are `application/fhir+json`. Errors of this API are OperationOutcomes naming the element or search
parameter at fault (400 malformed request, 404 unknown id, 409 conflict, 422 refused by a rule), while 401/403
come from the platform's authentication as problem+json, as in the registry's FHIR API. Unknown search
parameters are ignored and left out of the `self` link (FHIR's lenient handling).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_platform.audit import capture_declared_purpose
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.ratelimit import rate_limited
from cpts_platform.service import DatabaseDep, ReadSessionDep
from cpts_snp_dispatch import fhir_mapping as fm
from cpts_snp_dispatch import handlers
from cpts_snp_dispatch.api.routes import audit_access, audited, manages_professional
from cpts_snp_dispatch.domain.errors import DispatchError
from cpts_snp_dispatch.queries import audience_for
from cpts_snp_dispatch.repository import AppointmentRow, CptsView, ProfessionalView, ScheduleRow, SlotRow

SlotReader = Annotated[Principal, Depends(require_roles(
    Role.REGULATOR, Role.SECRETARY, Role.COORDINATOR, Role.PROFESSIONAL))]
AgendaManager = Annotated[Principal, Depends(require_roles(
    Role.PROFESSIONAL, Role.SECRETARY, Role.COORDINATOR))]
Booker = Annotated[Principal, Depends(require_roles(Role.REGULATOR, Role.SECRETARY, Role.PROFESSIONAL))]

# The FHIR element behind each field a domain error names (the Slot commands get `field="Slot"`).
_ELEMENTS = {
    "Slot.service_type": "Slot.serviceType", "Slot.visibility": "Slot.meta.security",
    "Slot.appointment_type": "Slot.appointmentType", "Slot.idnps": "Slot.schedule",
    "Slot.site_id": "Slot.schedule", "slots": "Slot", "slot_id": "Appointment.slot",
    "identifier": "Appointment.identifier", "status": "Appointment.status", "appointment_id": "Appointment",
}
_ISSUE_CODES = {404: "not-found", 409: "conflict", 422: "business-rule"}


def _fhir(body: dict[str, Any], status: int = 200, *, location: str | None = None) -> Response:
    return Response(content=orjson.dumps(body), status_code=status,
                    media_type=fm.FHIR_JSON, headers={"Location": location} if location else None)


def _outcome(error: fm.FhirError) -> Response:
    outcome = fm.operation_outcome(error.code, error.diagnostics, expression=error.expression)
    return _fhir(outcome, error.status)


class _FhirRoute(APIRoute):
    """Routes whose refusals (FhirError, and the domain's errors) become OperationOutcomes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except fm.FhirError as exc:
                return _outcome(exc)
            except DispatchError as exc:
                element = _ELEMENTS.get(exc.field or "", exc.field)
                return _outcome(fm.FhirError(exc.status, exc.detail, expression=element,
                                             code=_ISSUE_CODES.get(exc.status, "invalid")))

        return route_handler


router = APIRouter(prefix="/fhir", tags=["FHIR"], route_class=_FhirRoute,
                   dependencies=[Depends(capture_declared_purpose)])

_FHIR_BODY = {fm.FHIR_JSON: {"schema": {"type": "object"}}}


def _doc(status: int, text: str, errors: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI answers of a route: its FHIR answer, its OperationOutcomes, the platform's 401/403."""
    return {status: {"description": text, "content": _FHIR_BODY},
            **{code: {"description": f"{error} (OperationOutcome).", "content": _FHIR_BODY}
               for code, error in errors.items()},
            401: {"description": "Jeton absent ou invalide (problem+json)."},
            403: {"description": "Rôle ou périmètre non autorisé (problem+json)."}}


def _body_doc(resource_type: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        fm.FHIR_JSON: {"schema": {"type": "object", "description": f"Ressource FHIR {resource_type}."}}}}}


def _now() -> datetime:
    return datetime.now(UTC)


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _url(request: Request, resource_type: str, id_: str) -> str:
    return f"{_root(request)}{router.prefix}/{resource_type}/{id_}"


def _booking_urls(request: Request) -> Callable[[str], str]:
    """Where a slot is booked, written in every Slot's `comment` (the ANS kit requires one on every slot): the
    web console's booking page (setting `booking_url_template`)."""
    template = request.app.state.runtime.settings.booking_url_template
    return lambda slot_id: template.format(slot_id=quote(slot_id, safe=""))


def _booking_url(request: Request, slot_id: str) -> str:
    return _booking_urls(request)(slot_id)


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise fm.FhirError(400, "The body is not JSON.", code="structure") from None


def _free(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(SlotRow.status == "free", sa.or_(SlotRow.held_until.is_(None), SlotRow.held_until <= now))


async def _visible_slot(session: AsyncSession, principal: Principal, slot_id: str, *, element: str
                        ) -> tuple[SlotRow, ProfessionalView]:
    """The slot if the caller may see it (by its visibility, or as a manager of the professional's agenda);
    404 naming `element` otherwise."""
    row = await session.get(SlotRow, slot_id)
    professional = await session.get(ProfessionalView, row.idnps) if row else None
    audience = await audience_for(session, principal)
    if row is None or professional is None or not (audience.sees(row, professional.cpts_ids)
                                                   or manages_professional(principal, professional)):
        raise fm.FhirError(404, f"Slot/{slot_id} is not known.", expression=element, code="not-found")
    return row, professional


# --- Slot search (SAS aggregator) --------------------------------------------------------------------------

_SLOT_SEARCH_PARAMETERS = {
    "_include": f"`{fm.INCLUDE_SCHEDULE}`, `{fm.INCLUDE_CPTS}` (variante CPTS : HealthcareService et "
                "Organization des CPTS).",
    "_include:iterate": f"`{fm.INCLUDE_ACTORS}` (Practitioner et PractitionerRole), "
                        f"`{fm.INCLUDE_ORGANIZATION}`.",
    "start": "Deux bornes : `ge<instant>` et `le<instant>` ; la borne basse est ramenée à maintenant.",
    fm.PRACTITIONER_PARAM: f"1 à {fm.MAX_PRACTITIONERS} IDNPS séparés par des virgules : "
                           f"`{fm.IDNPS_SYSTEM}|810100050075,...`.",
    "status": "`free` (obligatoire).",
    "_count": f"Nombre maximal de créneaux (défaut et maximum {fm.MAX_SLOTS}) ; `total` les compte tous.",
}


@router.get("/Slot", response_class=Response,
            summary="Rechercher des créneaux libres (requête de l'agrégateur SAS).",
            responses=_doc(200, "Bundle searchset : Slot, Schedule, Practitioner, PractitionerRole (variante "
                                "CPTS : HealthcareService, Organization).",
                           {400: "Paramètre absent ou invalide"}) | {
                429: {"description": "Trop de recherches de ce client : réessayer après `Retry-After` s "
                                     "(problem+json)."}},
            dependencies=[Depends(rate_limited("fhir_search"))],
            openapi_extra={"parameters": [
                {"name": name, "in": "query", "required": name in ("start", fm.PRACTITIONER_PARAM, "status"),
                 "description": text, "schema": {"type": "string"}}
                for name, text in _SLOT_SEARCH_PARAMETERS.items()]})
async def search_slots(request: Request, principal: SlotReader, session: ReadSessionDep) -> Response:
    now = _now()
    query = fm.parse_slot_query(request.query_params.multi_items(), now=now)
    professionals = {p.idnps: p for p in await session.exec(select(ProfessionalView).where(
        col(ProfessionalView.idnps).in_(query.idnps), ProfessionalView.active))}
    visible = (await audience_for(session, principal)).condition()
    where = [col(SlotRow.idnps).in_(list(professionals)), _free(now), SlotRow.start >= query.start_from,
             SlotRow.start <= query.start_to, visible]
    # Plain rows of the columns a Slot shows, not ORM objects: a thousand slots per answer.
    t = SlotRow.__table__.c
    rows = (await (await session.connection()).execute(
        sa.select(t.slot_id, t.idnps, t.site_id, t.schedule_id, t.start, t.end, t.service_type, t.appointment_type,
                  t.status, t.held_until, t.vis_public, t.vis_pro, t.vis_snp, t.vis_cpts)
        .where(*where).order_by(t.start, t.slot_id).limit(query.count))).all()
    total = len(rows) if len(rows) < query.count else (
        await session.exec(select(sa.func.count()).select_from(SlotRow).where(*where))).one()
    schedules: dict[str, ScheduleRow] = {}
    if query.with_schedules and rows:
        schedules = {s.schedule_id: s for s in await session.exec(select(ScheduleRow).where(
            col(ScheduleRow.schedule_id).in_({r.schedule_id for r in rows})))}
    cpts: dict[str, CptsView] = {}
    if query.cpts_variant:
        wanted = {c for r in rows if r.vis_cpts for c in professionals[r.idnps].cpts_ids}
        cpts = {c.cpts_id: c for c in await session.exec(select(CptsView).where(
            col(CptsView.cpts_id).in_(wanted)))}
    base_url = _root(request) + router.prefix
    return _fhir(fm.slot_bundle(
        query=query, slots=rows, total=total, professionals=professionals, schedules=schedules, cpts=cpts,
        base_url=base_url, self_url=fm.self_link(f"{base_url}/Slot", request.url.query),
        booking_url=_booking_urls(request), now=now))


@router.get("/Slot/{id}", response_class=Response, summary="Lire un créneau.",
            responses=_doc(200, "Slot.", {404: "Créneau inconnu ou non visible"}))
async def read_slot(id: str, request: Request, principal: SlotReader, session: ReadSessionDep) -> Response:
    row, professional = await _visible_slot(session, principal, id, element="Slot")
    return _fhir(fm.slot(row, professional=professional, booking_url=_booking_url(request, row.slot_id),
                         now=_now()))


# --- Schedule and Slot creation (GAP) ----------------------------------------------------------------------

@router.get("/Schedule/{id}", response_class=Response, summary="Lire un agenda (un professionnel, un lieu).",
            responses=_doc(200, "Schedule.", {404: "Agenda inconnu"}))
async def read_schedule(id: str, _: SlotReader, session: ReadSessionDep) -> Response:
    row = await session.get(ScheduleRow, id)
    if row is None:
        raise fm.FhirError(404, f"Schedule/{id} is not known.", expression="Schedule", code="not-found")
    return _fhir(fm.schedule(row))


async def _managed_professional(session: AsyncSession, principal: Principal, idnps: str, *, element: str
                                ) -> ProfessionalView:
    """The active professional `idnps`, whose agenda the caller manages (403 otherwise)."""
    professional = await session.get(ProfessionalView, idnps)
    if professional is None or not professional.active:
        raise fm.FhirError(422, f"No active professional {idnps}.", expression=element, code="not-found")
    ensure(manages_professional(principal, professional), f"You do not manage the agenda of {idnps}.")
    return professional


@router.post("/Schedule", response_class=Response,
             summary="Créer (ou retrouver) l'agenda d'un professionnel sur un de ses lieux d'exercice.",
             responses=_doc(201, "Schedule créé (en-tête Location) ; 200 s'il existait déjà.",
                            {400: "Ressource invalide", 422: "Professionnel ou lieu inconnu"}),
             openapi_extra=_body_doc("Schedule"))
async def create_schedule(request: Request, principal: AgendaManager, database: DatabaseDep,
                          session: ReadSessionDep) -> Response:
    target = fm.parse_schedule(await _body(request))
    professional = await _managed_professional(session, principal, target.idnps, element="Schedule.actor")
    site_id = target.site_of(professional)
    await session.close()  # the checks' connection goes back to the pool before the unit of work takes one
    async with database.transaction() as write:
        # Locking the professional (PostgreSQL) serialises this with publish_slots, which creates schedules.
        await write.get(ProfessionalView, target.idnps, with_for_update=True)
        existing = (await write.exec(select(ScheduleRow).where(ScheduleRow.idnps == target.idnps,
                                                               ScheduleRow.site_id == site_id))).first()
        row = existing or await handlers.ensure_schedule(write, idnps=target.idnps, site_id=site_id,
                                                         by=principal.subject, now=_now())
    return _fhir(fm.schedule(row), 200 if existing else 201,
                 location=_url(request, "Schedule", row.schedule_id))


@router.post("/Slot", response_class=Response, summary="Publier un créneau dans un agenda.",
             responses=_doc(201, "Slot créé (en-tête Location).", {
                 400: "Ressource invalide", 409: "Chevauchement avec un créneau du même professionnel",
                 422: "Créneau refusé (passé, fin avant début, agenda inconnu...)"}),
             openapi_extra=_body_doc("Slot"))
async def create_slot(request: Request, principal: AgendaManager, database: DatabaseDep,
                      session: ReadSessionDep) -> Response:
    draft = fm.parse_slot(await _body(request))
    agenda = await session.get(ScheduleRow, draft.schedule_id)
    if agenda is None:
        raise fm.FhirError(422, f"Schedule/{draft.schedule_id} is not known.", expression="Slot.schedule",
                           code="not-found")
    professional = await _managed_professional(session, principal, agenda.idnps, element="Slot.schedule")
    await session.close()
    [row] = await handlers.publish_slots(database=database, by=principal.subject, specs=[draft.spec(agenda)])
    return _fhir(fm.slot(row, professional=professional, booking_url=_booking_url(request, row.slot_id),
                         now=_now()), 201, location=_url(request, "Slot", row.slot_id))


# --- Appointments ------------------------------------------------------------------------------------------

async def _slot_of(session: AsyncSession, principal: Principal, wanted: fm.AppointmentRequest) -> SlotRow:
    """The slot an Appointment books: `Slot/<id>`, or the participant's slot starting at `start`."""
    slot_id = wanted.slot_id
    if slot_id is None:
        if wanted.idnps is None or wanted.start is None:
            raise fm.FhirError(422, "Appointment.slot: give Slot/<id>, or the professional (participant "
                                    "IDNPS) and the start of their slot.", expression="Appointment.slot",
                               code="required")
        slot_id = (await session.exec(select(SlotRow.slot_id).where(
            SlotRow.idnps == wanted.idnps, SlotRow.start == wanted.start.astimezone(UTC),
            SlotRow.status != "withdrawn"))).first()
        if slot_id is None:
            raise fm.FhirError(422, f"{wanted.idnps} has no slot starting at {wanted.start.isoformat()}.",
                               expression="Appointment.start", code="not-found")
    row, _ = await _visible_slot(session, principal, slot_id, element="Appointment.slot")
    if wanted.idnps not in (None, row.idnps):
        raise fm.FhirError(422, f"Slot/{row.slot_id} is not a slot of {wanted.idnps}.",
                           expression="Appointment.participant", code="business-rule")
    return row


@router.post("/Appointment", response_class=Response, summary="Réserver un créneau (rendez-vous booked).",
             responses=_doc(201, "Appointment créé (en-tête Location).", {
                 400: "Ressource invalide", 404: "Créneau inconnu ou non visible",
                 409: "Créneau déjà pris, bloqué ou retiré ; identifiant déjà utilisé",
                 422: "Rendez-vous refusé (statut, professionnel, heure sans créneau...)"}),
             openapi_extra=_body_doc("Appointment"))
async def create_appointment(request: Request, principal: Booker, database: DatabaseDep,
                             session: ReadSessionDep) -> Response:
    wanted = fm.parse_appointment(await _body(request))
    if wanted.status != "booked":
        raise fm.FhirError(422, "An Appointment is created with status booked.",
                           expression="Appointment.status", code="business-rule")
    slot = await _slot_of(session, principal, wanted)
    await session.close()
    row = await handlers.book_slot(database=database, by=principal.subject, slot_id=slot.slot_id,
                                   request_id=None, identifier=wanted.identifier,
                                   audit=audited(principal, "create", "booking"))
    return _fhir(fm.appointment(row), 201, location=_url(request, "Appointment", row.appointment_id))


async def _own_appointment(session: AsyncSession, principal: Principal, row: AppointmentRow | None,
                           shown: str) -> AppointmentRow:
    """The appointment if the caller booked it, is its professional or manages their agenda; unknown
    otherwise."""
    professional = await session.get(ProfessionalView, row.idnps) if row else None
    if row is None or not (row.booked_by == principal.subject or principal.is_professional(row.idnps)
                           or (professional is not None and manages_professional(principal, professional))):
        raise fm.FhirError(404, f"{shown} is not known.", expression="Appointment", code="not-found")
    return row


@router.get("/Appointment/{id}", response_class=Response, summary="Lire un rendez-vous.",
            responses=_doc(200, "Appointment.", {404: "Rendez-vous inconnu"}))
async def read_appointment(id: str, principal: Booker, session: ReadSessionDep, database: DatabaseDep
                           ) -> Response:
    row = await _own_appointment(session, principal, await session.get(AppointmentRow, id),
                                 f"Appointment/{id}")
    await session.close()
    await audit_access(database, principal, "read", row.appointment_id, "follow-up")
    return _fhir(fm.appointment(row))


@router.put("/Appointment", response_class=Response,
            summary="Changer le statut d'un rendez-vous désigné par son identifiant (booked, fulfilled, "
                    "noshow, cancelled : le créneau d'un rendez-vous annulé redevient libre).",
            responses=_doc(200, "Appointment à jour.", {
                400: "Ressource ou identifiant invalide", 404: "Aucun rendez-vous avec cet identifiant",
                409: "Transition impossible"}),
            openapi_extra={**_body_doc("Appointment"), "parameters": [{
                "name": "identifier", "in": "query", "required": True, "schema": {"type": "string"},
                "description": "Identifiant métier du rendez-vous : `system|value`."}]})
async def update_appointment(request: Request, principal: Booker, database: DatabaseDep,
                             session: ReadSessionDep) -> Response:
    identifier = fm.identifier_param(request.query_params.getlist("identifier"))
    found = (await session.exec(select(AppointmentRow).where(
        AppointmentRow.identifier == identifier))).first()
    row = await _own_appointment(session, principal, found, f"Appointment?identifier={identifier}")
    wanted = fm.parse_appointment(await _body(request))
    if wanted.identifier != identifier:
        raise fm.FhirError(400, "Appointment.identifier differs from the identifier searched.",
                           expression="Appointment.identifier")
    await session.close()
    # A change writes its audit line in its own transaction; a status stated again changes nothing, and its
    # line is committed before the appointment is served, as for a read.
    audit_line = audited(principal, "update", f"booking: {wanted.status}")
    if wanted.status == "cancelled" and row.status != "cancelled":
        row = await handlers.cancel_appointment(database=database, appointment_id=row.appointment_id,
                                                reason=wanted.cancel_reason or "other", audit=audit_line)
    elif wanted.status in ("fulfilled", "noshow"):
        row = await handlers.record_outcome(database=database, appointment_id=row.appointment_id,
                                            outcome=wanted.status, audit=audit_line)
    elif wanted.status != row.status:
        raise fm.FhirError(409, f"The appointment is {row.status}: it cannot become {wanted.status}.",
                           expression="Appointment.status", code="conflict")
    else:
        await audit_access(database, principal, "update", row.appointment_id, f"booking: {wanted.status}")
    return _fhir(fm.appointment(row))
