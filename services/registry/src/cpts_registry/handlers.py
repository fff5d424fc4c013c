"""Commands of the registry: each one is a unit of work that changes the tables and writes its events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import new_event
from cpts_events.registry import (
    CptsRegistered,
    CptsStageChanged,
    CptsTerritoryChanged,
    MembershipChanged,
    MtCapacityChanged,
    ProfessionalDeactivated,
    ProfessionalRegistered,
    ProfessionalUpdated,
    SasParticipationChanged,
)
from cpts_platform.db import Database
from cpts_platform.outbox import add_events
from cpts_registry.domain.cpts import (
    CptsAlreadyRegistered,
    CptsStage,
    Territory,
    TerritoryConflict,
    UnknownCpts,
)
from cpts_registry.domain.participation import MembershipStatus, MtPublic, SasMode
from cpts_registry.domain.professional import NewProfessional, ProfessionalAlreadyRegistered, UnknownProfessional
from cpts_registry.repository import (
    CptsCommuneRow,
    CptsRow,
    MembershipRow,
    MtCapacityRow,
    ProfessionalRow,
    SasParticipationRow,
    cpts_ids_of,
)

SOURCE = "/cpts/registry"

T = TypeVar("T")
# Reads a command's response in its transaction: a read in a session of its own, after the commit, could fail
# (the database going away in between) and answer 503 for a change that is stored (a client retrying a
# registration would then see it refused as already registered). Its queries flush the command's pending rows.
Answer = Callable[[AsyncSession], Awaitable[T]]


def _now() -> datetime:
    return datetime.now(UTC)


def professional_snapshot(row: ProfessionalRow, cpts_ids: list[str]) -> dict:
    return dict(
        idnps=row.idnps, civility=row.civility, family_name=row.family_name, given_name=row.given_name,
        profession_code=row.profession_code, profession_label=row.profession_label,
        specialty_code=row.specialty_code, specialty_label=row.specialty_label, commune_insee=row.commune_insee,
        cpts_ids=cpts_ids, active=row.active,
    )


async def _existing_cpts(session: AsyncSession, cpts_ids: tuple[str, ...] | list[str]) -> None:
    if not cpts_ids:
        return
    found = set((await session.exec(select(CptsRow.cpts_id).where(CptsRow.cpts_id.in_(cpts_ids)))).all())
    for cpts_id in cpts_ids:
        if cpts_id not in found:
            raise UnknownCpts(cpts_id)


async def _professional(session: AsyncSession, idnps: str, *, for_update: bool = False) -> ProfessionalRow:
    row = await session.get(ProfessionalRow, idnps, with_for_update=for_update or None)
    if row is None:
        raise UnknownProfessional(idnps)
    return row


async def register_professional(*, database: Database, professional: NewProfessional, answer: Answer[T]) -> T:
    """Register a professional (and their CPTS memberships) and announce it on the `registry` topic; returns
    what `answer` reads in the same transaction."""
    now = _now()
    row = ProfessionalRow(
        idnps=professional.idnps, civility=professional.civility, family_name=professional.family_name,
        given_name=professional.given_name, profession_code=professional.profession_code,
        profession_label=professional.profession_label, specialty_code=professional.specialty_code,
        specialty_label=professional.specialty_label, commune_insee=professional.commune_insee,
        registered_at=now, updated_at=now,
    )
    cpts_ids = sorted(set(professional.cpts_ids))
    try:
        async with database.transaction() as session:
            if await session.get(ProfessionalRow, row.idnps) is not None:
                raise ProfessionalAlreadyRegistered(row.idnps)
            await _existing_cpts(session, cpts_ids)
            session.add(row)
            await session.flush()
            for cpts_id in cpts_ids:
                session.add(MembershipRow(cpts_id=cpts_id, idnps=row.idnps, status=MembershipStatus.ADHERENT,
                                          since=now))
            await add_events(session, database, [new_event(
                ProfessionalRegistered(**professional_snapshot(row, cpts_ids)), source=SOURCE,
                subject=f"professional/{row.idnps}")])
            return await answer(session)
    except IntegrityError as exc:
        # Two concurrent registrations of one professional: the primary key lets only one through.
        raise ProfessionalAlreadyRegistered(row.idnps) from exc


PROFESSIONAL_EDITABLE = ("civility", "family_name", "given_name", "profession_code", "profession_label",
                         "specialty_code", "specialty_label", "commune_insee")


async def update_professional(*, database: Database, idnps: str, changes: dict, answer: Answer[T]) -> T:
    async with database.transaction() as session:
        row = await _professional(session, idnps, for_update=True)
        changed = False
        for name, value in changes.items():
            if name in PROFESSIONAL_EDITABLE and getattr(row, name) != value:
                setattr(row, name, value)
                changed = True
        if changed:
            row.updated_at = _now()
            session.add(row)
            await add_events(session, database, [new_event(
                ProfessionalUpdated(**professional_snapshot(row, await cpts_ids_of(session, idnps))),
                source=SOURCE, subject=f"professional/{idnps}")])
        return await answer(session)


async def deactivate_professional(*, database: Database, idnps: str, answer: Answer[T]) -> T:
    async with database.transaction() as session:
        row = await _professional(session, idnps, for_update=True)
        if row.active:
            row.active = False
            row.updated_at = _now()
            session.add(row)
            await add_events(session, database, [new_event(
                ProfessionalDeactivated(idnps=idnps, reason="deactivated-by-admin"), source=SOURCE,
                subject=f"professional/{idnps}")])
        return await answer(session)


@dataclass(frozen=True)
class SasParticipation:
    mode: SasMode
    hours_per_week: float
    accepts_en_sus: bool
    en_sus_weekly_cap: int | None
    start_date: date
    end_date: date | None


async def set_sas_participation(*, database: Database, idnps: str, participation: SasParticipation | None
                                ) -> SasParticipationRow | None:
    """Declare, change or (with None) end a professional's SAS participation."""
    async with database.transaction() as session:
        await _professional(session, idnps)
        row = await session.get(SasParticipationRow, idnps)
        if participation is None:
            if row is None:
                return None
            await session.delete(row)
            payload = SasParticipationChanged(idnps=idnps, participating=False)
            row = None
        else:
            row = row or SasParticipationRow(idnps=idnps, mode=participation.mode, hours_per_week=0,
                                             start_date=participation.start_date, updated_at=_now())
            row.mode = participation.mode
            row.hours_per_week = participation.hours_per_week
            row.accepts_en_sus = participation.accepts_en_sus
            row.en_sus_weekly_cap = participation.en_sus_weekly_cap if participation.accepts_en_sus else None
            row.start_date = participation.start_date
            row.end_date = participation.end_date
            row.updated_at = _now()
            session.add(row)
            payload = SasParticipationChanged(
                idnps=idnps, participating=True, mode=row.mode, hours_per_week=row.hours_per_week,
                accepts_en_sus=row.accepts_en_sus, en_sus_weekly_cap=row.en_sus_weekly_cap,
                start_date=row.start_date, end_date=row.end_date)
        await add_events(session, database, [new_event(payload, source=SOURCE, subject=f"professional/{idnps}")])
    return row


@dataclass(frozen=True)
class MtCapacity:
    accepting: bool
    new_patients_per_month: int
    publics: tuple[MtPublic, ...]
    until: date | None


async def set_mt_capacity(*, database: Database, idnps: str, capacity: MtCapacity) -> MtCapacityRow:
    async with database.transaction() as session:
        await _professional(session, idnps)
        row = await session.get(MtCapacityRow, idnps) or MtCapacityRow(idnps=idnps, accepting=False,
                                                                         updated_at=_now())
        row.accepting = capacity.accepting
        row.new_patients_per_month = capacity.new_patients_per_month if capacity.accepting else 0
        row.publics = sorted({p.value for p in capacity.publics}) if capacity.accepting else []
        row.until = capacity.until
        row.updated_at = _now()
        session.add(row)
        await add_events(session, database, [new_event(MtCapacityChanged(
            idnps=idnps, accepting=row.accepting, new_patients_per_month=row.new_patients_per_month,
            publics=row.publics, until=row.until), source=SOURCE, subject=f"professional/{idnps}")])
    return row


async def _claim_communes(session: AsyncSession, cpts_id: str, territory: Territory) -> None:
    """Give the communes to `cpts_id`; a commune already in another CPTS is refused by name."""
    taken = (await session.exec(select(CptsCommuneRow).where(
        CptsCommuneRow.commune_insee.in_(territory.communes), CptsCommuneRow.cpts_id != cpts_id))).first()
    if taken is not None:
        raise TerritoryConflict(taken.commune_insee, taken.cpts_id)
    await session.execute(sa.delete(CptsCommuneRow).where(CptsCommuneRow.cpts_id == cpts_id))
    session.add_all([CptsCommuneRow(commune_insee=c, cpts_id=cpts_id) for c in territory.communes])
    try:
        await session.flush()
    except IntegrityError as exc:
        # Another CPTS claimed one of them concurrently; the primary key on the commune decides.
        raise TerritoryConflict(territory.communes[0], "(concurrent change)") from exc


def _territory_fields(territory: Territory) -> dict:
    return dict(communes=list(territory.communes), population=territory.population,
                size_band=territory.size_band, departements=list(territory.departements))


async def register_cpts(*, database: Database, cpts_id: str, name: str, communes: list[str], stage: CptsStage,
                        aci_signed_on: date | None, missions: list[str], answer: Answer[T]) -> T:
    """Register a CPTS and its communes and announce it; returns what `answer` reads in the same transaction."""
    territory = Territory.of(communes)
    now = _now()
    try:
        async with database.transaction() as session:
            if await session.get(CptsRow, cpts_id) is not None:
                raise CptsAlreadyRegistered(cpts_id)
            row = CptsRow(cpts_id=cpts_id, name=name, stage=stage, aci_signed_on=aci_signed_on,
                          missions=sorted(set(missions)), population=territory.population,
                          size_band=territory.size_band, departements=list(territory.departements),
                          registered_at=now, updated_at=now)
            session.add(row)
            await session.flush()
            await _claim_communes(session, cpts_id, territory)
            await add_events(session, database, [new_event(CptsRegistered(
                cpts_id=cpts_id, name=name, stage=stage, aci_signed_on=aci_signed_on, missions=row.missions,
                **_territory_fields(territory)), source=SOURCE, subject=f"cpts/{cpts_id}")])
            return await answer(session)
    except IntegrityError as exc:
        raise CptsAlreadyRegistered(cpts_id) from exc


async def _cpts(session: AsyncSession, cpts_id: str) -> CptsRow:
    row = await session.get(CptsRow, cpts_id, with_for_update=True)
    if row is None:
        raise UnknownCpts(cpts_id)
    return row


async def change_territory(*, database: Database, cpts_id: str, communes: list[str], answer: Answer[T]) -> T:
    territory = Territory.of(communes)
    async with database.transaction() as session:
        row = await _cpts(session, cpts_id)
        await _claim_communes(session, cpts_id, territory)
        row.population, row.size_band = territory.population, territory.size_band
        row.departements = list(territory.departements)
        row.updated_at = _now()
        session.add(row)
        await add_events(session, database, [new_event(CptsTerritoryChanged(
            cpts_id=cpts_id, **_territory_fields(territory)), source=SOURCE, subject=f"cpts/{cpts_id}")])
        return await answer(session)


async def change_stage(*, database: Database, cpts_id: str, stage: CptsStage, aci_signed_on: date | None,
                       missions: list[str], answer: Answer[T]) -> T:
    async with database.transaction() as session:
        row = await _cpts(session, cpts_id)
        row.stage, row.aci_signed_on, row.missions = stage, aci_signed_on, sorted(set(missions))
        row.updated_at = _now()
        session.add(row)
        await add_events(session, database, [new_event(CptsStageChanged(
            cpts_id=cpts_id, stage=stage, aci_signed_on=aci_signed_on, missions=row.missions),
            source=SOURCE, subject=f"cpts/{cpts_id}")])
        return await answer(session)


async def set_membership(*, database: Database, cpts_id: str, idnps: str,
                         status: MembershipStatus | None) -> MembershipRow | None:
    """Make a professional an adherent or active member of a CPTS, or (None) remove them."""
    async with database.transaction() as session:
        await _cpts(session, cpts_id)
        await _professional(session, idnps)
        row = await session.get(MembershipRow, (cpts_id, idnps))
        if status is None:
            if row is None:
                return None
            await session.delete(row)
            event_status = "left"
            row = None
        else:
            if row is not None and row.status == status:
                return row
            row = row or MembershipRow(cpts_id=cpts_id, idnps=idnps, status=status, since=_now())
            row.status = status
            session.add(row)
            event_status = status.value
        await add_events(session, database, [new_event(
            MembershipChanged(idnps=idnps, cpts_id=cpts_id, status=event_status), source=SOURCE,
            subject=f"professional/{idnps}")])
    return row
