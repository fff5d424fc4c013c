"""Read side of snp-dispatch: the ranked search of a care request, slot lists, who sees which slot."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_geo import communes, distance_from, sas_radii
from cpts_platform.auth import Principal, Role
from cpts_platform.db import one_of
from cpts_snp_dispatch.api.schemas import Card, EnSusCandidate, SearchResult, SlotBrief, SlotPublic
from cpts_snp_dispatch.domain.cells import cells_around
from cpts_snp_dispatch.domain.intake import DAY_GROUPS, day_bounds, radius_steps, search_window
from cpts_snp_dispatch.domain.ranking import Candidate, rank
from cpts_snp_dispatch.handlers import LIVE_APPOINTMENT, week_bounds
from cpts_snp_dispatch.repository import AppointmentRow, CareRequestRow, CptsMemberView, ProfessionalView, SlotRow
from cpts_snp_dispatch.settings import Settings

GP_PROFESSION = "10"


@dataclass(frozen=True)
class Audience:
    """Which slots a caller may see (TRE_R314 codes): regulators SNP, PRO and PUBLIC; CPTS secretaries and
    coordinators PUBLIC plus the CPTS slots of their CPTS's members; professionals PRO and PUBLIC, plus the CPTS
    slots of the members of their own CPTS (see `audience_for`)."""

    levels: frozenset[str]
    cpts_ids: frozenset[str] = frozenset()
    everything: bool = False

    @classmethod
    def of(cls, principal: Principal) -> "Audience":
        if Role.ADMIN in principal.roles:
            return cls(frozenset(), everything=True)
        levels: set[str] = set()
        if principal.has_role(Role.REGULATOR):
            levels |= {"SNP", "PRO", "PUBLIC"}
        if principal.has_role(Role.PROFESSIONAL):
            levels |= {"PRO", "PUBLIC"}
        if principal.has_role(Role.SECRETARY, Role.COORDINATOR):
            levels |= {"PUBLIC"}
        cpts_ids = principal.cpts_ids if principal.has_role(Role.SECRETARY, Role.COORDINATOR) else frozenset()
        return cls(frozenset(levels), frozenset(cpts_ids))

    def condition(self) -> sa.ColumnElement[bool]:
        if self.everything:
            return sa.true()
        clauses = [flag for code, flag in (("PUBLIC", SlotRow.vis_public), ("PRO", SlotRow.vis_pro),
                                           ("SNP", SlotRow.vis_snp)) if code in self.levels]
        if self.cpts_ids:
            m = CptsMemberView.__table__.c
            clauses.append(sa.and_(SlotRow.vis_cpts, col(SlotRow.idnps).in_(
                sa.select(m.idnps).where(m.cpts_id.in_(sorted(self.cpts_ids))))))
        return sa.or_(*clauses) if clauses else sa.false()

    def sees(self, slot: SlotRow, professional_cpts: list[str]) -> bool:
        if self.everything:
            return True
        return (bool(set(slot.visibility) & self.levels)
                or (slot.vis_cpts and bool(self.cpts_ids & set(professional_cpts))))


async def audience_for(session: AsyncSession, principal: Principal) -> Audience:
    """The caller's audience; a professional's CPTS are the memberships the registry announced."""
    audience = Audience.of(principal)
    if principal.idnps and principal.has_role(Role.PROFESSIONAL) and not audience.everything:
        own = await session.get(ProfessionalView, principal.idnps)
        if own is not None and own.cpts_ids:
            return Audience(audience.levels, audience.cpts_ids | frozenset(own.cpts_ids))
    return audience


def slot_status(slot: SlotRow, now: datetime) -> str:
    if slot.status == "free" and slot.held_until is not None and slot.held_until > now:
        return "held"
    return slot.status


def slot_public(slot: SlotRow, now: datetime) -> SlotPublic:
    status = slot_status(slot, now)
    return SlotPublic(slot_id=slot.slot_id, idnps=slot.idnps, site_id=slot.site_id, schedule_id=slot.schedule_id,
                      commune_insee=slot.commune_insee, start=slot.start, end=slot.end,
                      service_type=slot.service_type, visibility=slot.visibility,
                      appointment_type=slot.appointment_type, status=status,
                      held_until=slot.held_until if status == "held" else None)


def _free_now(now: datetime):
    return sa.and_(SlotRow.status == "free", sa.or_(SlotRow.held_until.is_(None), SlotRow.held_until <= now))


def service_types_for(request: CareRequestRow, requested: list[str] | None) -> list[str]:
    """Office consultations by default, teleconsultation when acceptable, home visits only when needed."""
    if requested:
        return sorted(set(requested))
    if request.needs_home_visit:
        return ["HH"]
    return ["AMB", "VR"] if request.teleconsultation_ok else ["AMB"]


def _site_distance(sites: list[dict], distance) -> float | None:
    distances = [distance(s["lat"], s["lon"]) for s in sites if s.get("lat") is not None and s.get("lon") is not None]
    if not distances:
        for s in sites:
            commune = communes().get(s.get("commune_insee") or "")
            if commune is not None and commune.lat is not None:
                distances.append(distance(commune.lat, commune.lon))
    return min(distances) if distances else None


async def search(session: AsyncSession, *, request: CareRequestRow, audience: Audience, settings: Settings,
                 now: datetime, service_types: list[str] | None = None, limit: int = 20, offset: int = 0
                 ) -> SearchResult:
    """Ranked cards for a care request, following the SAS search rules (window, radius, order)."""
    window_start, window_end = search_window(now, request.urgency)
    types = service_types_for(request, service_types)
    radii_row = sas_radii().get(request.departement)
    radii = radius_steps(radii_row.default_radius_km if radii_row else settings.search_default_radius_km,
                         radii_row.enlargement_step_km if radii_row else settings.search_default_step_km,
                         settings.search_max_radius_km)
    max_radius = radii[-1]
    lat, lon = request.lat, request.lon
    distance = distance_from(lat, lon)
    visible = audience.condition()
    connection = await session.connection()
    dialect = connection.dialect.name

    # 1. Free slots of the window per professional, radius by radius until enough professionals have some; each
    # step reads only the map cells it adds, and a site lies in one cell, so the sums stay exact.
    per_site: dict[tuple[str, float, float], tuple[float, int, datetime]] = {}
    asked: set[int] = set()
    with_slots: dict[str, tuple[float, int, datetime]] = {}
    radius = radii[0]
    for radius in radii:
        cells = cells_around(lat, lon, radius) - asked
        asked |= cells
        per_site.update(await _free_per_site(connection, cells=cells, now=now, window=(window_start, window_end),
                                             types=types, visible=visible, distance=distance))
        with_slots = _within(per_site, radius=radius)
        if len(with_slots) >= settings.search_min_professionals:
            break

    # 2. The professionals of the area (for cards without slots) and those with slots, from the read model.
    area = [c.insee for c in communes().within(lat, lon, radius)]
    wanted = set(with_slots) | ({request.mt_idnps} if request.mt_idnps else set())
    # Long lists go as one parameter each (`one_of`): one prepared statement whatever their length. Only what
    # ranking needs is read for the whole area (hundreds of professionals in a city); the cards' details for the
    # page below. The sites (JSON) are decoded only for the professionals without slots, whose distance they give.
    view = ProfessionalView.__table__.c
    rows = (await connection.execute(
        sa.select(view.idnps, view.sas_participant, view.accepts_en_sus, sa.cast(view.sites, sa.Text)).where(
            view.active,
            sa.or_(one_of(dialect, view.idnps, "wanted"),
                   sa.and_(one_of(dialect, view.commune_insee, "area"), view.profession_code == GP_PROFESSION))),
        {"wanted": sorted(wanted), "area": area})).all()
    candidates: list[Candidate] = []
    en_sus_ids: list[str] = []
    for idnps, sas_participant, accepts_en_sus, sites in rows:
        own = idnps == request.mt_idnps
        if idnps in with_slots:
            km, count, first = with_slots[idnps]
        else:
            km, count, first = _site_distance(json.loads(sites) if sites else [], distance), 0, None
            if not own and (km is None or km > radius):
                continue
        candidates.append(Candidate(idnps=idnps, sas_participant=sas_participant,
                                    distance_km=km if km is not None else max_radius,
                                    first_start=first, slot_count=count, is_own_doctor=own))
        if accepts_en_sus and not with_slots:
            en_sus_ids.append(idnps)
    ordered = rank(candidates, by_distance=request.located_by == "address", seed=request.search_seed)
    page = ordered[offset:offset + limit]
    details = {c.idnps for c in page} | set(en_sus_ids)
    professionals = {p.idnps: p for p in (await session.exec(select(ProfessionalView).where(
        one_of(dialect, col(ProfessionalView.idnps), "ids")), params={"ids": sorted(details)})).all()
                     } if details else {}

    # 3. The first free slots of the page's professionals, grouped today / tomorrow / after tomorrow.
    slots_of = await _first_slots(connection, [c.idnps for c in page if c.slot_count], now=now,
                                  window=(window_start, window_end), types=types, visible=visible,
                                  per_day=settings.search_first_slots_per_day, distance=distance)
    cards = []
    for position, c in enumerate(page, start=offset + 1):
        p = professionals[c.idnps]
        cards.append(Card(
            rank=position, group=c.group, idnps=c.idnps, civility=p.civility, family_name=p.family_name,
            given_name=p.given_name, profession_code=p.profession_code, specialty_code=p.specialty_code,
            sas_participant=p.sas_participant, accepts_en_sus=p.accepts_en_sus, is_own_doctor=c.is_own_doctor,
            distance_km=round(c.distance_km, 1) if c.distance_km is not None else None,
            commune_insee=p.commune_insee, free_slot_count=c.slot_count,
            slots=slots_of.get(c.idnps, {"today": [], "tomorrow": [], "after_tomorrow": []})))
    en_sus = [] if with_slots else await _en_sus(session, candidates, professionals, now)
    return SearchResult(request_id=request.request_id, window_start=window_start, window_end=window_end,
                        radius_km=radius, order="distance" if request.located_by == "address" else "neutral",
                        service_types=types, cards=cards, total_cards=len(ordered),
                        professionals_with_slots=len(with_slots), en_sus=en_sus)


async def _free_per_site(connection: AsyncConnection, *, cells: set[int], now: datetime,
                         window: tuple[datetime, datetime], types: list[str], visible, distance
                         ) -> dict[tuple[str, float, float], tuple[float, int, datetime]]:
    """(distance, free slot count, first start) of the window per professional and site of the given map cells,
    answered from the covering index `ix_slot_free_cell`."""
    if not cells:
        return {}
    rows = (await connection.execute(
        sa.select(SlotRow.idnps, SlotRow.lat, SlotRow.lon, func.count(), func.min(SlotRow.start))
        .where(SlotRow.status == "free", one_of(connection.dialect.name, col(SlotRow.geo_cell), "cells"),
               SlotRow.start >= window[0],
               SlotRow.start <= window[1], sa.or_(SlotRow.held_until.is_(None), SlotRow.held_until <= now),
               col(SlotRow.service_type).in_(types), visible)
        .group_by(SlotRow.idnps, SlotRow.lat, SlotRow.lon), {"cells": sorted(cells)})).all()
    return {(idnps, slat, slon): (distance(slat, slon), count, first) for idnps, slat, slon, count, first in rows}


def _within(per_site: dict[tuple[str, float, float], tuple[float, int, datetime]], *, radius: float
            ) -> dict[str, tuple[float, int, datetime]]:
    """(distance of the nearest site with slots, free slot count, first start) per professional within `radius`."""
    found: dict[str, tuple[float, int, datetime]] = {}
    for (idnps, _, _), (distance, count, first) in per_site.items():
        if distance > radius:
            continue
        known = found.get(idnps)
        found[idnps] = (distance, count, first) if known is None else (
            min(known[0], distance), known[1] + count, min(known[2], first))
    return found


async def _first_slots(connection: AsyncConnection, ids: list[str], *, now: datetime,
                       window: tuple[datetime, datetime], types: list[str], visible, per_day: int, distance
                       ) -> dict[str, dict[str, list[SlotBrief]]]:
    if not ids:
        return {}
    # The first `per_day` free slots of each Paris day of the window for the page's professionals (index on
    # professional and start): the database numbers them per professional and day, and sends only those.
    tomorrow, after_tomorrow = day_bounds(now)
    day = sa.case((SlotRow.start < tomorrow, 0), (SlotRow.start < after_tomorrow, 1), else_=2).label("day")
    numbered = (
        sa.select(SlotRow.slot_id, SlotRow.idnps, SlotRow.start, SlotRow.end, SlotRow.service_type,
                  SlotRow.appointment_type, SlotRow.site_id, SlotRow.lat, SlotRow.lon, day,
                  sa.func.row_number().over(partition_by=(SlotRow.idnps, day),
                                            order_by=(SlotRow.start, SlotRow.slot_id)).label("n"))
        .where(one_of(connection.dialect.name, col(SlotRow.idnps), "ids"), SlotRow.start >= window[0],
               SlotRow.start <= window[1], _free_now(now), col(SlotRow.service_type).in_(types), visible)
        .subquery())
    rows = (await connection.execute(
        sa.select(numbered.c.slot_id, numbered.c.idnps, numbered.c.start, numbered.c.end, numbered.c.service_type,
                  numbered.c.appointment_type, numbered.c.site_id, numbered.c.lat, numbered.c.lon, numbered.c.day)
        .where(numbered.c.n <= per_day).order_by(numbered.c.idnps, numbered.c.start, numbered.c.slot_id),
        {"ids": ids})).all()
    out: dict[str, dict[str, list[SlotBrief]]] = defaultdict(lambda: {group: [] for group in DAY_GROUPS})
    for slot_id, idnps, start, end, service_type, appointment_type, site_id, slat, slon, day_index in rows:
        km = distance(slat, slon) if slat is not None and slon is not None else None
        out[idnps][DAY_GROUPS[day_index]].append(SlotBrief(
            slot_id=slot_id, start=start, end=end, service_type=service_type,
            bookable=appointment_type == "ROUTINE", site_id=site_id,
            distance_km=round(km, 1) if km is not None else None))
    return out


async def _en_sus(session: AsyncSession, candidates: list[Candidate], professionals: dict[str, ProfessionalView],
                  now: datetime) -> list[EnSusCandidate]:
    """Effecteurs of the area who accept patients beyond their slots and have room left this week."""
    accepting = [c for c in candidates if c.idnps in professionals and professionals[c.idnps].accepts_en_sus]
    if not accepting:
        return []
    start, end = week_bounds(now)
    used = dict((await session.exec(
        select(AppointmentRow.idnps, func.count()).where(
            col(AppointmentRow.idnps).in_([c.idnps for c in accepting]), AppointmentRow.kind == "en_sus",
            col(AppointmentRow.status).in_(LIVE_APPOINTMENT), AppointmentRow.booked_at >= start,
            AppointmentRow.booked_at < end).group_by(AppointmentRow.idnps))).all())
    out = []
    for c in sorted(accepting, key=lambda c: (c.distance_km, c.idnps)):
        p = professionals[c.idnps]
        remaining = None if p.en_sus_weekly_cap is None else p.en_sus_weekly_cap - used.get(c.idnps, 0)
        if remaining is None or remaining > 0:
            out.append(EnSusCandidate(idnps=c.idnps, civility=p.civility, family_name=p.family_name,
                                      given_name=p.given_name, distance_km=round(c.distance_km, 1),
                                      remaining_this_week=remaining))
    return out


async def list_slots(session: AsyncSession, *, idnps: str, start: datetime, end: datetime, now: datetime,
                     include_withdrawn: bool = False) -> list[SlotPublic]:
    conditions = [SlotRow.idnps == idnps, SlotRow.start >= start, SlotRow.start < end]
    if not include_withdrawn:
        conditions.append(SlotRow.status != "withdrawn")
    rows = (await session.exec(select(SlotRow).where(*conditions).order_by(SlotRow.start).limit(2000))).all()
    return [slot_public(r, now) for r in rows]
