"""Events the indicators service consumes and the counters they move."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, topics
from cpts_events.registry import ProfessionalRegistered
from cpts_indicators.repository import count_professional
from cpts_platform.service import Subscription


async def on_professional_registered(session: AsyncSession, event: Event[ProfessionalRegistered]) -> None:
    for cpts_id in event.payload.cpts_ids:
        await count_professional(session, cpts_id=cpts_id, event_time=event.time)


SUBSCRIPTIONS = [
    Subscription(
        group_id="indicators.registry",
        topics=[topics.REGISTRY],
        handlers={ProfessionalRegistered.__event_type__: on_professional_registered},
    )
]
