"""Events patient-matching consumes: the registry's professionals, to know the GPs."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, topics
from cpts_events.registry import ProfessionalRegistered
from cpts_patient_matching.domain.gp import can_be_medecin_traitant
from cpts_patient_matching.repository import GpView
from cpts_platform.service import Subscription


async def on_professional_registered(session: AsyncSession, event: Event[ProfessionalRegistered]) -> None:
    p = event.payload
    if not can_be_medecin_traitant(p.profession_code, p.specialty_code):
        return
    await session.merge(GpView(idnps=p.idnps, commune_insee=p.commune_insee, cpts_ids=list(p.cpts_ids),
                               updated_at=event.time))


SUBSCRIPTIONS = [
    Subscription(
        group_id="patient-matching.registry",
        topics=[topics.REGISTRY],
        handlers={ProfessionalRegistered.__event_type__: on_professional_registered},
    )
]
