"""Commands of snp-dispatch: each one is a unit of work that changes the tables and writes its events.

Double booking is prevented twice: the booking is a conditional UPDATE of the slot (free, not held by someone
else, still ahead) whose row count says who won, and a partial unique index allows one live appointment per
slot. Whatever the concurrency, a slot gets at most one appointment and the losers get `SlotUnavailable` (409).
"""

from __future__ import annotations

import bisect
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, new_event
from cpts_events.snp_dispatch import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentFulfilled,
    AppointmentNoShow,
    CareRequestClosedWithoutSlot,
    CareRequestReceived,
    PatientIdentity,
    PatientWithoutMtSeen,
    SlotHeld,
    SlotHoldExpired,
    SlotPublished,
    SlotReleased,
    SlotVisibilityChanged,
    SlotWithdrawn,
)
from cpts_geo import communes
from cpts_platform import audit
from cpts_platform.auth import Principal
from cpts_platform.db import Database
from cpts_platform.outbox import add_events
from cpts_snp_dispatch.domain.cells import cell_of
from cpts_snp_dispatch.domain.errors import (
    EnSusCapReached,
    InvalidSlot,
    InvalidTransition,
    SlotOverlap,
    SlotUnavailable,
    UnknownAppointment,
    UnknownCareRequest,
    UnknownProfessional,
    UnknownSlot,
)
from cpts_snp_dispatch.domain.intake import age_band
from cpts_snp_dispatch.domain.slots import PARIS, SlotSpec, check_specs
from cpts_snp_dispatch.repository import (
    AppointmentRow,
    CareRequestRow,
    CptsView,
    ProfessionalView,
    ScheduleRow,
    SlotRow,
)

SOURCE = "/cpts/snp-dispatch"
APPOINTMENT_IDENTIFIER_SYSTEM = "urn:cpts:snp-dispatch:appointment"
LIVE_APPOINTMENT = ("booked", "fulfilled", "noshow")

# Writes the audit line of a command on a patient's record (given the session and the record's id) in the
# command's own transaction: the change and its line commit together or not at all. A line written after the
# commit, in a transaction of its own, could fail (the database going away in between): the change would be
# stored but answered 503, the client's retry refused (slot already booked, identifier already used), and the
# trail would miss it.
Audit = Callable[[AsyncSession, str], Awaitable[None]]


def _now() -> datetime:
    return datetime.now(UTC)


def _event(payload, subject: str) -> Event:
    return new_event(payload, source=SOURCE, subject=subject)


def _slot_facts(slot: SlotRow, professional: ProfessionalView | None) -> dict:
    return dict(slot_id=slot.slot_id, idnps=slot.idnps, cpts_ids=list(professional.cpts_ids) if professional else [],
                site_id=slot.site_id, commune_insee=slot.commune_insee, start=slot.start, end=slot.end,
                service_type=slot.service_type, visibility=slot.visibility, appointment_type=slot.appointment_type)


async def _professional(session: AsyncSession, idnps: str, *, field: str, lock: bool = False) -> ProfessionalView:
    # On PostgreSQL the row lock serialises the commands of one professional (overlap check, en-sus cap);
    # SQLite's units of work are serialised by BEGIN IMMEDIATE already.
    view = await session.get(ProfessionalView, idnps, with_for_update=lock or None)
    if view is None or not view.active:
        raise UnknownProfessional(f"no active professional {idnps}", field=field)
    return view


# --- Slots -------------------------------------------------------------------------------------------------


async def publish_slots(*, database: Database, by: str, specs: list[SlotSpec], now: datetime | None = None
                        ) -> list[SlotRow]:
    """Publish slots (of one or several professionals) atomically: all of them or, on any error, none."""
    now = now or _now()
    check_specs(specs, now)
    rows: list[SlotRow] = []
    async with database.transaction() as session:
        by_professional: dict[str, list[SlotSpec]] = {}
        for spec in specs:
            by_professional.setdefault(spec.idnps, []).append(spec)
        events = []
        for idnps, items in by_professional.items():
            professional = await _professional(session, idnps, field=f"{items[0].field}.idnps", lock=True)
            await _refuse_overlaps(session, idnps, items)
            schedules: dict[str, ScheduleRow] = {}
            for spec in items:
                site = next((s for s in professional.sites if s.get("site_id") == spec.site_id), None)
                if site is None:
                    raise InvalidSlot(f"{spec.site_id} is not a practice site of {idnps}", field=f"{spec.field}.site_id")
                if spec.site_id not in schedules:
                    schedules[spec.site_id] = await ensure_schedule(session, idnps=idnps, site_id=spec.site_id, by=by,
                                                                    now=now)
                commune = communes().get(site.get("commune_insee") or "")
                lat = site.get("lat") if site.get("lat") is not None else (commune.lat if commune else None)
                lon = site.get("lon") if site.get("lon") is not None else (commune.lon if commune else None)
                row = SlotRow(
                    slot_id=spec.slot_id or str(uuid.uuid4()), idnps=idnps, site_id=spec.site_id,
                    schedule_id=schedules[spec.site_id].schedule_id, commune_insee=site.get("commune_insee"),
                    departement=commune.departement if commune else None,
                    lat=lat, lon=lon, geo_cell=cell_of(lat, lon) if lat is not None and lon is not None else None,
                    start=spec.start.astimezone(UTC), end=spec.end.astimezone(UTC), service_type=spec.service_type,
                    vis_public="PUBLIC" in spec.visibility, vis_pro="PRO" in spec.visibility,
                    vis_snp="SNP" in spec.visibility, vis_cpts="CPTS" in spec.visibility,
                    appointment_type=spec.appointment_type, comment=spec.comment, published_by=by,
                    published_at=now, updated_at=now)
                rows.append(row)
                events.append(_event(SlotPublished(**_slot_facts(row, professional)), f"slot/{row.slot_id}"))
        session.add_all(rows)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise InvalidSlot("a slot with this id already exists", field="slots") from exc
        await add_events(session, database, events)
    return rows


async def ensure_schedule(session: AsyncSession, *, idnps: str, site_id: str, by: str, now: datetime) -> ScheduleRow:
    found = (await session.exec(select(ScheduleRow).where(ScheduleRow.idnps == idnps,
                                                          ScheduleRow.site_id == site_id))).first()
    if found is None:
        found = ScheduleRow(schedule_id=str(uuid.uuid4()), idnps=idnps, site_id=site_id, created_by=by,
                            created_at=now)
        session.add(found)
        await session.flush()
    return found


async def _refuse_overlaps(session: AsyncSession, idnps: str, items: list[SlotSpec]) -> None:
    first = min(s.start for s in items)
    last = max(s.end for s in items)
    existing = (await session.exec(
        select(SlotRow.slot_id, SlotRow.start, SlotRow.end)
        .where(SlotRow.idnps == idnps, SlotRow.status != "withdrawn", SlotRow.start < last, SlotRow.end > first)
        .order_by(SlotRow.start))).all()
    if not existing:
        return
    starts = [row[1] for row in existing]
    for spec in items:
        # Existing slots of one professional never overlap each other: only the neighbours can collide.
        i = bisect.bisect_left(starts, spec.end)
        for slot_id, start, end in existing[max(0, i - 1):i + 1]:
            if start < spec.end and end > spec.start:
                raise SlotOverlap(f"overlaps slot {slot_id} of the same professional", field=f"{spec.field}.start",
                                  other_slot_id=slot_id)


async def withdraw_slot(*, database: Database, slot_id: str, now: datetime | None = None,
                        principal: Principal | None = None) -> SlotRow:
    """Withdraw a slot. A booked slot does not vanish silently: its appointment is cancelled, with its event,
    and (with `principal`, the user withdrawing) the cancellation is in the audit trail of the appointment,
    in the same transaction."""
    now = now or _now()
    async with database.transaction() as session:
        slot = await _slot(session, slot_id, lock=True)
        if slot.status == "withdrawn":
            return slot
        professional = await session.get(ProfessionalView, slot.idnps)
        events = []
        had_appointment = False
        if slot.status == "booked":
            appointment = (await session.exec(select(AppointmentRow).where(
                AppointmentRow.slot_id == slot_id, col(AppointmentRow.status).in_(("booked",))))).first()
            if appointment is not None:
                had_appointment = True
                events.append(await _cancel(session, appointment, professional, reason="slot_withdrawn", now=now))
                if principal is not None:
                    await audit.record(session, principal, action="cancel", record_type="appointment",
                                       record_id=appointment.appointment_id, purpose="slot withdrawn")
        slot.status, slot.held_until, slot.hold_id, slot.hold_request_id = "withdrawn", None, None, None
        slot.updated_at = now
        session.add(slot)
        events.append(_event(SlotWithdrawn(**_slot_facts(slot, professional), had_appointment=had_appointment),
                             f"slot/{slot_id}"))
        await add_events(session, database, events)
    return slot


async def change_visibility(*, database: Database, slot_id: str, visibility: frozenset[str],
                            now: datetime | None = None) -> SlotRow:
    now = now or _now()
    async with database.transaction() as session:
        slot = await _slot(session, slot_id, lock=True)
        if slot.status == "withdrawn":
            raise InvalidTransition("the slot is withdrawn", field="slot_id")
        slot.vis_public, slot.vis_pro = "PUBLIC" in visibility, "PRO" in visibility
        slot.vis_snp, slot.vis_cpts = "SNP" in visibility, "CPTS" in visibility
        slot.updated_at = now
        session.add(slot)
        professional = await session.get(ProfessionalView, slot.idnps)
        await add_events(session, database, [_event(SlotVisibilityChanged(**_slot_facts(slot, professional)),
                                                    f"slot/{slot_id}")])
    return slot


async def _slot(session: AsyncSession, slot_id: str, *, lock: bool = False) -> SlotRow:
    slot = await session.get(SlotRow, slot_id, with_for_update=lock or None)
    if slot is None:
        raise UnknownSlot(f"no slot {slot_id}", field="slot_id")
    return slot


# --- Holds and bookings --------------------------------------------------------------------------------------


def _bookable(now: datetime):
    return sa.and_(SlotRow.status == "free", SlotRow.appointment_type == "ROUTINE", SlotRow.start >= now)


async def _explain_unavailable(session: AsyncSession, slot_id: str, now: datetime) -> SlotUnavailable:
    slot = await _slot(session, slot_id)
    if slot.status == "booked":
        return SlotUnavailable("the slot has just been booked by someone else", field="slot_id")
    if slot.status == "withdrawn":
        return SlotUnavailable("the slot was withdrawn by the professional", field="slot_id")
    if slot.appointment_type != "ROUTINE":
        return SlotUnavailable("a walk-in slot (WALKIN) cannot be booked", field="slot_id")
    if slot.start < now:
        return SlotUnavailable("the slot has already started", field="slot_id")
    return SlotUnavailable(f"the slot is held by someone else until {slot.held_until.isoformat()}",
                           field="slot_id")


async def hold_slot(*, database: Database, slot_id: str, request_id: str, ttl: timedelta,
                    now: datetime | None = None) -> SlotRow:
    """Hold a free slot for a care request until now + ttl; others see it as not free meanwhile."""
    now = now or _now()
    hold_id = str(uuid.uuid4())
    async with database.transaction() as session:
        await _open_request(session, request_id)
        result = await session.exec(sa.update(SlotRow).where(
            SlotRow.slot_id == slot_id, _bookable(now),
            sa.or_(SlotRow.held_until.is_(None), SlotRow.held_until <= now, SlotRow.hold_request_id == request_id))
            .values(held_until=now + ttl, hold_id=hold_id, hold_request_id=request_id, updated_at=now))
        if result.rowcount != 1:
            raise await _explain_unavailable(session, slot_id, now)
        slot = await _slot(session, slot_id)
        await session.refresh(slot)
        await add_events(session, database, [_event(SlotHeld(
            slot_id=slot_id, idnps=slot.idnps, hold_id=hold_id, request_id=request_id, expires_at=slot.held_until),
            f"slot/{slot_id}")])
    return slot


async def release_hold(*, database: Database, slot_id: str, hold_id: str, now: datetime | None = None) -> None:
    now = now or _now()
    async with database.transaction() as session:
        result = await session.exec(sa.update(SlotRow).where(
            SlotRow.slot_id == slot_id, SlotRow.hold_id == hold_id, SlotRow.status == "free")
            .values(held_until=None, hold_id=None, hold_request_id=None, updated_at=now))
        if result.rowcount != 1:
            await _slot(session, slot_id)
            raise InvalidTransition("no such hold on this slot (expired, released or booked)", field="hold_id")
        slot = await _slot(session, slot_id)
        await add_events(session, database, [_event(SlotReleased(slot_id=slot_id, idnps=slot.idnps, hold_id=hold_id),
                                                    f"slot/{slot_id}")])


async def expire_holds(*, database: Database, now: datetime | None = None, limit: int = 500) -> int:
    """Clear the holds whose time is up on slots still free, and announce each (`slot.hold_expired`).

    Searches already treat such a slot as free; this makes the hold's end an event for the others (console
    lists, indicators) and keeps the hold columns clean. Each slot is cleared by a conditional UPDATE, so
    replicas sweeping at the same time never announce one hold twice."""
    now = now or _now()
    async with database.transaction() as session:
        # Locked while they are cleared (PostgreSQL; SQLite's unit of work holds the write lock): a hold renewed
        # or booked meanwhile waits, then no longer matches. Another replica skips the rows this one took.
        expired = (await session.execute(
            sa.select(SlotRow.slot_id, SlotRow.idnps, SlotRow.hold_id, SlotRow.hold_request_id, SlotRow.held_until)
            .where(SlotRow.held_until.is_not(None), SlotRow.held_until <= now, SlotRow.status == "free")
            .order_by(SlotRow.held_until).limit(limit).with_for_update(skip_locked=True))).all()
        if not expired:
            return 0
        await session.execute(
            sa.update(SlotRow).where(col(SlotRow.slot_id).in_([row.slot_id for row in expired]))
            .values(held_until=None, hold_id=None, hold_request_id=None, updated_at=now),
            execution_options={"synchronize_session": False})
        await add_events(session, database, [_event(SlotHoldExpired(
            slot_id=row.slot_id, idnps=row.idnps, hold_id=row.hold_id, request_id=row.hold_request_id,
            expired_at=row.held_until), f"slot/{row.slot_id}") for row in expired])
    return len(expired)


async def _open_request(session: AsyncSession, request_id: str, *, lock: bool = False) -> CareRequestRow:
    request = await session.get(CareRequestRow, request_id, with_for_update=lock or None)
    if request is None:
        raise UnknownCareRequest(f"no care request {request_id}", field="request_id")
    if request.status != "open":
        raise InvalidTransition(f"the care request is {request.status}", field="request_id")
    return request


def _appointment_facts(appointment: AppointmentRow, professional: ProfessionalView | None,
                       request: CareRequestRow | None) -> dict:
    return dict(
        appointment_id=appointment.appointment_id, request_id=appointment.request_id, idnps=appointment.idnps,
        cpts_ids=list(professional.cpts_ids) if professional else [],
        request_cpts_id=request.cpts_id if request else None, origin=request.origin if request else None,
        kind=appointment.kind, slot_id=appointment.slot_id, start=appointment.start,
        service_type=appointment.service_type, request_received_at=request.received_at if request else None)


def _new_appointment(*, by: str, idnps: str, kind: str, request_id: str | None, now: datetime,
                     identifier: str | None = None, slot: SlotRow | None = None) -> AppointmentRow:
    appointment_id = str(uuid.uuid4())
    return AppointmentRow(
        appointment_id=appointment_id, identifier=identifier or f"{APPOINTMENT_IDENTIFIER_SYSTEM}|{appointment_id}",
        request_id=request_id, slot_id=slot.slot_id if slot else None, idnps=idnps, kind=kind, status="booked",
        start=slot.start if slot else None, end=slot.end if slot else None,
        service_type=slot.service_type if slot else None, booked_by=by, booked_at=now, updated_at=now)


async def book_slot(*, database: Database, by: str, slot_id: str, request_id: str | None, hold_id: str | None = None,
                    identifier: str | None = None, now: datetime | None = None, audit: Audit | None = None
                    ) -> AppointmentRow:
    """Book a slot, held by this request (`hold_id`) or free. One winner per slot; the others get 409. `audit`
    writes the booking's audit line in its transaction."""
    now = now or _now()
    try:
        async with database.transaction() as session:
            request = await _open_request(session, request_id, lock=True) if request_id else None
            # The holder books with its hold id; a request that holds the slot may also book it without it.
            holder = sa.or_(SlotRow.hold_id == hold_id if hold_id else sa.false(),
                            SlotRow.hold_request_id == request_id if request_id else sa.false())
            result = await session.exec(sa.update(SlotRow).where(
                SlotRow.slot_id == slot_id, _bookable(now),
                sa.or_(SlotRow.held_until.is_(None), SlotRow.held_until <= now, holder))
                .values(status="booked", held_until=None, hold_id=None, hold_request_id=None, updated_at=now))
            if result.rowcount != 1:
                raise await _explain_unavailable(session, slot_id, now)
            slot = await _slot(session, slot_id)
            await session.refresh(slot)
            appointment = _new_appointment(by=by, idnps=slot.idnps, kind="slot", request_id=request_id, now=now,
                                           identifier=identifier, slot=slot)
            session.add(appointment)
            if request is not None:
                request.status = "booked"
                session.add(request)
            await session.flush()
            professional = await session.get(ProfessionalView, slot.idnps)
            await add_events(session, database, [_event(AppointmentBooked(
                **_appointment_facts(appointment, professional, request), booked_at=now),
                f"appointment/{appointment.appointment_id}")])
            if audit is not None:
                await audit(session, appointment.appointment_id)
    except IntegrityError as exc:
        # The partial unique index (or a reused identifier) caught what the conditional update let through.
        if identifier and "identifier" in str(exc.orig):
            raise InvalidTransition("an appointment with this identifier already exists", field="identifier") from exc
        raise SlotUnavailable("the slot has just been booked by someone else", field="slot_id") from exc
    return appointment


def week_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The ISO week (Monday 00:00 to Monday 00:00, Paris time) holding `moment`, in UTC."""
    local = moment.astimezone(PARIS)
    monday = datetime.combine(local.date() - timedelta(days=local.isoweekday() - 1), datetime.min.time(), PARIS)
    return monday.astimezone(UTC), (monday + timedelta(days=7)).astimezone(UTC)


async def book_en_sus(*, database: Database, by: str, request_id: str, idnps: str,
                      now: datetime | None = None, audit: Audit | None = None) -> AppointmentRow:
    """Book a patient beyond the published slots of an effecteur who accepts it, within their weekly cap;
    `audit` writes the booking's audit line in its transaction."""
    now = now or _now()
    async with database.transaction() as session:
        request = await _open_request(session, request_id, lock=True)
        professional = await _professional(session, idnps, field="idnps", lock=True)
        if not (professional.sas_participant and professional.accepts_en_sus):
            raise InvalidTransition(f"{idnps} does not accept patients en sus", field="idnps")
        start, end = week_bounds(now)
        used = (await session.exec(select(sa.func.count()).select_from(AppointmentRow).where(
            AppointmentRow.idnps == idnps, AppointmentRow.kind == "en_sus",
            col(AppointmentRow.status).in_(LIVE_APPOINTMENT),
            AppointmentRow.booked_at >= start, AppointmentRow.booked_at < end))).one()
        cap = professional.en_sus_weekly_cap
        if cap is not None and used >= cap:
            raise EnSusCapReached(f"{idnps} has reached their weekly cap of {cap} patients en sus", field="idnps")
        appointment = _new_appointment(by=by, idnps=idnps, kind="en_sus", request_id=request_id, now=now)
        session.add(appointment)
        request.status = "booked"
        session.add(request)
        await add_events(session, database, [_event(AppointmentBooked(
            **_appointment_facts(appointment, professional, request), booked_at=now),
            f"appointment/{appointment.appointment_id}")])
        if audit is not None:
            await audit(session, appointment.appointment_id)
    return appointment


async def _appointment(session: AsyncSession, appointment_id: str) -> AppointmentRow:
    appointment = await session.get(AppointmentRow, appointment_id, with_for_update=True)
    if appointment is None:
        raise UnknownAppointment(f"no appointment {appointment_id}", field="appointment_id")
    return appointment


async def _cancel(session: AsyncSession, appointment: AppointmentRow, professional: ProfessionalView | None, *,
                  reason: str, now: datetime) -> Event:
    appointment.status, appointment.cancel_reason, appointment.updated_at = "cancelled", reason, now
    session.add(appointment)
    request = await session.get(CareRequestRow, appointment.request_id) if appointment.request_id else None
    if request is not None and request.status == "booked":
        request.status = "open"  # the regulator or the secretary can look for another slot
        session.add(request)
    return _event(AppointmentCancelled(**_appointment_facts(appointment, professional, request), cancelled_at=now,
                                       reason=reason), f"appointment/{appointment.appointment_id}")


async def cancel_appointment(*, database: Database, appointment_id: str, reason: str,
                             now: datetime | None = None, audit: Audit | None = None) -> AppointmentRow:
    """Cancel a booked appointment; its slot is free again if it has not started. `audit` writes the
    cancellation's audit line in its transaction."""
    now = now or _now()
    async with database.transaction() as session:
        appointment = await _appointment(session, appointment_id)
        if appointment.status != "booked":
            raise InvalidTransition(f"the appointment is {appointment.status}", field="status")
        professional = await session.get(ProfessionalView, appointment.idnps)
        event = await _cancel(session, appointment, professional, reason=reason, now=now)
        if appointment.slot_id:
            await session.exec(sa.update(SlotRow).where(SlotRow.slot_id == appointment.slot_id,
                                                        SlotRow.status == "booked")
                               .values(status="free", updated_at=now))
        await add_events(session, database, [event])
        if audit is not None:
            await audit(session, appointment_id)
    return appointment


async def record_outcome(*, database: Database, appointment_id: str, outcome: str,
                         now: datetime | None = None, audit: Audit | None = None) -> AppointmentRow:
    """Record that the patient was seen (fulfilled) or did not come (noshow). A patient seen without a médecin
    traitant who consented to be referred is announced to patient matching. `audit` writes the audit line in
    its transaction (an outcome recorded again changes nothing but is audited too)."""
    now = now or _now()
    async with database.transaction() as session:
        appointment = await _appointment(session, appointment_id)
        if appointment.status == outcome:
            if audit is not None:
                await audit(session, appointment_id)
            return appointment
        if appointment.status not in ("booked", "fulfilled", "noshow"):
            raise InvalidTransition(f"the appointment is {appointment.status}", field="status")
        appointment.status, appointment.updated_at = outcome, now
        session.add(appointment)
        professional = await session.get(ProfessionalView, appointment.idnps)
        request = await session.get(CareRequestRow, appointment.request_id) if appointment.request_id else None
        facts = _appointment_facts(appointment, professional, request)
        events: list[Event] = [_event(AppointmentFulfilled(**facts, recorded_at=now) if outcome == "fulfilled"
                                      else AppointmentNoShow(**facts, recorded_at=now),
                                      f"appointment/{appointment_id}")]
        if (outcome == "fulfilled" and request is not None and request.mt_idnps is None
                and request.consent_mt_referral):
            events.append(_event(PatientWithoutMtSeen(
                request_id=request.request_id, appointment_id=appointment_id, cpts_id=request.cpts_id,
                commune_insee=request.commune_insee, seen_by=appointment.idnps, seen_at=now,
                patient=PatientIdentity(family_name=request.family_name, given_name=request.given_name,
                                        birth_date=request.birth_date, sex=request.sex, phone=request.phone,
                                        ins_nir=request.ins_nir)), f"care-request/{request.request_id}"))
        await add_events(session, database, events)
        if audit is not None:
            await audit(session, appointment_id)
    return appointment


# --- Care requests -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewCareRequest:
    origin: str
    cpts_id: str | None
    family_name: str
    given_name: str
    birth_date: date
    sex: str
    phone: str | None
    ins_nir: str | None
    commune_insee: str
    address: str | None
    lat: float
    lon: float
    located_by: str
    reason_category: str
    reason_text: str | None
    urgency: str
    needs_home_visit: bool
    teleconsultation_ok: bool
    mt_idnps: str | None
    consent_mt_referral: bool


async def cpts_of_commune(session: AsyncSession, insee: str) -> str | None:
    for view in (await session.exec(select(CptsView))).all():
        if insee in view.communes:
            return view.cpts_id
    return None


async def create_care_request(*, database: Database, by: str, request: NewCareRequest,
                              now: datetime | None = None, audit: Audit | None = None) -> CareRequestRow:
    """Record a care request and announce it; `audit` writes its audit line in the same transaction."""
    now = now or _now()
    commune = communes().get(request.commune_insee)
    async with database.transaction() as session:
        cpts_id = request.cpts_id or await cpts_of_commune(session, request.commune_insee)
        row = CareRequestRow(
            request_id=str(uuid.uuid4()), created_by=by, departement=commune.departement, received_at=now,
            search_seed=random.SystemRandom().randrange(2**31), status="open",
            **{**request.__dict__, "cpts_id": cpts_id})
        session.add(row)
        await add_events(session, database, [_event(CareRequestReceived(
            request_id=row.request_id, origin=row.origin, cpts_id=cpts_id, commune_insee=row.commune_insee,
            departement=row.departement, urgency=row.urgency, reason_category=row.reason_category,
            has_mt=row.mt_idnps is not None, age_band=age_band(row.birth_date, now.astimezone(PARIS).date()),
            received_at=now), f"care-request/{row.request_id}")])
        if audit is not None:
            await audit(session, row.request_id)
    return row


async def close_without_slot(*, database: Database, request_id: str, orientation: str, reason: str,
                             comment: str | None, now: datetime | None = None, audit: Audit | None = None
                             ) -> CareRequestRow:
    """Nothing fitted: close the request with the orientation given to the patient and why; `audit` writes the
    closing's audit line in its transaction."""
    now = now or _now()
    async with database.transaction() as session:
        request = await _open_request(session, request_id, lock=True)
        request.status, request.orientation, request.closed_reason = "closed_without_slot", orientation, reason
        request.closed_comment, request.closed_at = comment, now
        session.add(request)
        await add_events(session, database, [_event(CareRequestClosedWithoutSlot(
            request_id=request_id, origin=request.origin, cpts_id=request.cpts_id,
            commune_insee=request.commune_insee, departement=request.departement, urgency=request.urgency,
            orientation=orientation, reason=reason, received_at=request.received_at, closed_at=now),
            f"care-request/{request_id}")])
        if audit is not None:
            await audit(session, request_id)
    return request
