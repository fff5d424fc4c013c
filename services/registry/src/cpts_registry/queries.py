"""Read side of the registry API: the queries behind the professional and CPTS views (no N+1)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_geo import communes, haversine_km
from cpts_registry.api.schemas import (
    CptsPublic,
    MembershipPublic,
    MtCapacityPublic,
    ProfessionalDetail,
    ProfessionalPublic,
    SasParticipationPublic,
    SitePublic,
)
from cpts_registry.repository import (
    ActivityRow,
    CptsCommuneRow,
    CptsRow,
    MembershipRow,
    MtCapacityRow,
    PracticeSiteRow,
    ProfessionalRow,
    SasParticipationRow,
)


def _distance(row: ProfessionalRow, center: tuple[float, float] | None) -> float | None:
    if center is None or row.commune_insee is None:
        return None
    commune = communes().get(row.commune_insee)
    if commune is None or commune.lat is None:
        return None
    return round(haversine_km(center[0], center[1], commune.lat, commune.lon), 1)


async def _memberships(session: AsyncSession, ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        rows = await session.exec(select(MembershipRow.idnps, MembershipRow.cpts_id)
                                  .where(MembershipRow.idnps.in_(ids)).order_by(MembershipRow.cpts_id))
        for idnps, cpts_id in rows:
            out[idnps].append(cpts_id)
    return out


async def search_professionals(session: AsyncSession, *, name: str | None = None, profession: str | None = None,
                               specialty: str | None = None, commune: str | None = None,
                               center: tuple[float, float] | None = None, radius_km: float | None = None,
                               cpts_id: str | None = None, active: bool | None = True, limit: int = 50,
                               offset: int = 0) -> tuple[list[ProfessionalPublic], int]:
    conditions = []
    if name:
        conditions.append(func.lower(ProfessionalRow.family_name).startswith(name.strip().lower()))
    if profession:
        conditions.append(ProfessionalRow.profession_code == profession)
    if specialty:
        conditions.append(ProfessionalRow.specialty_code == specialty)
    if active is not None:
        conditions.append(ProfessionalRow.active == active)
    if cpts_id:
        conditions.append(ProfessionalRow.idnps.in_(select(MembershipRow.idnps).where(MembershipRow.cpts_id == cpts_id)))
    in_communes: list[str] | None = None
    if center is not None and radius_km is not None:
        in_communes = [c.insee for c in communes().within(center[0], center[1], radius_km)]
    elif commune:
        in_communes = [commune]
    if in_communes is not None:
        at_site = select(ActivityRow.idnps).join(PracticeSiteRow, PracticeSiteRow.site_id == ActivityRow.site_id
                                                 ).where(PracticeSiteRow.commune_insee.in_(in_communes))
        conditions.append(sa.or_(ProfessionalRow.commune_insee.in_(in_communes), ProfessionalRow.idnps.in_(at_site)))
    total = (await session.exec(select(func.count()).select_from(ProfessionalRow).where(*conditions))).one()
    query = select(ProfessionalRow).where(*conditions)
    if center is not None:
        # Nearest first: the page is cut after sorting every match by distance.
        rows = list((await session.exec(query)).all())
        distances = {r.idnps: _distance(r, center) for r in rows}
        rows.sort(key=lambda r: (distances[r.idnps] if distances[r.idnps] is not None else 1e9, r.idnps))
        rows = rows[offset:offset + limit]
    else:
        rows = list((await session.exec(query.order_by(ProfessionalRow.family_name, ProfessionalRow.idnps)
                                        .limit(limit).offset(offset))).all())
    memberships = await _memberships(session, [r.idnps for r in rows])
    items = [ProfessionalPublic.model_validate(r, from_attributes=True).model_copy(
        update={"cpts_ids": memberships[r.idnps], "distance_km": _distance(r, center)}) for r in rows]
    return items, total


async def professional_detail(session: AsyncSession, idnps: str) -> ProfessionalDetail | None:
    row = await session.get(ProfessionalRow, idnps)
    if row is None:
        return None
    sites = (await session.exec(
        select(PracticeSiteRow, ActivityRow.practice_mode)
        .join(ActivityRow, ActivityRow.site_id == PracticeSiteRow.site_id)
        .where(ActivityRow.idnps == idnps).order_by(PracticeSiteRow.site_id))).all()
    memberships = (await session.exec(select(MembershipRow).where(MembershipRow.idnps == idnps)
                                      .order_by(MembershipRow.cpts_id))).all()
    sas = await session.get(SasParticipationRow, idnps)
    capacity = await session.get(MtCapacityRow, idnps)
    return ProfessionalDetail.model_validate(row, from_attributes=True).model_copy(update={
        "cpts_ids": [m.cpts_id for m in memberships],
        "sites": [SitePublic(**site.model_dump(), practice_mode=mode) for site, mode in sites],
        "memberships": [MembershipPublic.model_validate(m, from_attributes=True) for m in memberships],
        "sas_participation": SasParticipationPublic.model_validate(sas, from_attributes=True) if sas else None,
        "mt_capacity": MtCapacityPublic.model_validate(capacity, from_attributes=True) if capacity else None,
    })


async def _cpts_public(session: AsyncSession, rows: list[CptsRow]) -> list[CptsPublic]:
    ids = [r.cpts_id for r in rows]
    territory: dict[str, list[str]] = {i: [] for i in ids}
    members: dict[str, int] = dict.fromkeys(ids, 0)
    if ids:
        for commune, cpts_id in await session.exec(
                select(CptsCommuneRow.commune_insee, CptsCommuneRow.cpts_id)
                .where(CptsCommuneRow.cpts_id.in_(ids)).order_by(CptsCommuneRow.commune_insee)):
            territory[cpts_id].append(commune)
        for cpts_id, count in await session.exec(
                select(MembershipRow.cpts_id, func.count()).where(MembershipRow.cpts_id.in_(ids))
                .group_by(MembershipRow.cpts_id)):
            members[cpts_id] = count
    return [CptsPublic.model_validate(r, from_attributes=True).model_copy(
        update={"communes": territory[r.cpts_id], "members": members[r.cpts_id]}) for r in rows]


async def cpts_detail(session: AsyncSession, cpts_id: str) -> CptsPublic | None:
    row = await session.get(CptsRow, cpts_id)
    return (await _cpts_public(session, [row]))[0] if row else None


async def list_cpts(session: AsyncSession, *, departement: str | None = None) -> list[CptsPublic]:
    rows = list((await session.exec(select(CptsRow).order_by(CptsRow.name))).all())
    if departement:
        rows = [r for r in rows if departement in r.departements]
    return await _cpts_public(session, rows)
