"""Commands of patient-matching: each one is a unit of work that changes the tables, writes its events to the
outbox and its audit lines, in one transaction.

Enrolment (`enrol`) works in a session it is given, so that the API, the CSV import and the consumer of the
SAS's "patient without MT seen" events share it. The other commands the API answers with a record take a
`reply` that reads that answer (and audits what it serves) in the command's transaction. Every patient
transition emits an event and an audit line; the actor of automatic transitions (expiry, scheduled rounds,
enrolment from an event) is a system principal.

Concurrency: commands on a patient lock its row first (then its proposal); a round locks the waiting
patients of its CPTS that it reads (PostgreSQL `FOR UPDATE`; SQLite serialises units of work with `BEGIN
IMMEDIATE`), and one round at a time runs per CPTS (transaction-level advisory lock on PostgreSQL). So a
patient withdrawn during a round is never proposed, and a GP's monthly capacity is never counted twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, new_event
from cpts_events.patient_matching import (
    MtDeclared,
    PatientEnrolled,
    PatientFoundElsewhere,
    PatientUpdated,
    PatientWithdrawn,
    PriorityChanged,
    ProposalAccepted,
    ProposalDeclined,
    ProposalExpired,
    ProposalMade,
)
from cpts_geo import communes
from cpts_patient_matching.domain import lifecycle as lc
from cpts_patient_matching.domain.assignment import (
    Gp,
    Patient,
    RoundResult,
    distance_km,
    greedy_fcfs,
    solve_round,
)
from cpts_patient_matching.domain.errors import (
    InvalidPatient,
    InvalidTransition,
    UnknownDuplicate,
    UnknownPatient,
    UnknownProposal,
)
from cpts_patient_matching.domain.identity import (
    Traits,
    name_key,
    near_duplicate_reason,
    same_person,
    trait_key,
)
from cpts_patient_matching.domain.intake import (
    PARIS,
    age_band,
    check_birth_date,
    check_commune,
    check_nir,
    is_child,
    paris_today,
)
from cpts_patient_matching.domain.priority import (
    Priority,
    PriorityFacts,
    PriorityWeights,
    group_of,
    priority,
    priority_facts,
)
from cpts_patient_matching.repository import (
    CptsView,
    DuplicateRow,
    ExclusionRow,
    GpView,
    PatientRow,
    ProposalRow,
    RoundRow,
    SchedulerStateRow,
    tables,
)
from cpts_patient_matching.settings import Settings
from cpts_platform import audit
from cpts_platform.auth import Principal
from cpts_platform.db import Database, PlatformTables, upsert
from cpts_platform.outbox import add_events

SOURCE = "/cpts/patient-matching"
SYSTEM = Principal(subject="system:patient-matching", roles=frozenset())
"""The actor of automatic transitions (expiry, scheduled rounds, daily priority refresh)."""
ROUND_LOCK_NAMESPACE = "cpts.patient-matching.round:"
ENROL_LOCK_NAMESPACE = "cpts.patient-matching.enrol:"

R = TypeVar("R")
T = TypeVar("T")
# Reads a command's answer in its transaction, from what the command returns (the record, the answer to a
# proposal...): a read in a session of its own, after the commit, could fail (the database going away in
# between) and answer 503 for a change that is stored, whose retry is then refused (already answered, already
# resolved). Its queries flush the command's pending rows; an audit line it writes commits with the change.
Reply = Callable[[AsyncSession, R], Awaitable[T]]


async def _itself(_session: AsyncSession, result: Any) -> Any:
    """The default reply: what the command returns."""
    return result


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Outbox:
    """What `add_events` needs of a Database: the outbox table (consumers only hold a session)."""

    tables: PlatformTables


_OUTBOX = _Outbox(tables)


async def _emit(session: AsyncSession, events: Iterable[Event]) -> None:
    await add_events(session, _OUTBOX, list(events))  # type: ignore[arg-type]


def _event(payload) -> Event:
    return new_event(payload, source=SOURCE, subject=f"patient/{payload.patient_id}")


async def audit_many(session: AsyncSession, principal: Principal, *, action: str, record_ids: Sequence[str],
                     purpose: str, record_type: str = "patient") -> None:
    """Audit lines (one per record) in the caller's transaction, in one statement."""
    await audit.record_many(session, principal, action=action, record_type=record_type, record_ids=record_ids,
                            purpose=purpose)


# --- Enrolment data and its checks --------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    birth_name: str
    first_names: str
    birth_date: date
    sex: str
    used_name: str | None = None
    phone: str | None = None
    ins_nir: str | None = None

    @property
    def traits(self) -> Traits:
        return Traits(birth_name=self.birth_name, first_names=self.first_names, birth_date=self.birth_date,
                      sex=self.sex, used_name=self.used_name, ins_nir=self.ins_nir)


@dataclass(frozen=True)
class Facts:
    """Priority facts as entered (age comes from the birth date)."""

    ald: bool = False
    c2s: bool = False
    pregnancy: bool = False
    disability: bool = False
    hospital_discharge_on: date | None = None
    complex: bool = False
    complex_assessed_on: date | None = None
    complex_assessed_by: str | None = None


@dataclass(frozen=True)
class Enrolment:
    identity: Identity
    commune_insee: str
    facts: Facts = field(default_factory=Facts)
    max_distance_km: float | None = None
    needs_home_visit: bool = False
    consent: bool = True
    consent_source: str = "guichet"


def check_identity(identity: Identity, today: date) -> None:
    """Raise InvalidPatient naming the field (`identity.<name>`) of the first problem."""
    if not name_key(identity.birth_name):
        raise InvalidPatient("the birth name must contain letters", field="identity.birth_name")
    if not name_key(identity.first_names):
        raise InvalidPatient("the first names must contain letters", field="identity.first_names")
    if identity.sex not in ("F", "M", "U"):
        raise InvalidPatient("sex must be F, M or U", field="identity.sex")
    if identity.ins_nir is not None:
        check_nir(identity.ins_nir, field="identity.ins_nir")
    check_birth_date(identity.birth_date, today, field="identity.birth_date")


def check_facts(facts: Facts, today: date) -> None:
    if facts.hospital_discharge_on is not None and facts.hospital_discharge_on > today:
        raise InvalidPatient("the hospital discharge date is in the future",
                             field="priority.hospital_discharge_on")
    if facts.complex and facts.complex_assessed_on is None:
        raise InvalidPatient("a complex patient needs the date of the nurse's assessment",
                             field="priority.complex_assessed_on")
    if facts.complex_assessed_on is not None and facts.complex_assessed_on > today:
        raise InvalidPatient("the assessment date is in the future", field="priority.complex_assessed_on")


def check_enrolment(enrolment: Enrolment, today: date) -> None:
    """Every check of an enrolment (`InvalidPatient` names the field), before anything is written."""
    if not enrolment.consent:
        raise InvalidPatient("the patient's consent is required to be on the list", field="consent")
    check_identity(enrolment.identity, today)
    check_commune(enrolment.commune_insee, field="commune_insee")
    check_facts(enrolment.facts, today)
    if enrolment.max_distance_km is not None and not 0 <= enrolment.max_distance_km <= 200:
        raise InvalidPatient("the distance must be between 0 and 200 km", field="mobility.max_distance_km")


# --- Facts of a record -------------------------------------------------------------------------------------


def traits_of(row: PatientRow) -> Traits:
    return Traits(birth_name=row.birth_name, first_names=row.first_names, birth_date=row.birth_date,
                  sex=row.sex, used_name=row.used_name, ins_nir=row.ins_nir)


def priority_input(row: PatientRow) -> PriorityFacts:
    return PriorityFacts(birth_date=row.birth_date, enrolled_on=paris_today(row.enrolled_at), ald=row.ald,
                         c2s=row.c2s, pregnancy=row.pregnancy, disability=row.disability,
                         hospital_discharge_on=row.hospital_discharge_on, complex=row.complex)


def priority_of(row: PatientRow, today: date, weights: PriorityWeights) -> Priority:
    return priority(priority_input(row), today, weights)


def _facts_payload(row: PatientRow) -> dict:
    """The PatientFacts of the events: never an identity."""
    facts = list(row.priority_facts)
    return dict(patient_id=row.patient_id, cpts_id=row.cpts_id, commune_insee=row.commune_insee,
                age_band=row.age_band, priority_group=group_of(facts), priority_facts=facts,
                source=row.source, enrolled_on=paris_today(row.enrolled_at))


def _refresh_facts(row: PatientRow, today: date, weights: PriorityWeights, now: datetime) -> Event | None:
    """Store the facts of `today`; a PriorityChanged event when they differ from the last announced ones."""
    previous = list(row.priority_facts)
    current = list(priority_facts(priority_input(row), today, weights))
    row.age_band = age_band(row.birth_date, today)
    if current == previous:
        return None
    row.priority_facts = current
    return _event(PriorityChanged(**_facts_payload(row), previous_group=group_of(previous),
                                  previous_facts=previous, changed_at=now))


def _waiting_days(row: PatientRow, now: datetime) -> int:
    return max((paris_today(now) - paris_today(row.enrolled_at)).days, 0)


def _set_status(row: PatientRow, status: str, now: datetime) -> None:
    lc.check_transition(row.status, status)
    row.status, row.status_changed_at, row.updated_at = status, now, now


# --- Enrolment ---------------------------------------------------------------------------------------------


@dataclass
class EnrolResult:
    outcome: str
    """created, existing (the same person was already on the list) or re_enrolled (they had left it)."""
    patient: PatientRow
    near_duplicates: list[DuplicateRow] = field(default_factory=list)


async def find_same_person(session: AsyncSession, cpts_id: str, traits: Traits, *, lock: bool = False
                           ) -> PatientRow | None:
    """The record of the same person in this CPTS (equal INS, else equal traits), preferring an active one."""
    live = PatientRow.status != lc.MERGED
    if traits.ins_nir:
        by_ins = select(PatientRow).where(PatientRow.cpts_id == cpts_id, PatientRow.ins_nir == traits.ins_nir,
                                          live)
        found = (await session.exec(by_ins.with_for_update() if lock else by_ins)).first()
        if found is not None:
            return found
    keys = sorted(traits.keys)
    if not keys:
        return None
    query = select(PatientRow).where(
        PatientRow.cpts_id == cpts_id, live,
        sa.or_(col(PatientRow.trait_key).in_(keys), col(PatientRow.used_trait_key).in_(keys)))
    if lock:
        query = query.with_for_update()
    candidates = [row for row in (await session.exec(query)).all() if same_person(traits, traits_of(row))]
    candidates.sort(key=lambda r: (r.status not in lc.ACTIVE, -r.enrolled_at.timestamp(), r.patient_id))
    return candidates[0] if candidates else None


async def _flag_near_duplicates(session: AsyncSession, row: PatientRow, now: datetime) -> list[DuplicateRow]:
    """Open a review entry for every other record of the CPTS, born the same day, that may be this person."""
    others = (await session.exec(select(PatientRow).where(
        PatientRow.cpts_id == row.cpts_id, PatientRow.birth_date == row.birth_date,
        PatientRow.status != lc.MERGED, PatientRow.patient_id != row.patient_id))).all()
    mine = traits_of(row)
    flagged = []
    for other in sorted(others, key=lambda r: (r.enrolled_at, r.patient_id)):
        theirs = traits_of(other)
        if same_person(mine, theirs):
            continue
        reason = near_duplicate_reason(mine, theirs)
        if reason is None:
            continue
        a, b = (other, row) if (other.enrolled_at, other.patient_id) <= (row.enrolled_at, row.patient_id) \
            else (row, other)
        exists = (await session.exec(select(DuplicateRow).where(
            DuplicateRow.patient_a == a.patient_id, DuplicateRow.patient_b == b.patient_id))).first()
        if exists is not None:
            continue
        candidate = DuplicateRow(candidate_id=str(uuid.uuid4()), cpts_id=row.cpts_id, patient_a=a.patient_id,
                                 patient_b=b.patient_id, reason=reason, status="open", detected_at=now)
        session.add(candidate)
        flagged.append(candidate)
    return flagged


def _apply_identity(row: PatientRow, identity: Identity) -> None:
    row.birth_name, row.used_name = identity.birth_name, identity.used_name
    row.first_names = identity.first_names
    row.birth_date, row.sex, row.phone, row.ins_nir = (identity.birth_date, identity.sex, identity.phone,
                                                       identity.ins_nir)
    _rekey(row)


def _rekey(row: PatientRow) -> None:
    row.trait_key = trait_key(row.birth_name, row.first_names, row.birth_date, row.sex) or ""
    row.used_trait_key = trait_key(row.used_name, row.first_names, row.birth_date, row.sex)


def _apply_commune(row: PatientRow, insee: str) -> None:
    commune = check_commune(insee, field="commune_insee")
    row.commune_insee, row.lat, row.lon = insee, commune.lat, commune.lon


def _apply_facts(row: PatientRow, facts: Facts) -> None:
    row.ald, row.c2s, row.pregnancy, row.disability = facts.ald, facts.c2s, facts.pregnancy, facts.disability
    row.hospital_discharge_on = facts.hospital_discharge_on
    row.complex, row.complex_assessed_on = facts.complex, facts.complex_assessed_on
    row.complex_assessed_by = facts.complex_assessed_by


def _accumulate_facts(row: PatientRow, facts: Facts) -> None:
    """A fact stated again is kept; a fact not stated does not erase one already recorded."""
    row.ald, row.c2s = row.ald or facts.ald, row.c2s or facts.c2s
    row.pregnancy, row.disability = row.pregnancy or facts.pregnancy, row.disability or facts.disability
    dates = [d for d in (row.hospital_discharge_on, facts.hospital_discharge_on) if d is not None]
    row.hospital_discharge_on = max(dates) if dates else None
    if facts.complex and not row.complex:
        row.complex, row.complex_assessed_on = True, facts.complex_assessed_on
        row.complex_assessed_by = facts.complex_assessed_by


def _identity_tuple(row: PatientRow) -> tuple:
    return (row.birth_name, row.used_name, row.first_names, row.birth_date, row.sex, row.ins_nir)


def _facts_tuple(row: PatientRow) -> tuple:
    return (row.ald, row.c2s, row.pregnancy, row.disability, row.hospital_discharge_on, row.complex,
            row.complex_assessed_on, row.complex_assessed_by)


async def enrol(session: AsyncSession, *, cpts_id: str, enrolment: Enrolment, source: str, by: Principal,
                weights: PriorityWeights, source_ref: str | None = None, now: datetime | None = None,
                checked: bool = False) -> EnrolResult:
    """Put a consenting patient on the CPTS's list: one person, one record.

    The same person (equal INS, or equal traits when the INS does not tell them apart) keeps their record: a
    record that had left the list is enrolled again, an active one is completed (missing phone, INS or used
    name; priority facts add up). Otherwise a new record is created, and the records born the same day that
    may be the same person are flagged for review (never merged silently)."""
    now = now or _now()
    today = paris_today(now)
    if not checked:
        check_enrolment(enrolment, today)
    identity = enrolment.identity
    if session.get_bind().dialect.name == "postgresql":
        # Enrolments of people born the same day in one CPTS queue, so that the same person enrolled twice at
        # once is found, not created twice (SQLite serialises units of work already).
        key = f"{ENROL_LOCK_NAMESPACE}{cpts_id}:{identity.birth_date.isoformat()}"
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_key(key))))
    existing = await find_same_person(session, cpts_id, identity.traits, lock=True)
    if existing is not None:
        return await _enrol_existing(session, existing, enrolment, source=source, source_ref=source_ref,
                                     by=by, weights=weights, now=now)
    commune = check_commune(enrolment.commune_insee)
    row = PatientRow(
        patient_id=str(uuid.uuid4()), cpts_id=cpts_id, status=lc.WAITING, source=source,
        source_ref=source_ref, birth_name=identity.birth_name, first_names=identity.first_names,
        birth_date=identity.birth_date, sex=identity.sex, trait_key="", commune_insee=enrolment.commune_insee,
        lat=commune.lat, lon=commune.lon, max_distance_km=enrolment.max_distance_km,
        needs_home_visit=enrolment.needs_home_visit, consent_at=now, consent_source=enrolment.consent_source,
        age_band=age_band(identity.birth_date, today), enrolled_at=now, status_changed_at=now, updated_at=now,
        created_by=by.subject)
    _apply_identity(row, identity)
    _apply_facts(row, enrolment.facts)
    row.priority_facts = list(priority_facts(priority_input(row), today, weights))
    session.add(row)
    await session.flush()
    flagged = await _flag_near_duplicates(session, row, now)
    await _emit(session, [_event(PatientEnrolled(**_facts_payload(row), enrolled_at=now))])
    await audit_many(session, by, action="create", record_ids=[row.patient_id],
                     purpose=f"enrolment ({source})")
    return EnrolResult(outcome="created", patient=row, near_duplicates=flagged)


async def _enrol_existing(session: AsyncSession, row: PatientRow, enrolment: Enrolment, *, source: str,
                          source_ref: str | None, by: Principal, weights: PriorityWeights, now: datetime
                          ) -> EnrolResult:
    identity = enrolment.identity
    today = paris_today(now)
    events: list[Event] = []
    if row.status in lc.ENDED:
        # A new episode: the record is on the list again, with today's facts, commune and mobility.
        _set_status(row, lc.WAITING, now)
        row.enrolled_at, row.source, row.source_ref = now, source, source_ref
        row.ended_reason, row.mt_idnps = None, None
        row.consent_at, row.consent_source = now, enrolment.consent_source
        _apply_commune(row, enrolment.commune_insee)
        row.max_distance_km, row.needs_home_visit = enrolment.max_distance_km, enrolment.needs_home_visit
        _fill_identity(row, identity)
        _apply_facts(row, enrolment.facts)
        row.priority_facts = list(priority_facts(priority_input(row), today, weights))
        row.age_band = age_band(row.birth_date, today)
        events.append(_event(PatientEnrolled(**_facts_payload(row), enrolled_at=now, re_enrolment=True)))
        await _emit(session, events)
        await audit_many(session, by, action="re-enrol", record_ids=[row.patient_id],
                         purpose=f"enrolment ({source})")
        return EnrolResult(outcome="re_enrolled", patient=row)
    changed: list[str] = []
    before_identity = (row.used_name, row.ins_nir)
    before_phone = row.phone
    _fill_identity(row, identity)
    if (row.used_name, row.ins_nir) != before_identity:
        changed.append("identity")
    if row.phone != before_phone:
        changed.append("contact")
    before_facts = _facts_tuple(row)
    _accumulate_facts(row, enrolment.facts)
    if _facts_tuple(row) != before_facts:
        changed.append("priority_facts")
    if changed:
        row.updated_at = now
        priority_event = _refresh_facts(row, today, weights, now)
        events.append(_event(PatientUpdated(**_facts_payload(row), changed=changed, updated_at=now)))
        if priority_event is not None:
            events.append(priority_event)
        await _emit(session, events)
    await audit_many(session, by, action="update" if changed else "match", record_ids=[row.patient_id],
                     purpose=f"enrolment of a patient already on the list ({source})")
    return EnrolResult(outcome="existing", patient=row)


def _fill_identity(row: PatientRow, identity: Identity) -> None:
    """Complete what the record lacks (never overwrite what it holds: corrections go through an update)."""
    if row.phone is None and identity.phone:
        row.phone = identity.phone
    if row.ins_nir is None and identity.ins_nir:
        row.ins_nir = identity.ins_nir
    if (row.used_name is None and identity.used_name
            and name_key(identity.used_name) != name_key(row.birth_name)):
        row.used_name = identity.used_name
        _rekey(row)


# --- Changes to a record -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientChanges:
    """A partial update: None leaves a part as it is."""

    identity: Identity | None = None
    commune_insee: str | None = None
    max_distance_km: float | None = None
    clear_max_distance: bool = False
    needs_home_visit: bool | None = None
    facts: Facts | None = None


async def _patient(session: AsyncSession, cpts_id: str, patient_id: str, *, lock: bool = True) -> PatientRow:
    row = await session.get(PatientRow, patient_id, with_for_update=lock or None)
    if row is None or row.cpts_id != cpts_id:
        raise UnknownPatient(f"no patient {patient_id} in CPTS {cpts_id}", field="patient_id")
    return row


async def update_patient(database: Database, *, cpts_id: str, patient_id: str, changes: PatientChanges,
                         by: Principal, weights: PriorityWeights, now: datetime | None = None,
                         reply: Reply[PatientRow, T] = _itself) -> T:
    """Correct or complete a record (identity, contact, commune, mobility, priority facts); returns the
    record, or what `reply` reads of it in the same transaction."""
    now = now or _now()
    today = paris_today(now)
    async with database.transaction() as session:
        row = await _patient(session, cpts_id, patient_id)
        if row.status == lc.MERGED:
            raise InvalidTransition(f"the record was merged into {row.merged_into}", field="patient_id")
        changed: list[str] = []
        if changes.identity is not None:
            check_identity(changes.identity, today)
            if changes.identity.ins_nir and changes.identity.ins_nir != row.ins_nir:
                other = (await session.exec(select(PatientRow.patient_id).where(
                    PatientRow.cpts_id == cpts_id, PatientRow.ins_nir == changes.identity.ins_nir,
                    PatientRow.status != lc.MERGED, PatientRow.patient_id != patient_id))).first()
                if other is not None:
                    raise InvalidTransition(f"another record of this CPTS ({other}) has this INS: merge the "
                                            "duplicates", field="identity.ins_nir")
            before = _identity_tuple(row)
            phone = row.phone
            _apply_identity(row, changes.identity)
            if _identity_tuple(row) != before:
                changed.append("identity")
            if row.phone != phone:
                changed.append("contact")
        if changes.commune_insee is not None and changes.commune_insee != row.commune_insee:
            _apply_commune(row, changes.commune_insee)
            changed.append("commune")
        mobility = (row.max_distance_km, row.needs_home_visit)
        if changes.clear_max_distance:
            row.max_distance_km = None
        elif changes.max_distance_km is not None:
            if not 0 <= changes.max_distance_km <= 200:
                raise InvalidPatient("the distance must be between 0 and 200 km",
                                     field="mobility.max_distance_km")
            row.max_distance_km = changes.max_distance_km
        if changes.needs_home_visit is not None:
            row.needs_home_visit = changes.needs_home_visit
        if (row.max_distance_km, row.needs_home_visit) != mobility:
            changed.append("mobility")
        if changes.facts is not None:
            check_facts(changes.facts, today)
            before_facts = _facts_tuple(row)
            _apply_facts(row, changes.facts)
            if _facts_tuple(row) != before_facts:
                changed.append("priority_facts")
        if changed:
            row.updated_at = now
            session.add(row)
            priority_event = _refresh_facts(row, today, weights, now)
            events = [_event(PatientUpdated(**_facts_payload(row), changed=changed, updated_at=now))]
            await _emit(session, events + ([priority_event] if priority_event is not None else []))
            if "identity" in changed:
                await session.flush()
                await _flag_near_duplicates(session, row, now)
        await audit_many(session, by, action="update", record_ids=[patient_id],
                         purpose="correction: " + (", ".join(changed) or "nothing changed"))
        return await reply(session, row)


async def end_wait(database: Database, *, cpts_id: str, patient_id: str, outcome: str, reason: str,
                   by: Principal, now: datetime | None = None, reply: Reply[PatientRow, T] = _itself) -> T:
    """The patient leaves the list: `withdrawn` (with a reason) or `found_elsewhere` (an MT by other means).
    A pending proposal is cancelled (it no longer uses the GP's capacity). Returns the record, or what `reply`
    reads of it in the same transaction."""
    now = now or _now()
    async with database.transaction() as session:
        row = await _patient(session, cpts_id, patient_id)
        if row.status == outcome:
            return await reply(session, row)
        _set_status(row, outcome, now)
        row.ended_reason = reason
        await _cancel_pending(session, row.patient_id, now)
        facts = _facts_payload(row)
        waiting = _waiting_days(row, now)
        if outcome == lc.WITHDRAWN:
            event = _event(PatientWithdrawn(**facts, reason=reason, waiting_days=waiting, withdrawn_at=now))
        else:
            event = _event(PatientFoundElsewhere(**facts, waiting_days=waiting, found_at=now))
        session.add(row)
        await _emit(session, [event])
        await audit_many(session, by, action=outcome.replace("_", "-")[:20], record_ids=[patient_id],
                         purpose=reason)
        return await reply(session, row)


async def _pending(session: AsyncSession, patient_id: str) -> ProposalRow | None:
    """The patient's pending proposal (at most one), locked."""
    return (await session.exec(select(ProposalRow).where(
        ProposalRow.patient_id == patient_id, ProposalRow.status == lc.PENDING).with_for_update())).first()


async def _cancel_pending(session: AsyncSession, patient_id: str, now: datetime) -> ProposalRow | None:
    pending = await _pending(session, patient_id)
    if pending is not None:
        pending.status, pending.decided_at, pending.decided_by = lc.CANCELLED, now, SYSTEM.subject
        session.add(pending)
    return pending


# --- Duplicates --------------------------------------------------------------------------------------------


async def resolve_duplicate(database: Database, *, cpts_id: str, candidate_id: str, decision: str,
                            keep: str | None, by: Principal, weights: PriorityWeights,
                            now: datetime | None = None,
                            reply: Reply[tuple[DuplicateRow, PatientRow | None], T] = _itself) -> T:
    """Decide on a near duplicate: `keep_separate`, or `merge` into `keep` (default: the older record).

    A merge keeps the earliest enrolment (the waiting time is the person's), adds up the priority facts and
    exclusions, completes the identity, and moves a pending proposal to the surviving record. A record whose
    médecin traitant was declared can only be the survivor; two pending proposals must be answered first.
    Returns the candidate and the surviving record (None unless merged), or what `reply` reads of them in the
    same transaction."""
    now = now or _now()
    async with database.transaction() as session:
        candidate = await session.get(DuplicateRow, candidate_id, with_for_update=True)
        if candidate is None or candidate.cpts_id != cpts_id:
            raise UnknownDuplicate(f"no duplicate candidate {candidate_id}", field="candidate_id")
        if candidate.status != "open":
            raise InvalidTransition(f"already resolved ({candidate.status})", field="candidate_id")
        ids = sorted((candidate.patient_a, candidate.patient_b))
        rows = {i: await _patient(session, cpts_id, i) for i in ids}  # locked in id order
        a, b = rows[candidate.patient_a], rows[candidate.patient_b]
        if lc.MERGED in (a.status, b.status):
            candidate.status, candidate.resolved_at, candidate.resolved_by = "obsolete", now, by.subject
            session.add(candidate)
            return await reply(session, (candidate, None))
        candidate.resolved_at, candidate.resolved_by = now, by.subject
        if decision == "keep_separate":
            candidate.status = "kept_separate"
            session.add(candidate)
            await audit_many(session, by, action="review", record_ids=ids, purpose="duplicate: kept separate")
            return await reply(session, (candidate, None))
        if keep is not None and keep not in rows:
            raise InvalidPatient("keep must be one of the two records", field="keep")
        declared = [r for r in (a, b) if r.status == lc.MT_DECLARED]
        if len(declared) == 2:
            raise InvalidTransition("both records have a declared médecin traitant", field="keep")
        if declared and keep is not None and keep != declared[0].patient_id:
            raise InvalidTransition("the record whose médecin traitant was declared must be kept",
                                    field="keep")
        survivor = declared[0] if declared else rows[keep] if keep else a
        absorbed = b if survivor is a else a
        pendings = {r.patient_id: await _pending(session, r.patient_id) for r in (a, b)}
        if all(pendings.values()):
            raise InvalidTransition("both records have a pending proposal: record an answer to one first",
                                    field="keep")
        events = await _merge(session, survivor, absorbed, pendings[absorbed.patient_id], weights, now)
        candidate.status = "merged"
        session.add(candidate)
        others = (await session.exec(select(DuplicateRow).where(
            DuplicateRow.status == "open", DuplicateRow.candidate_id != candidate_id,
            sa.or_(DuplicateRow.patient_a == absorbed.patient_id,
                   DuplicateRow.patient_b == absorbed.patient_id)))).all()
        for other in others:
            other.status, other.resolved_at, other.resolved_by = "obsolete", now, by.subject
            session.add(other)
        await _emit(session, events)
        await audit_many(session, by, action="merge", record_ids=[survivor.patient_id, absorbed.patient_id],
                         purpose=f"duplicate merged into {survivor.patient_id}")
        return await reply(session, (candidate, survivor))


async def _merge(session: AsyncSession, survivor: PatientRow, absorbed: PatientRow, moved: ProposalRow | None,
                 weights: PriorityWeights, now: datetime) -> list[Event]:
    today = paris_today(now)
    events: list[Event] = []
    survivor_was_active = survivor.status in lc.ACTIVE
    absorbed_ins = absorbed.ins_nir
    absorbed_status = absorbed.status
    _set_status(absorbed, lc.MERGED, now)
    absorbed.merged_into, absorbed.ended_reason = survivor.patient_id, "merged_duplicate"
    session.add(absorbed)
    await session.flush()  # its INS leaves the one-INS-per-CPTS index before the survivor may take it
    if absorbed_status in lc.ACTIVE:
        events.append(_event(PatientWithdrawn(**_facts_payload(absorbed), reason="merged_duplicate",
                                              merged_into=survivor.patient_id,
                                              waiting_days=_waiting_days(absorbed, now), withdrawn_at=now)))
    before = (_facts_tuple(survivor), _identity_tuple(survivor), survivor.phone, survivor.enrolled_at)
    _fill_identity(survivor, Identity(
        birth_name=absorbed.birth_name, first_names=absorbed.first_names, birth_date=absorbed.birth_date,
        sex=absorbed.sex, used_name=absorbed.used_name, phone=absorbed.phone, ins_nir=absorbed_ins))
    _accumulate_facts(survivor, Facts(
        ald=absorbed.ald, c2s=absorbed.c2s, pregnancy=absorbed.pregnancy, disability=absorbed.disability,
        hospital_discharge_on=absorbed.hospital_discharge_on, complex=absorbed.complex,
        complex_assessed_on=absorbed.complex_assessed_on, complex_assessed_by=absorbed.complex_assessed_by))
    if absorbed.enrolled_at < survivor.enrolled_at and absorbed_status in lc.ACTIVE:
        survivor.enrolled_at = absorbed.enrolled_at
    for exclusion in (await session.exec(select(ExclusionRow).where(
            ExclusionRow.patient_id == absorbed.patient_id))).all():
        if await session.get(ExclusionRow, (survivor.patient_id, exclusion.idnps)) is None:
            session.add(ExclusionRow(patient_id=survivor.patient_id, idnps=exclusion.idnps,
                                     reason=exclusion.reason, at=exclusion.at))
    target = survivor.status
    if moved is not None and survivor.status == lc.MT_DECLARED:
        moved.status, moved.decided_at, moved.decided_by = lc.CANCELLED, now, SYSTEM.subject  # has an MT
        session.add(moved)
    elif moved is not None:
        moved.patient_id = survivor.patient_id
        session.add(moved)
        target = lc.PROPOSED
    elif absorbed_status in lc.ACTIVE and survivor.status not in lc.ACTIVE:
        target = lc.WAITING
    if target != survivor.status:
        if survivor.status in lc.ENDED:  # back on the list (withdrawn or found elsewhere by mistake)
            _set_status(survivor, lc.WAITING, now)
        if target != survivor.status:
            _set_status(survivor, target, now)
        survivor.ended_reason = None
    survivor.updated_at = now
    session.add(survivor)
    if not survivor_was_active and survivor.status in lc.ACTIVE:
        survivor.priority_facts = list(priority_facts(priority_input(survivor), today, weights))
        events.append(_event(PatientEnrolled(**_facts_payload(survivor), enrolled_at=survivor.enrolled_at,
                                             re_enrolment=True)))
    elif (_facts_tuple(survivor), _identity_tuple(survivor), survivor.phone, survivor.enrolled_at) != before:
        priority_event = _refresh_facts(survivor, today, weights, now)
        events.append(_event(PatientUpdated(**_facts_payload(survivor),
                                            changed=["identity", "priority_facts"], updated_at=now)))
        if priority_event is not None:
            events.append(priority_event)
    return events


# --- Proposals: answers and expiry -------------------------------------------------------------------------


async def _proposal_and_patient(session: AsyncSession, proposal_id: str) -> tuple[ProposalRow, PatientRow]:
    """Lock the patient, then the proposal (the order every command follows)."""
    found = await session.get(ProposalRow, proposal_id)
    if found is None:
        raise UnknownProposal(f"no proposal {proposal_id}", field="proposal_id")
    patient = await session.get(PatientRow, found.patient_id, with_for_update=True)
    proposal = await session.get(ProposalRow, proposal_id, with_for_update=True, populate_existing=True)
    if patient is None or proposal is None or proposal.patient_id != patient.patient_id:
        raise InvalidTransition("the proposal changed meanwhile: try again", field="proposal_id")
    return proposal, patient


def _proposal_facts(proposal: ProposalRow, patient: PatientRow) -> dict:
    return dict(**_facts_payload(patient), proposal_id=proposal.proposal_id, idnps=proposal.idnps,
                round_id=proposal.round_id, distance_km=proposal.distance_km, made_at=proposal.made_at)


async def _exclude(session: AsyncSession, patient_id: str, idnps: str, reason: str, now: datetime) -> None:
    if await session.get(ExclusionRow, (patient_id, idnps)) is None:
        session.add(ExclusionRow(patient_id=patient_id, idnps=idnps, reason=reason, at=now))


def _back_to_waiting(patient: PatientRow, now: datetime) -> None:
    if patient.status == lc.PROPOSED:
        _set_status(patient, lc.WAITING, now)


def _expire(session: AsyncSession, proposal: ProposalRow, patient: PatientRow, now: datetime) -> Event:
    proposal.status, proposal.decided_at, proposal.decided_by = lc.EXPIRED, now, SYSTEM.subject
    proposal.declined_by, proposal.decline_reason = "gp", "expired"
    _back_to_waiting(patient, now)
    session.add_all([proposal, patient])
    return _event(ProposalExpired(**_proposal_facts(proposal, patient), deadline=proposal.deadline,
                                  expired_at=now))


@dataclass
class Answer:
    proposal: ProposalRow
    patient: PatientRow
    expired: bool = False


async def answer_proposal(database: Database, *, proposal_id: str, accept: bool, by: Principal,
                          declined_by: str = "gp", reason: str | None = None, now: datetime | None = None,
                          reply: Reply[Answer, T] = _itself) -> T:
    """The GP accepts (the patient's médecin traitant is declared) or declines; or the patient declines.

    A decline sends the patient back to waiting and excludes that GP for them for good. An answer after the
    deadline finds the proposal expired (`Answer.expired`; the caller answers 409, the expiry being stored).
    Returns the `Answer`, or what `reply` reads of it in the same transaction."""
    now = now or _now()
    async with database.transaction() as session:
        proposal, patient = await _proposal_and_patient(session, proposal_id)
        if proposal.status != lc.PENDING:
            raise InvalidTransition(f"the proposal is already {proposal.status}", field="proposal_id")
        if proposal.deadline <= now:
            event = _expire(session, proposal, patient, now)
            await _exclude(session, patient.patient_id, proposal.idnps, "gp_expired", now)
            await _emit(session, [event])
            await audit_many(session, SYSTEM, action="expire", record_ids=[patient.patient_id],
                             purpose=f"proposal {proposal_id} expired")
            return await reply(session, Answer(proposal, patient, expired=True))
        facts = _proposal_facts(proposal, patient)
        proposal.decided_at, proposal.decided_by = now, by.subject
        if accept:
            proposal.status = lc.ACCEPTED
            _set_status(patient, lc.MT_DECLARED, now)
            patient.mt_idnps = proposal.idnps
            events = [_event(ProposalAccepted(**facts, accepted_at=now)),
                      _event(MtDeclared(**_facts_payload(patient), idnps=proposal.idnps,
                                        proposal_id=proposal_id, waiting_days=_waiting_days(patient, now),
                                        declared_at=now))]
            action, purpose = "accept", f"proposal {proposal_id} accepted: médecin traitant declared"
        else:
            proposal.status, proposal.declined_by, proposal.decline_reason = lc.DECLINED, declined_by, reason
            _back_to_waiting(patient, now)
            await _exclude(session, patient.patient_id, proposal.idnps, f"{declined_by}_declined", now)
            events = [_event(ProposalDeclined(**facts, declined_by=declined_by, reason=reason or "other",
                                              declined_at=now))]
            action, purpose = "decline", f"proposal {proposal_id} declined by the {declined_by}"
        session.add_all([proposal, patient])
        await _emit(session, events)
        await audit_many(session, by, action=action, record_ids=[patient.patient_id], purpose=purpose)
        return await reply(session, Answer(proposal, patient))


async def expire_due(database: Database, *, now: datetime | None = None, limit: int = 500) -> int:
    """Expire the pending proposals past their deadline (the GP did not answer: counted as declined)."""
    now = now or _now()
    expired = 0
    while True:
        async with database.sessions() as reader:
            due = (await reader.exec(select(ProposalRow.proposal_id).where(
                ProposalRow.status == lc.PENDING, ProposalRow.deadline <= now)
                .order_by(ProposalRow.deadline).limit(limit))).all()
        if not due:
            return expired
        async with database.transaction() as session:
            events, patients = [], []
            for proposal_id in due:
                try:
                    proposal, patient = await _proposal_and_patient(session, proposal_id)
                except (UnknownProposal, InvalidTransition):
                    continue
                if proposal.status != lc.PENDING or proposal.deadline > now:
                    continue  # answered meanwhile
                events.append(_expire(session, proposal, patient, now))
                await _exclude(session, patient.patient_id, proposal.idnps, "gp_expired", now)
                patients.append(patient.patient_id)
            await _emit(session, events)
            await audit_many(session, SYSTEM, action="expire", record_ids=patients,
                             purpose="proposal expired without an answer")
            expired += len(patients)
        if len(due) < limit:
            return expired


# --- Rounds ------------------------------------------------------------------------------------------------


@dataclass
class RoundInput:
    """What a round works on: the solver's patients and GPs, and the records they come from."""

    patients: list[Patient]
    gps: list[Gp]
    rows: dict[str, PatientRow]
    priorities: dict[str, Priority]
    gp_views: dict[str, GpView]


def month_start(now: datetime) -> datetime:
    """The first instant of the current month in Paris, in UTC (GP capacities are monthly)."""
    local = now.astimezone(PARIS)
    return datetime(local.year, local.month, 1, tzinfo=PARIS).astimezone(UTC)


def gp_point(view: GpView) -> tuple[float, float] | None:
    """The practice site's point, else the site's or the main commune's point."""
    if view.lat is not None and view.lon is not None:
        return view.lat, view.lon
    for insee in (view.site_commune_insee, view.commune_insee):
        commune = communes().get(insee or "")
        if commune is not None and commune.lat is not None and commune.lon is not None:
            return commune.lat, commune.lon
    return None


async def round_input(session: AsyncSession, cpts_id: str, *, weights: PriorityWeights,
                      default_max_distance_km: float, now: datetime, lock: bool = False) -> RoundInput:
    """The waiting patients of the CPTS and the GPs of the CPTS with capacity left this month.

    Capacity = new patients per month minus the proposals of this month pending or accepted; a GP counts while
    active, accepting and before their `until` date. A patient excludes every GP who declined them (or let a
    proposal expire) and every GP they declined."""
    today = paris_today(now)
    query = select(PatientRow).where(PatientRow.cpts_id == cpts_id, PatientRow.status == lc.WAITING)
    if lock:
        query = query.with_for_update()
    rows = {row.patient_id: row for row in (await session.exec(query)).all()}
    exclusions: dict[str, set[str]] = {}
    for patient_id, idnps in (await session.exec(
            select(ExclusionRow.patient_id, ExclusionRow.idnps).join(
                PatientRow, col(PatientRow.patient_id) == col(ExclusionRow.patient_id))
            .where(PatientRow.cpts_id == cpts_id, PatientRow.status == lc.WAITING))).all():
        exclusions.setdefault(patient_id, set()).add(idnps)
    used = dict((await session.exec(
        select(ProposalRow.idnps, sa.func.count()).where(
            col(ProposalRow.status).in_(lc.COUNTS_AGAINST_CAPACITY), ProposalRow.made_at >= month_start(now))
        .group_by(ProposalRow.idnps))).all())
    views = (await session.exec(select(GpView).where(
        GpView.active == sa.true(), GpView.accepting == sa.true(), GpView.new_patients_per_month > 0))).all()
    gps: list[Gp] = []
    gp_views: dict[str, GpView] = {}
    for view in views:
        expired = view.accepting_until is not None and view.accepting_until < today
        if cpts_id not in view.cpts_ids or expired:
            continue
        point = gp_point(view)
        if point is None:
            continue
        publics = set(view.publics)
        gps.append(Gp(id=view.idnps, capacity=max(view.new_patients_per_month - used.get(view.idnps, 0), 0),
                      lat=point[0], lon=point[1], takes_children="children" in publics,
                      does_home_visits="home_bound" in publics,
                      takes_adults="adults" in publics or not publics))
        gp_views[view.idnps] = view
    patients, priorities = [], {}
    for row in rows.values():
        prio = priority_of(row, today, weights)
        priorities[row.patient_id] = prio
        mobility = row.max_distance_km if row.max_distance_km is not None else default_max_distance_km
        patients.append(Patient(
            id=row.patient_id, weight=prio.score, lat=row.lat, lon=row.lon, max_distance_km=mobility,
            needs_home_visit=row.needs_home_visit, is_child=is_child(row.birth_date, today),
            excluded_gps=frozenset(exclusions.get(row.patient_id, ())),
            tie_break=row.enrolled_at.astimezone(UTC).isoformat()))
    return RoundInput(patients=patients, gps=gps, rows=rows, priorities=priorities, gp_views=gp_views)


REPORTED_GROUPS = ("ald", "70+", "c2s")


def group_figures(inputs: RoundInput, exact: RoundResult, fcfs: RoundResult) -> dict:
    """Per priority group (a patient counts in each of their groups) and overall: waiting, served by the
    round, served by first come first served."""
    figures = {group: {"waiting": 0, "exact": 0, "fcfs": 0} for group in (*REPORTED_GROUPS, "all")}
    for patient_id, prio in inputs.priorities.items():
        for group in (*[g for g in REPORTED_GROUPS if g in prio.facts], "all"):
            figures[group]["waiting"] += 1
            figures[group]["exact"] += patient_id in exact.assignments
            figures[group]["fcfs"] += patient_id in fcfs.assignments
    return figures


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a PostgreSQL advisory lock named `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def run_round(database: Database, *, cpts_id: str, settings: Settings, by: Principal, trigger: str,
                    now: datetime | None = None) -> RoundRow:
    """A matching round for one CPTS: the exact assignment of its waiting patients to its GPs' capacity.

    Overdue proposals expire first. Each assignment becomes a pending proposal (deadline: now +
    `proposal_deadline_days`), the patient becomes `proposed`. The round is stored with its objective and the
    first-come-first-served figures for the same input."""
    now = now or _now()
    await expire_due(database, now=now)
    started = time.perf_counter()
    async with database.transaction() as session:
        if database.dialect == "postgresql":
            round_lock = lock_key(ROUND_LOCK_NAMESPACE + cpts_id)
            await session.execute(sa.select(sa.func.pg_advisory_xact_lock(round_lock)))
        inputs = await round_input(session, cpts_id, weights=settings.priority, now=now, lock=True,
                                   default_max_distance_km=settings.default_max_distance_km)
        exact, fcfs = await asyncio.to_thread(_solve_both, inputs.patients, inputs.gps)
        round_id = str(uuid.uuid4())
        deadline = now + timedelta(days=settings.proposal_deadline_days)
        by_id = {p.id: p for p in inputs.patients}
        gp_by_id = {g.id: g for g in inputs.gps}
        events: list[Event] = []
        proposals: list[ProposalRow] = []
        for patient_id, idnps in exact.assignments.items():
            row = inputs.rows[patient_id]
            _set_status(row, lc.PROPOSED, now)
            proposal = ProposalRow(
                proposal_id=str(uuid.uuid4()), patient_id=patient_id, idnps=idnps, cpts_id=cpts_id,
                round_id=round_id, status=lc.PENDING, made_at=now, deadline=deadline,
                distance_km=round(distance_km(by_id[patient_id], gp_by_id[idnps]), 2))
            proposals.append(proposal)
            events.append(_event(ProposalMade(**_proposal_facts(proposal, row), deadline=deadline)))
        session.add_all([*inputs.rows.values(), *proposals])
        record = RoundRow(
            round_id=round_id, cpts_id=cpts_id, trigger=trigger, started_by=by.subject, started_at=now,
            duration_ms=round((time.perf_counter() - started) * 1000), patients=len(inputs.patients),
            gps=sum(1 for g in inputs.gps if g.capacity > 0), capacity=sum(g.capacity for g in inputs.gps),
            proposals=len(proposals), weight_waiting=sum(p.weight for p in inputs.patients),
            weighted_served=exact.objective.weighted_served,
            total_distance_units=exact.objective.total_distance_units,
            spread_cost=exact.objective.spread_cost,
            fcfs_served=fcfs.served, fcfs_weighted_served=fcfs.objective.weighted_served,
            fcfs_total_distance_units=fcfs.objective.total_distance_units,
            fcfs_spread_cost=fcfs.objective.spread_cost, groups=group_figures(inputs, exact, fcfs))
        session.add(record)
        await _emit(session, events)
        await audit_many(session, by, action="propose", record_ids=list(exact.assignments),
                         purpose=f"matching round {round_id}")
    return record


def _solve_both(patients: list[Patient], gps: list[Gp]) -> tuple[RoundResult, RoundResult]:
    return solve_round(patients, gps), greedy_fcfs(patients, gps)


# --- Scheduled jobs ----------------------------------------------------------------------------------------


async def claim_job(database: Database, job: str, *, interval: timedelta, now: datetime | None = None
                    ) -> bool:
    """Whether this replica runs `job` now: its row is locked, checked and moved one interval ahead in one
    transaction, so two replicas never both claim it. A job seen for the first time is due one interval
    later."""
    now = now or _now()
    async with database.transaction() as session:
        table = SchedulerStateRow.__table__  # type: ignore[attr-defined]
        await session.execute(upsert(database.dialect, table).values(
            job=job, next_run_at=now + interval, last_run_at=None).on_conflict_do_nothing())
        state = await session.get(SchedulerStateRow, job, with_for_update=True, populate_existing=True)
        if state is None or state.next_run_at > now:
            return False
        state.last_run_at, state.next_run_at = now, now + interval
        session.add(state)
        return True


async def cpts_with_waiting_patients(database: Database) -> list[str]:
    async with database.sessions() as session:
        return list((await session.exec(select(PatientRow.cpts_id).where(
            PatientRow.status == lc.WAITING).distinct().order_by(PatientRow.cpts_id))).all())


async def run_scheduled_rounds(database: Database, settings: Settings, *, now: datetime | None = None
                               ) -> list[RoundRow]:
    """A round for every CPTS with waiting patients (the scheduled job's work)."""
    return [await run_round(database, cpts_id=cpts_id, settings=settings, by=SYSTEM, trigger="scheduled",
                            now=now) for cpts_id in await cpts_with_waiting_patients(database)]


async def refresh_priorities(database: Database, weights: PriorityWeights, *, now: datetime | None = None,
                             batch: int = 1000) -> int:
    """Announce the priority facts that changed with time (70th birthday, a discharge no longer recent) for
    the patients on a list; the waiting days alone never emit an event."""
    now = now or _now()
    today = paris_today(now)
    changed = 0
    last = ""
    while True:
        async with database.transaction() as session:
            rows = (await session.exec(select(PatientRow).where(
                col(PatientRow.status).in_(lc.ACTIVE), PatientRow.patient_id > last)
                .order_by(PatientRow.patient_id).limit(batch).with_for_update())).all()
            if not rows:
                return changed
            events = []
            for row in rows:
                band = row.age_band
                event = _refresh_facts(row, today, weights, now)
                if event is not None:
                    events.append(event)
                if event is not None or row.age_band != band:
                    session.add(row)
            await _emit(session, events)
            await audit_many(session, SYSTEM, action="reprioritise",
                             record_ids=[e.payload.patient_id for e in events],
                             purpose="daily priority refresh")
            changed += len(events)
            last = rows[-1].patient_id
        if len(rows) < batch:
            return changed


# --- Read models of the registry ---------------------------------------------------------------------------


async def cpts_of_commune(session: AsyncSession, insee: str) -> str | None:
    for view in (await session.exec(select(CptsView).order_by(CptsView.cpts_id))).all():
        if insee in view.communes:
            return view.cpts_id
    return None

