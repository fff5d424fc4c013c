"""Events snp-dispatch consumes: the registry's professionals, for its read model."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, topics
from cpts_events.registry import ProfessionalRegistered
from cpts_platform.service import Subscription
from cpts_snp_dispatch.repository import ProfessionalView


async def on_professional_registered(session: AsyncSession, event: Event[ProfessionalRegistered]) -> None:
    p = event.payload
    await session.merge(ProfessionalView(
        idnps=p.idnps, family_name=p.family_name, given_name=p.given_name, profession_code=p.profession_code,
        specialty_code=p.specialty_code, commune_insee=p.commune_insee, cpts_ids=list(p.cpts_ids),
        updated_at=event.time,
    ))


SUBSCRIPTIONS = [
    Subscription(
        group_id="snp-dispatch.registry",
        topics=[topics.REGISTRY],
        handlers={ProfessionalRegistered.__event_type__: on_professional_registered},
    )
]
