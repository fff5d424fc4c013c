"""Read side of patient-matching: the records, lists and figures the API returns (no writes here)."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_geo import communes
from cpts_patient_matching.api.schemas import (
    ComponentPublic,
    DuplicatePublic,
    DuplicateSide,
    GpProposal,
    GroupFigures,
    IdentityPublic,
    MobilityIn,
    PatientContact,
    PatientPublic,
    PatientSummary,
    PendingProposal,
    PriorityFactsIn,
    PriorityPublic,
    ProposalPublic,
    RoundPublic,
)
from cpts_patient_matching.domain import lifecycle as lc
from cpts_patient_matching.domain.assignment import UNITS_PER_KM
from cpts_patient_matching.domain.intake import age_on, is_child, paris_today
from cpts_patient_matching.domain.priority import Priority, PriorityWeights, Ranked
from cpts_patient_matching.handlers import priority_of
from cpts_patient_matching.repository import (
    DuplicateRow,
    ExclusionRow,
    GpView,
    PatientRow,
    ProposalRow,
    RoundRow,
)


def priority_public(p: Priority) -> PriorityPublic:
    return PriorityPublic(score=p.score, group=p.group, facts=list(p.facts), age=p.age,
                          waiting_days=p.waiting_days, explanation=p.explanation,
                          components=[ComponentPublic(key=c.key, label=c.label, points=c.points)
                                      for c in p.components])


def _commune_name(insee: str) -> str | None:
    commune = communes().get(insee)
    return commune.name if commune else None


def identity_of(row: PatientRow) -> IdentityPublic:
    return IdentityPublic(birth_name=row.birth_name, used_name=row.used_name, first_names=row.first_names,
                          birth_date=row.birth_date, sex=row.sex, phone=row.phone, ins_nir=row.ins_nir)


async def patient_public(session: AsyncSession, row: PatientRow, *, weights: PriorityWeights, now: datetime
                         ) -> PatientPublic:
    today = paris_today(now)
    pending = (await session.exec(select(ProposalRow).where(
        ProposalRow.patient_id == row.patient_id, ProposalRow.status == lc.PENDING))).first()
    excluded = (await session.exec(select(sa.func.count()).select_from(ExclusionRow).where(
        ExclusionRow.patient_id == row.patient_id))).one()
    return PatientPublic(
        patient_id=row.patient_id, cpts_id=row.cpts_id, status=row.status,
        status_label=lc.STATUS_LABELS.get(row.status, row.status), source=row.source,
        identity=identity_of(row), commune_insee=row.commune_insee,
        commune_name=_commune_name(row.commune_insee),
        mobility=MobilityIn.model_construct(max_distance_km=row.max_distance_km,
                                            needs_home_visit=row.needs_home_visit),
        is_child=is_child(row.birth_date, today),
        priority_facts=PriorityFactsIn.model_construct(
            ald=row.ald, c2s=row.c2s, pregnancy=row.pregnancy, disability=row.disability,
            hospital_discharge_on=row.hospital_discharge_on, complex=row.complex,
            complex_assessed_on=row.complex_assessed_on, complex_assessed_by=row.complex_assessed_by),
        priority=priority_public(priority_of(row, today, weights)), consent_at=row.consent_at,
        consent_source=row.consent_source, enrolled_at=row.enrolled_at,
        status_changed_at=row.status_changed_at,
        mt_idnps=row.mt_idnps, ended_reason=row.ended_reason, merged_into=row.merged_into,
        pending_proposal=PendingProposal(proposal_id=pending.proposal_id, idnps=pending.idnps,
                                         deadline=pending.deadline) if pending else None,
        excluded_gps=excluded)


def ranked(rows: list[PatientRow], *, weights: PriorityWeights, today: date
           ) -> list[tuple[PatientRow, Ranked]]:
    """The rows in priority order (higher score, earlier enrolment, record id)."""
    items = [(row, Ranked(row.patient_id, row.enrolled_at, priority_of(row, today, weights))) for row in rows]
    items.sort(key=lambda item: item[1].order_key)
    return items


async def list_patients(session: AsyncSession, cpts_id: str, *, statuses: list[str], weights: PriorityWeights,
                        now: datetime, limit: int, offset: int) -> tuple[list[PatientSummary], int]:
    """A page of the CPTS's list in priority order; `rank` is the position among the waiting patients."""
    today = paris_today(now)
    rows = list((await session.exec(select(PatientRow).where(
        PatientRow.cpts_id == cpts_id, col(PatientRow.status).in_(statuses)))).all())
    ordered = ranked(rows, weights=weights, today=today)
    rank = 0
    items = []
    for row, item in ordered:
        position = None
        if row.status == lc.WAITING:
            rank += 1
            position = rank
        items.append(PatientSummary(
            patient_id=row.patient_id, status=row.status, birth_name=row.birth_name, used_name=row.used_name,
            first_names=row.first_names, birth_date=row.birth_date, commune_insee=row.commune_insee,
            priority=priority_public(item.priority), rank=position, enrolled_at=row.enrolled_at))
    return items[offset:offset + limit], len(items)


def _side(row: PatientRow) -> DuplicateSide:
    return DuplicateSide(patient_id=row.patient_id, status=row.status, birth_name=row.birth_name,
                         used_name=row.used_name, first_names=row.first_names, birth_date=row.birth_date,
                         sex=row.sex, commune_insee=row.commune_insee, has_ins=row.ins_nir is not None,
                         enrolled_at=row.enrolled_at)


async def list_duplicates(session: AsyncSession, cpts_id: str, *, status: str | None, limit: int, offset: int
                          ) -> tuple[list[DuplicatePublic], int]:
    query = select(DuplicateRow).where(DuplicateRow.cpts_id == cpts_id)
    if status is not None:
        query = query.where(DuplicateRow.status == status)
    total = (await session.exec(select(sa.func.count()).select_from(query.subquery()))).one()
    rows = (await session.exec(query.order_by(DuplicateRow.detected_at, DuplicateRow.candidate_id)
                               .offset(offset).limit(limit))).all()
    ids = {i for row in rows for i in (row.patient_a, row.patient_b)}
    patients = {p.patient_id: p for p in (await session.exec(select(PatientRow).where(
        col(PatientRow.patient_id).in_(ids)))).all()} if ids else {}
    items = [DuplicatePublic(candidate_id=row.candidate_id, reason=row.reason, status=row.status,
                             detected_at=row.detected_at, resolved_at=row.resolved_at,
                             a=_side(patients[row.patient_a]), b=_side(patients[row.patient_b]))
             for row in rows]
    return items, total


def round_public(row: RoundRow) -> RoundPublic:
    coverage = row.weighted_served / row.weight_waiting if row.weight_waiting else 0.0
    fcfs_coverage = row.fcfs_weighted_served / row.weight_waiting if row.weight_waiting else 0.0
    groups = {name: GroupFigures(**figures) for name, figures in row.groups.items()}
    labels = {"ald": "ALD", "70+": "70 ans et plus", "c2s": "C2S"}
    shares = []
    for name, label in labels.items():
        g = groups.get(name)
        if g and g.waiting:
            shares.append(f"{label} {g.exact}/{g.waiting} (premier arrivé : {g.fcfs})")
    summary = (f"{row.proposals} proposition(s) pour {row.patients} patient(s) en attente et {row.capacity} "
               f"place(s) chez {row.gps} médecin(s) ; couverture pondérée {coverage:.0%} contre "
               f"{fcfs_coverage:.0%} au premier arrivé, premier servi"
               + (" ; " + ", ".join(shares) if shares else "") + ".")
    return RoundPublic(
        round_id=row.round_id, cpts_id=row.cpts_id, trigger=row.trigger, started_by=row.started_by,
        started_at=row.started_at, duration_ms=row.duration_ms, patients=row.patients, gps=row.gps,
        capacity=row.capacity, proposals=row.proposals, weight_waiting=row.weight_waiting,
        weighted_served=row.weighted_served, weighted_coverage=round(coverage, 4),
        total_distance_km=row.total_distance_units / UNITS_PER_KM, spread_cost=row.spread_cost,
        fcfs_served=row.fcfs_served, fcfs_weighted_served=row.fcfs_weighted_served,
        fcfs_weighted_coverage=round(fcfs_coverage, 4),
        fcfs_total_distance_km=row.fcfs_total_distance_units / UNITS_PER_KM,
        fcfs_spread_cost=row.fcfs_spread_cost,
        groups=groups, summary=summary)


async def proposals_public(session: AsyncSession, rows: list[ProposalRow]) -> list[ProposalPublic]:
    idnps = {row.idnps for row in rows}
    found = (await session.exec(select(GpView).where(col(GpView.idnps).in_(idnps)))).all() if idnps else []
    views = {v.idnps: v for v in found}

    def name(i: str) -> str | None:
        view = views.get(i)
        return f"Dr {view.given_name} {view.family_name}" if view and view.family_name else None

    return [ProposalPublic(proposal_id=r.proposal_id, patient_id=r.patient_id, idnps=r.idnps,
                           gp_name=name(r.idnps), round_id=r.round_id, status=r.status,
                           distance_km=r.distance_km, made_at=r.made_at, deadline=r.deadline,
                           decided_at=r.decided_at, declined_by=r.declined_by,
                           decline_reason=r.decline_reason)
            for r in rows]


def gp_proposal(row: ProposalRow, patient: PatientRow | None, now: datetime) -> GpProposal:
    """The GP's view: the patient's contact only while the proposal is pending or accepted."""
    contact = None
    if patient is not None and row.status in (lc.PENDING, lc.ACCEPTED):
        today = paris_today(now)
        first = patient.first_names.replace(",", " ").split()
        contact = PatientContact(
            family_name=patient.used_name or patient.birth_name, first_name=first[0] if first else "",
            birth_year=patient.birth_date.year, age=age_on(patient.birth_date, today), phone=patient.phone,
            commune_insee=patient.commune_insee, commune_name=_commune_name(patient.commune_insee),
            needs_home_visit=patient.needs_home_visit, is_child=is_child(patient.birth_date, today))
    return GpProposal(proposal_id=row.proposal_id, status=row.status, made_at=row.made_at,
                      deadline=row.deadline, decided_at=row.decided_at, distance_km=row.distance_km,
                      patient=contact)
