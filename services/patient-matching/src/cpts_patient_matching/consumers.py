"""Events patient-matching consumes: the registry's GPs and their capacity to take new MT patients."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, topics
from cpts_events.registry import (
    MembershipChanged,
    MtCapacityChanged,
    ProfessionalDeactivated,
    ProfessionalRegistered,
    ProfessionalUpdated,
)
from cpts_patient_matching.domain.gp import can_be_medecin_traitant
from cpts_patient_matching.repository import GpView
from cpts_platform.service import Subscription


async def on_professional(session: AsyncSession, event: Event[ProfessionalRegistered | ProfessionalUpdated]) -> None:
    p = event.payload
    view = await session.get(GpView, p.idnps)
    if not can_be_medecin_traitant(p.profession_code, p.specialty_code):
        if view is not None:
            await session.delete(view)
        return
    view = view or GpView(idnps=p.idnps, updated_at=event.time)
    view.commune_insee, view.cpts_ids, view.active = p.commune_insee, list(p.cpts_ids), p.active
    view.updated_at = event.time
    session.add(view)


async def on_deactivated(session: AsyncSession, event: Event[ProfessionalDeactivated]) -> None:
    view = await session.get(GpView, event.payload.idnps)
    if view is not None:
        view.active, view.accepting, view.updated_at = False, False, event.time
        session.add(view)


async def on_mt_capacity(session: AsyncSession, event: Event[MtCapacityChanged]) -> None:
    p = event.payload
    view = await session.get(GpView, p.idnps)
    if view is not None:
        view.accepting, view.new_patients_per_month = p.accepting, p.new_patients_per_month
        view.publics, view.accepting_until, view.updated_at = list(p.publics), p.until, event.time
        session.add(view)


async def on_membership(session: AsyncSession, event: Event[MembershipChanged]) -> None:
    p = event.payload
    view = await session.get(GpView, p.idnps)
    if view is not None:
        ids = set(view.cpts_ids)
        ids.discard(p.cpts_id) if p.status == "left" else ids.add(p.cpts_id)
        view.cpts_ids, view.updated_at = sorted(ids), event.time
        session.add(view)


SUBSCRIPTIONS = [
    Subscription(
        group_id="patient-matching.registry",
        topics=[topics.REGISTRY],
        handlers={
            ProfessionalRegistered.__event_type__: on_professional,
            ProfessionalUpdated.__event_type__: on_professional,
            ProfessionalDeactivated.__event_type__: on_deactivated,
            MtCapacityChanged.__event_type__: on_mt_capacity,
            MembershipChanged.__event_type__: on_membership,
        },
    )
]
