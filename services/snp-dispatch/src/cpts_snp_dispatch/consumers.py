"""Events snp-dispatch consumes: the registry's professionals and CPTS, for its read models."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, topics
from cpts_events.registry import (
    CptsRegistered,
    CptsTerritoryChanged,
    MembershipChanged,
    ProfessionalDeactivated,
    ProfessionalRegistered,
    ProfessionalSitesChanged,
    ProfessionalUpdated,
    SasParticipationChanged,
)
from cpts_platform.service import Subscription
from cpts_snp_dispatch.repository import CptsView, ProfessionalView


async def on_professional(session: AsyncSession, event: Event[ProfessionalRegistered | ProfessionalUpdated]) -> None:
    p = event.payload
    view = await session.get(ProfessionalView, p.idnps) or ProfessionalView(
        idnps=p.idnps, family_name=p.family_name, given_name=p.given_name, profession_code=p.profession_code,
        updated_at=event.time)
    for name in ("civility", "family_name", "given_name", "profession_code", "specialty_code", "commune_insee",
                 "active"):
        setattr(view, name, getattr(p, name))
    view.cpts_ids = list(p.cpts_ids)
    view.updated_at = event.time
    session.add(view)


async def _update(session: AsyncSession, idnps: str, event: Event, **changes) -> None:
    # Events of one professional arrive in order (same key); one about an unknown professional is kept out.
    view = await session.get(ProfessionalView, idnps)
    if view is None:
        return
    for name, value in changes.items():
        setattr(view, name, value)
    view.updated_at = event.time
    session.add(view)


async def on_deactivated(session: AsyncSession, event: Event[ProfessionalDeactivated]) -> None:
    await _update(session, event.payload.idnps, event, active=False)


async def on_sites(session: AsyncSession, event: Event[ProfessionalSitesChanged]) -> None:
    await _update(session, event.payload.idnps, event,
                  sites=[s.model_dump(mode="json") for s in event.payload.sites])


async def on_sas_participation(session: AsyncSession, event: Event[SasParticipationChanged]) -> None:
    p = event.payload
    await _update(session, p.idnps, event, sas_participant=p.participating, sas_mode=p.mode,
                  accepts_en_sus=p.participating and p.accepts_en_sus,
                  en_sus_weekly_cap=p.en_sus_weekly_cap if p.participating else None)


async def on_membership(session: AsyncSession, event: Event[MembershipChanged]) -> None:
    p = event.payload
    view = await session.get(ProfessionalView, p.idnps)
    if view is not None:
        ids = set(view.cpts_ids)
        ids.discard(p.cpts_id) if p.status == "left" else ids.add(p.cpts_id)
        await _update(session, p.idnps, event, cpts_ids=sorted(ids))


async def on_cpts(session: AsyncSession, event: Event[CptsRegistered | CptsTerritoryChanged]) -> None:
    p = event.payload
    view = await session.get(CptsView, p.cpts_id) or CptsView(cpts_id=p.cpts_id, updated_at=event.time)
    if isinstance(p, CptsRegistered):
        view.name = p.name
    view.communes, view.departements, view.updated_at = list(p.communes), list(p.departements), event.time
    session.add(view)


SUBSCRIPTIONS = [
    Subscription(
        group_id="snp-dispatch.registry",
        topics=[topics.REGISTRY],
        handlers={
            ProfessionalRegistered.__event_type__: on_professional,
            ProfessionalUpdated.__event_type__: on_professional,
            ProfessionalDeactivated.__event_type__: on_deactivated,
            ProfessionalSitesChanged.__event_type__: on_sites,
            SasParticipationChanged.__event_type__: on_sas_participation,
            MembershipChanged.__event_type__: on_membership,
            CptsRegistered.__event_type__: on_cpts,
            CptsTerritoryChanged.__event_type__: on_cpts,
        },
    )
]
