"""Events the indicators service consumes and the figures they move."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, topics
from cpts_events.registry import MembershipChanged, ProfessionalRegistered
from cpts_indicators.repository import count_registration, set_member
from cpts_platform.service import Subscription


async def on_professional_registered(session: AsyncSession, event: Event[ProfessionalRegistered]) -> None:
    for cpts_id in event.payload.cpts_ids:
        await count_registration(session, cpts_id=cpts_id, event_time=event.time)
        await set_member(session, cpts_id=cpts_id, idnps=event.payload.idnps, status="adherent",
                         event_time=event.time)


async def on_membership_changed(session: AsyncSession, event: Event[MembershipChanged]) -> None:
    p = event.payload
    await set_member(session, cpts_id=p.cpts_id, idnps=p.idnps, status=p.status, event_time=event.time)


SUBSCRIPTIONS = [
    Subscription(
        group_id="indicators.registry",
        topics=[topics.REGISTRY],
        handlers={
            ProfessionalRegistered.__event_type__: on_professional_registered,
            MembershipChanged.__event_type__: on_membership_changed,
        },
    )
]
