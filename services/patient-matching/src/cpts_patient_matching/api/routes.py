"""REST API of patient-matching: the CPTS's list of patients without a médecin traitant (enrolment, priority,
duplicates), matching rounds, proposals to GPs and their answers.

Who sees what: the coordinator and the secretaries of a CPTS manage its patients (`principal.cpts_ids`); only
the coordinator runs rounds; a GP sees the proposals addressed to them, with the patient's contact while the
proposal is pending or accepted; the ARS sees nothing individual (403). A patient, a proposal or a duplicate
outside the caller's scope answers 404: its existence is private. Every read of a patient record is audited
(committed) before it is served. A command answered with the record (a correction, a withdrawal, a merge, an
answer to a proposal) reads and audits that answer in its own transaction: a change that is stored is never
answered 503 for a read after its commit.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Callable

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_patient_matching import handlers, queries, scheduler
from cpts_patient_matching.api.schemas import (
    ComparedPatient,
    ComparisonPublic,
    ComponentPublic,
    DuplicateBrief,
    DuplicatePage,
    EnrolmentIn,
    EnrolmentResult,
    GpDeclineIn,
    GpProposal,
    GpProposalPage,
    IdentityIn,
    PatientDeclineIn,
    PatientPage,
    PatientPublic,
    PatientStatus,
    PatientUpdateIn,
    PriorityFactsIn,
    PriorityPublic,
    ProposalPage,
    ProposalPublic,
    ProposalStatus,
    ResolveIn,
    ResolveResult,
    RoundPage,
    RoundPublic,
    WithdrawIn,
)
from cpts_patient_matching.domain import lifecycle as lc
from cpts_patient_matching.domain.errors import InvalidTransition, MatchingError
from cpts_patient_matching.domain.intake import paris_today
from cpts_patient_matching.domain.priority import Ranked, compare
from cpts_patient_matching.repository import DuplicateRow, PatientRow, ProposalRow, RoundRow, get_gp
from cpts_patient_matching.settings import Settings
from cpts_platform import audit
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.db import Database
from cpts_platform.problems import ProblemError
from cpts_platform.service import DatabaseDep, ReadSessionDep, Runtime, RuntimeDep

patients = APIRouter(prefix="/cpts/{cpts_id}", tags=["patients sans médecin traitant"])
rounds = APIRouter(prefix="/cpts/{cpts_id}", tags=["appariement"])
proposals = APIRouter(prefix="/proposals", tags=["propositions aux médecins"])
gps = APIRouter(tags=["médecins"])

Guichet = Annotated[Principal, Depends(require_roles(Role.SECRETARY, Role.COORDINATOR))]
Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
GpOrGuichet = Annotated[Principal, Depends(require_roles(Role.PROFESSIONAL, Role.SECRETARY,
                                                         Role.COORDINATOR))]
Gp = Annotated[Principal, Depends(require_roles(Role.PROFESSIONAL))]
CptsId = Annotated[str, Path(pattern=r"^\d{2}[0-9AB]\d{6}$", description="FINESS of the CPTS.")]


def matching_problem(exc: Exception) -> ProblemError:
    """A domain error as a problem: its status, its message, and the field at fault (never a value)."""
    if not isinstance(exc, MatchingError):
        return ProblemError(500, "Internal error; it has been logged.")
    errors = [{"field": exc.field, "in": "body", "message": exc.detail}] if exc.field else None
    return ProblemError(exc.status, exc.detail, errors=errors)


# Installed in app.py: every domain error answers with its status and the field at fault.
DOMAIN_PROBLEMS: dict[type[Exception], Callable[[Exception], ProblemError]] = {
    MatchingError: matching_problem}


def _now() -> datetime:
    return datetime.now(UTC)


def _settings(runtime: Runtime) -> Settings:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    return settings


def _scope(principal: Principal, cpts_id: str) -> None:
    """A list of a CPTS outside the caller's scope: 403 (the CPTS itself is public)."""
    ensure(principal.can_access_cpts(cpts_id), f"CPTS {cpts_id} is outside your scope.")


async def _audit(database: Database, principal: Principal, record_ids: list[str], purpose: str,
                 action: str = "read") -> None:
    async with database.transaction() as session:
        await handlers.audit_many(session, principal, action=action, record_ids=record_ids, purpose=purpose)


async def _visible_patient(session: AsyncSession, principal: Principal, cpts_id: str, patient_id: str
                           ) -> PatientRow:
    row = await session.get(PatientRow, patient_id)
    if row is None or row.cpts_id != cpts_id or not principal.can_access_cpts(cpts_id):
        raise ProblemError(404, f"No patient {patient_id} in CPTS {cpts_id}.")
    return row


async def _read_patient(database: Database, principal: Principal, cpts_id: str, patient_id: str, *,
                        settings: Settings, purpose: str) -> PatientPublic:
    """The record, audited first (404 when the caller may not know it exists)."""
    await handlers.expire_due(database)
    async with database.sessions() as session:
        row = await _visible_patient(session, principal, cpts_id, patient_id)
        await _audit(database, principal, [patient_id], purpose)
        return await queries.patient_public(session, row, weights=settings.priority, now=_now())


async def _served(session: AsyncSession, principal: Principal, row: PatientRow, *, settings: Settings,
                  purpose: str) -> PatientPublic:
    """The record a command answers with, read and audited in the command's transaction."""
    await handlers.audit_many(session, principal, action="read", record_ids=[row.patient_id], purpose=purpose)
    return await queries.patient_public(session, row, weights=settings.priority, now=_now())


def _patient_reply(principal: Principal, settings: Settings, purpose: str
                   ) -> handlers.Reply[PatientRow, PatientPublic]:
    return lambda session, row: _served(session, principal, row, settings=settings, purpose=purpose)


# --- Patients -----------------------------------------------------------------------------------------------


def _identity(body: IdentityIn) -> handlers.Identity:
    return handlers.Identity(birth_name=body.birth_name, used_name=body.used_name,
                             first_names=body.first_names, birth_date=body.birth_date, sex=body.sex,
                             phone=body.phone, ins_nir=body.ins_nir)


def _facts(body: PriorityFactsIn) -> handlers.Facts:
    return handlers.Facts(ald=body.ald, c2s=body.c2s, pregnancy=body.pregnancy, disability=body.disability,
                          hospital_discharge_on=body.hospital_discharge_on, complex=body.complex,
                          complex_assessed_on=body.complex_assessed_on,
                          complex_assessed_by=body.complex_assessed_by)


@patients.post("/patients", status_code=201, response_model=EnrolmentResult,
               summary="Inscrire un patient sans médecin traitant sur la liste de la CPTS (guichet).",
               responses={200: {"description": "La personne était déjà inscrite : son dossier est renvoyé "
                                               "(complété), jamais un second."},
                          422: {"description": "NIR invalide, date de naissance future, commune inconnue, "
                                               "consentement absent..."}})
async def enrol(cpts_id: CptsId, body: EnrolmentIn, principal: Guichet,
                database: DatabaseDep, runtime: RuntimeDep, response: Response) -> EnrolmentResult:
    _scope(principal, cpts_id)
    settings = _settings(runtime)
    enrolment = handlers.Enrolment(
        identity=_identity(body.identity), commune_insee=body.commune_insee, facts=_facts(body.priority),
        max_distance_km=body.mobility.max_distance_km, needs_home_visit=body.mobility.needs_home_visit,
        consent=body.consent, consent_source="guichet")
    now = _now()
    async with database.transaction() as session:
        result = await handlers.enrol(session, cpts_id=cpts_id, enrolment=enrolment, source="guichet",
                                      by=principal, weights=settings.priority, now=now)
        duplicates = [DuplicateBrief(
            candidate_id=d.candidate_id, reason=d.reason,
            other_patient_id=d.patient_a if d.patient_b == result.patient.patient_id else d.patient_b)
            for d in result.near_duplicates]
        public = await queries.patient_public(session, result.patient, weights=settings.priority, now=now)
    if result.outcome == "existing":
        response.status_code = 200
    return EnrolmentResult(outcome=result.outcome, patient=public, near_duplicates=duplicates)


@patients.get("/patients", response_model=PatientPage,
              summary="La liste des patients de la CPTS, par ordre de priorité (avec l'explication de "
                      "chacune).")
async def list_patients(cpts_id: CptsId, principal: Guichet, database: DatabaseDep, runtime: RuntimeDep,
                        status: Annotated[list[PatientStatus] | None, Query(
                            max_length=10,
                            description="Statuts (défaut : en attente et proposés).")] = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 50,
                        offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> PatientPage:
    _scope(principal, cpts_id)
    await handlers.expire_due(database)
    async with database.sessions() as session:
        items, total = await queries.list_patients(
            session, cpts_id, statuses=list(status or lc.ACTIVE), weights=_settings(runtime).priority,
            now=_now(), limit=limit, offset=offset)
    await _audit(database, principal, [i.patient_id for i in items], "list of patients")
    return PatientPage(items=items, total=total)


@patients.get("/patients/{patient_id}", response_model=PatientPublic, summary="Un dossier patient (tracé).")
async def read_patient(cpts_id: CptsId, patient_id: str, principal: Guichet, database: DatabaseDep,
                       runtime: RuntimeDep, purpose: audit.PurposeParameter = "follow-up"
                       ) -> PatientPublic:
    return await _read_patient(database, principal, cpts_id, patient_id, settings=_settings(runtime),
                               purpose=purpose)


@patients.patch("/patients/{patient_id}", response_model=PatientPublic,
                summary="Corriger ou compléter un dossier (identité, contact, commune, mobilité, critères de "
                        "priorité).")
async def update_patient(cpts_id: CptsId, patient_id: str, body: PatientUpdateIn, principal: Guichet,
                         database: DatabaseDep, session: ReadSessionDep, runtime: RuntimeDep
                         ) -> PatientPublic:
    await _visible_patient(session, principal, cpts_id, patient_id)
    settings = _settings(runtime)
    fields = body.model_fields_set
    mobility = body.mobility
    changes = handlers.PatientChanges(
        identity=_identity(body.identity) if body.identity else None, commune_insee=body.commune_insee,
        max_distance_km=mobility.max_distance_km if mobility else None,
        clear_max_distance=bool(mobility and "max_distance_km" in mobility.model_fields_set
                                and mobility.max_distance_km is None),
        needs_home_visit=mobility.needs_home_visit
        if mobility and "needs_home_visit" in mobility.model_fields_set else None,
        facts=_facts(body.priority) if body.priority and "priority" in fields else None)
    await session.close()  # the check's connection goes back to the pool before the unit of work takes one
    await handlers.expire_due(database)  # overdue proposals, as before any read of the record
    return await handlers.update_patient(database, cpts_id=cpts_id, patient_id=patient_id, changes=changes,
                                         by=principal, weights=settings.priority,
                                         reply=_patient_reply(principal, settings, "update"))


@patients.post("/patients/{patient_id}/withdraw", response_model=PatientPublic,
               summary="Sortir un patient de la liste (à sa demande, déménagement, décès...).")
async def withdraw(cpts_id: CptsId, patient_id: str, body: WithdrawIn, principal: Guichet,
                   database: DatabaseDep, session: ReadSessionDep, runtime: RuntimeDep) -> PatientPublic:
    await _visible_patient(session, principal, cpts_id, patient_id)
    await session.close()
    return await handlers.end_wait(database, cpts_id=cpts_id, patient_id=patient_id, outcome=lc.WITHDRAWN,
                                   reason=body.reason, by=principal,
                                   reply=_patient_reply(principal, _settings(runtime), "withdrawal"))


@patients.post("/patients/{patient_id}/found-elsewhere", response_model=PatientPublic,
               summary="Le patient a trouvé un médecin traitant par ailleurs.")
async def found_elsewhere(cpts_id: CptsId, patient_id: str, principal: Guichet, database: DatabaseDep,
                          session: ReadSessionDep, runtime: RuntimeDep) -> PatientPublic:
    await _visible_patient(session, principal, cpts_id, patient_id)
    await session.close()
    return await handlers.end_wait(
        database, cpts_id=cpts_id, patient_id=patient_id, outcome=lc.FOUND_ELSEWHERE, reason="found_elsewhere",
        by=principal, reply=_patient_reply(principal, _settings(runtime), "found elsewhere"))


@patients.get("/patients/{patient_id}/priority", response_model=PriorityPublic,
              summary="La priorité d'un patient : score, composantes et explication (« ALD, 74 ans, attend "
                      "depuis 63 jours »).")
async def read_priority(cpts_id: CptsId, patient_id: str, principal: Guichet, database: DatabaseDep,
                        session: ReadSessionDep, runtime: RuntimeDep) -> PriorityPublic:
    row = await _visible_patient(session, principal, cpts_id, patient_id)
    await _audit(database, principal, [patient_id], "priority")
    today = paris_today(_now())
    return queries.priority_public(handlers.priority_of(row, today, _settings(runtime).priority))


@patients.get("/priority/compare", response_model=ComparisonPublic,
              summary="Pourquoi le patient A passe avant le patient B (ou l'inverse).")
async def compare_priority(cpts_id: CptsId, principal: Guichet, database: DatabaseDep,
                           session: ReadSessionDep, runtime: RuntimeDep,
                           a: Annotated[str, Query(max_length=36)],
                           b: Annotated[str, Query(max_length=36)]) -> ComparisonPublic:
    row_a = await _visible_patient(session, principal, cpts_id, a)
    row_b = await _visible_patient(session, principal, cpts_id, b)
    await _audit(database, principal, [a, b], "priority comparison")
    today, weights = paris_today(_now()), _settings(runtime).priority
    ranked_a = Ranked(a, row_a.enrolled_at, handlers.priority_of(row_a, today, weights))
    ranked_b = Ranked(b, row_b.enrolled_at, handlers.priority_of(row_b, today, weights))
    result = compare(ranked_a, ranked_b)
    return ComparisonPublic(
        first=a if result.first == "a" else b, score_difference=result.score_difference,
        differences=[ComponentPublic(key=key, label=label, points=points)
                     for key, label, points in result.differences],
        explanation=result.explanation,
        a=ComparedPatient(patient_id=a, priority=queries.priority_public(ranked_a.priority),
                          enrolled_at=row_a.enrolled_at),
        b=ComparedPatient(patient_id=b, priority=queries.priority_public(ranked_b.priority),
                          enrolled_at=row_b.enrolled_at))


# --- Duplicates ---------------------------------------------------------------------------------------------


@patients.get("/duplicates", response_model=DuplicatePage,
              summary="Les doublons possibles à examiner (mêmes date de naissance et sexe, noms proches...).")
async def list_duplicates(cpts_id: CptsId, principal: Guichet, database: DatabaseDep, session: ReadSessionDep,
                          status: Annotated[str | None, Query(
                              pattern=r"^(open|merged|kept_separate|obsolete)$")] = "open",
                          limit: Annotated[int, Query(ge=1, le=200)] = 50,
                          offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> DuplicatePage:
    _scope(principal, cpts_id)
    items, total = await queries.list_duplicates(session, cpts_id, status=status, limit=limit, offset=offset)
    await _audit(database, principal, sorted({s.patient_id for i in items for s in (i.a, i.b)}),
                 "duplicate review")
    return DuplicatePage(items=items, total=total)


@patients.post("/duplicates/{candidate_id}/resolve", response_model=ResolveResult,
               summary="Trancher un doublon possible : fusionner les deux dossiers, ou les garder séparés.",
               responses={409: {"description": "Déjà tranché, ou fusion impossible en l'état."}})
async def resolve_duplicate(cpts_id: CptsId, candidate_id: str, body: ResolveIn, principal: Guichet,
                            database: DatabaseDep, runtime: RuntimeDep) -> ResolveResult:
    if not principal.can_access_cpts(cpts_id):
        raise ProblemError(404, f"No duplicate candidate {candidate_id}.")
    settings = _settings(runtime)

    async def reply(session: AsyncSession, resolved: tuple[DuplicateRow, PatientRow | None]) -> ResolveResult:
        candidate, kept = resolved
        public = None if kept is None else await _served(session, principal, kept, settings=settings,
                                                         purpose="duplicate merged")
        return ResolveResult(candidate_id=candidate.candidate_id, status=candidate.status, kept=public)

    await handlers.expire_due(database)  # overdue proposals, as before any read of the records
    return await handlers.resolve_duplicate(
        database, cpts_id=cpts_id, candidate_id=candidate_id, decision=body.decision, keep=body.keep,
        by=principal, weights=settings.priority, reply=reply)


# --- Rounds -------------------------------------------------------------------------------------------------


@rounds.post("/rounds", status_code=201, response_model=RoundPublic,
             summary="Lancer un tour d'appariement : propositions aux médecins qui ont de la capacité.")
async def run_round(cpts_id: CptsId, principal: Coordinator, database: DatabaseDep, runtime: RuntimeDep
                    ) -> RoundPublic:
    _scope(principal, cpts_id)
    row = await handlers.run_round(database, cpts_id=cpts_id, settings=_settings(runtime), by=principal,
                                   trigger="manual")
    return queries.round_public(row)


@rounds.get("/rounds", response_model=RoundPage,
            summary="Les tours d'appariement, avec leurs chiffres et ceux du « premier arrivé, premier "
                    "servi ».")
async def list_rounds(cpts_id: CptsId, principal: Coordinator, session: ReadSessionDep,
                      limit: Annotated[int, Query(ge=1, le=200)] = 20,
                      offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> RoundPage:
    _scope(principal, cpts_id)
    rows = (await session.exec(select(RoundRow).where(RoundRow.cpts_id == cpts_id)
                               .order_by(col(RoundRow.started_at).desc()))).all()
    return RoundPage(items=[queries.round_public(r) for r in rows[offset:offset + limit]], total=len(rows))


@rounds.get("/rounds/{round_id}", response_model=RoundPublic, summary="Un tour d'appariement.")
async def read_round(cpts_id: CptsId, round_id: str, principal: Coordinator, session: ReadSessionDep
                     ) -> RoundPublic:
    _scope(principal, cpts_id)
    row = await session.get(RoundRow, round_id)
    if row is None or row.cpts_id != cpts_id:
        raise ProblemError(404, f"No round {round_id}.")
    return queries.round_public(row)


@rounds.get("/proposals", response_model=ProposalPage, summary="Les propositions faites aux médecins.")
async def list_proposals(cpts_id: CptsId, principal: Guichet, database: DatabaseDep,
                         status: Annotated[ProposalStatus | None, Query()] = None,
                         round_id: Annotated[str | None, Query(max_length=36)] = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100,
                         offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> ProposalPage:
    _scope(principal, cpts_id)
    await handlers.expire_due(database)
    async with database.sessions() as session:
        query = select(ProposalRow).where(ProposalRow.cpts_id == cpts_id)
        if status is not None:
            query = query.where(ProposalRow.status == status)
        if round_id is not None:
            query = query.where(ProposalRow.round_id == round_id)
        rows = list((await session.exec(query.order_by(col(ProposalRow.made_at).desc(),
                                                       ProposalRow.proposal_id))).all())
        items = await queries.proposals_public(session, rows[offset:offset + limit])
    await _audit(database, principal, sorted({i.patient_id for i in items}), "matching: proposals of the CPTS")
    return ProposalPage(items=items, total=len(rows))


@rounds.post("/proposals/{proposal_id}/patient-decline", response_model=ProposalPublic,
             summary="Le patient refuse le médecin proposé : il attend de nouveau, sans lui être reproposé.",
             responses={409: {"description": "La proposition n'est plus en attente."}})
async def patient_decline(cpts_id: CptsId, proposal_id: str, body: PatientDeclineIn, principal: Guichet,
                          database: DatabaseDep) -> ProposalPublic:
    await _cpts_proposal(database, principal, cpts_id, proposal_id)

    async def reply(session: AsyncSession, answer: handlers.Answer
                    ) -> tuple[handlers.Answer, ProposalPublic | None]:
        if answer.expired:
            return answer, None
        return answer, (await queries.proposals_public(session, [answer.proposal]))[0]

    answer, public = await handlers.answer_proposal(
        database, proposal_id=proposal_id, accept=False, by=principal, declined_by="patient", reason=body.reason,
        reply=reply)
    _raise_if_expired(answer)
    return public


async def _cpts_proposal(database: Database, principal: Principal, cpts_id: str, proposal_id: str
                         ) -> ProposalRow:
    async with database.sessions() as session:
        row = await session.get(ProposalRow, proposal_id)
    if row is None or row.cpts_id != cpts_id or not principal.can_access_cpts(cpts_id):
        raise ProblemError(404, f"No proposal {proposal_id}.")
    return row


def _raise_if_expired(answer: handlers.Answer) -> None:
    if answer.expired:
        raise InvalidTransition(f"the proposal expired at {answer.proposal.deadline.isoformat()}: the "
                                "patient waits for the next round", field="proposal_id")


# --- Proposals, as the GP sees them -------------------------------------------------------------------------


def _answers_for(principal: Principal, row: ProposalRow) -> bool:
    """The GP it is addressed to, or a secretary / coordinator of its CPTS (recording the GP's answer)."""
    return principal.is_professional(row.idnps) or (
        principal.has_role(Role.SECRETARY, Role.COORDINATOR) and principal.can_access_cpts(row.cpts_id))


async def _gp_proposal(database: Database, principal: Principal, proposal_id: str) -> ProposalRow:
    async with database.sessions() as session:
        row = await session.get(ProposalRow, proposal_id)
    if row is None or not _answers_for(principal, row):
        raise ProblemError(404, f"No proposal {proposal_id}.")
    return row


async def _gp_view(database: Database, principal: Principal, row: ProposalRow) -> GpProposal:
    async with database.sessions() as session:
        patient = await session.get(PatientRow, row.patient_id)
    view = queries.gp_proposal(row, patient, _now())
    if view.patient is not None:
        await _audit(database, principal, [row.patient_id], f"proposal {row.proposal_id}")
    return view


GpAnswer = tuple[handlers.Answer, GpProposal | None]


def _gp_reply(principal: Principal) -> handlers.Reply[handlers.Answer, GpAnswer]:
    """The GP's view of the answered proposal, built (and the patient's contact it shows audited) in the
    answer's transaction; none when the proposal had expired (the route answers 409)."""
    async def reply(session: AsyncSession, answer: handlers.Answer) -> GpAnswer:
        if answer.expired:
            return answer, None
        view = queries.gp_proposal(answer.proposal, answer.patient, _now())
        if view.patient is not None:
            await handlers.audit_many(session, principal, action="read", record_ids=[answer.patient.patient_id],
                                      purpose=f"proposal {answer.proposal.proposal_id}")
        return answer, view
    return reply


@proposals.get("", response_model=GpProposalPage,
               summary="Mes propositions de nouveaux patients (médecin), avec de quoi appeler le patient.")
async def my_proposals(principal: Gp, database: DatabaseDep,
                       status: Annotated[ProposalStatus | None, Query()] = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50,
                       offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> GpProposalPage:
    ensure(principal.idnps is not None, "Your token carries no national professional id (idnps).")
    await handlers.expire_due(database)
    async with database.sessions() as session:
        query = select(ProposalRow).where(ProposalRow.idnps == principal.idnps)
        if status is not None:
            query = query.where(ProposalRow.status == status)
        rows = list((await session.exec(query.order_by(col(ProposalRow.made_at).desc(),
                                                       ProposalRow.proposal_id))).all())
        page = rows[offset:offset + limit]
        patients_by_id = {p.patient_id: p for p in (await session.exec(select(PatientRow).where(
            col(PatientRow.patient_id).in_([r.patient_id for r in page])))).all()} if page else {}
    now = _now()
    items = [queries.gp_proposal(r, patients_by_id.get(r.patient_id), now) for r in page]
    await _audit(database, principal, [i.patient_id for i, v in zip(page, items) if v.patient is not None],
                 "proposals of the GP")
    return GpProposalPage(items=items, total=len(rows))


@proposals.get("/{proposal_id}", response_model=GpProposal, summary="Une proposition (médecin destinataire).")
async def read_proposal(proposal_id: str, principal: GpOrGuichet, database: DatabaseDep) -> GpProposal:
    await handlers.expire_due(database)
    row = await _gp_proposal(database, principal, proposal_id)
    return await _gp_view(database, principal, row)


@proposals.post("/{proposal_id}/accept", response_model=GpProposal,
                summary="Accepter le patient proposé : le médecin devient son médecin traitant.",
                responses={409: {"description": "Proposition expirée ou déjà traitée."}})
async def accept(proposal_id: str, principal: GpOrGuichet, database: DatabaseDep) -> GpProposal:
    await _gp_proposal(database, principal, proposal_id)
    answer, view = await handlers.answer_proposal(database, proposal_id=proposal_id, accept=True,
                                                  by=principal, reply=_gp_reply(principal))
    _raise_if_expired(answer)
    return view


@proposals.post("/{proposal_id}/decline", response_model=GpProposal,
                summary="Refuser le patient proposé : il attend de nouveau et ne vous sera plus proposé.",
                responses={409: {"description": "Proposition expirée ou déjà traitée."}})
async def decline(proposal_id: str, body: GpDeclineIn, principal: GpOrGuichet, database: DatabaseDep
                  ) -> GpProposal:
    await _gp_proposal(database, principal, proposal_id)
    answer, view = await handlers.answer_proposal(database, proposal_id=proposal_id, accept=False,
                                                  by=principal, declined_by="gp", reason=body.reason,
                                                  reply=_gp_reply(principal))
    _raise_if_expired(answer)
    return view


# --- GPs (read model of the registry) -----------------------------------------------------------------------


class GpPublic(BaseModel):
    idnps: str
    family_name: str | None
    given_name: str | None
    commune_insee: str | None
    cpts_ids: list[str]
    active: bool
    accepting: bool
    new_patients_per_month: int
    publics: list[str]
    accepting_until: date | None
    site_commune_insee: str | None
    updated_at: datetime


@gps.get("/gps/{idnps}", response_model=GpPublic,
         summary="Un médecin généraliste pouvant devenir médecin traitant, dans une CPTS du coordinateur.")
async def read_gp(idnps: str, principal: Coordinator, session: ReadSessionDep) -> GpPublic:
    row = await get_gp(session, idnps)
    if row is None:
        raise ProblemError(404, f"No GP {idnps}.")
    ensure(any(principal.can_access_cpts(c) for c in row.cpts_ids), "This GP is in no CPTS of yours.")
    return GpPublic.model_validate(row, from_attributes=True)


router = APIRouter(dependencies=[Depends(audit.capture_declared_purpose)])
for sub in (scheduler.router, patients, rounds, proposals, gps, audit.audit_router()):
    router.include_router(sub)
