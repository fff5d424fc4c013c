"""Events the indicators service consumes.

- `indicators.facts` (registry, snp-dispatch and patient-matching topics): every event the catalogue can
  count becomes facts in `indicator_fact`, in the consumer's transaction (with the processed event ids, so
  each event counts once); the snapshots of the periods they change are sent to the ARS before it commits.
  Facts only append and each transaction marks the periods of its own facts and of the earlier ones it
  reads, so on PostgreSQL the batches of different partitions are applied concurrently (`partitions_apart`).
- `indicators.registry`: the read model behind `/indicators/cpts/{id}/professionals`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, topics
from cpts_events.registry import MembershipChanged, ProfessionalDeactivated, ProfessionalRegistered
from cpts_indicators.domain.facts import FACT_BUILDERS, Fact, deactivation_fact, facts_of
from cpts_indicators.repository import (
    count_registration,
    latest_professional_attributes,
    set_member,
)
from cpts_indicators.snapshots import track_new_facts, write_pending_facts
from cpts_platform.consumer import batch_handler, partitions_apart
from cpts_platform.service import Subscription

PROFESSION_EVENTS = (ProfessionalRegistered.__event_type__, "fr.cpts.registry.professional.updated.v1",
                     ProfessionalDeactivated.__event_type__)


@partitions_apart
@batch_handler
async def record_facts(session: AsyncSession, events: list[Event]) -> None:
    """Append the facts of a run of events of one type, and have their periods' snapshots refreshed."""
    if events[0].type == ProfessionalDeactivated.__event_type__:
        # The facts of one professional arrive in order (keyed by IDNPS): their profession is known already.
        await session.run_sync(write_pending_facts)
        previous = await latest_professional_attributes(session, [e.payload.idnps for e in events],
                                                        PROFESSION_EVENTS)
        facts: list[Fact] = [deactivation_fact(e, previous.get(e.payload.idnps)) for e in events]
    else:
        facts = [fact for event in events for fact in facts_of(event)]
    if facts:
        # Inserted in bulk just before the transaction commits, with the facts of the batch's other runs.
        track_new_facts(session, facts, now=datetime.now(UTC))


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
        group_id="indicators.facts",
        topics=[topics.REGISTRY, topics.SNP_DISPATCH, topics.PATIENT_MATCHING],
        handlers={event_type: record_facts
                  for event_type in [*FACT_BUILDERS, ProfessionalDeactivated.__event_type__]},
    ),
    Subscription(
        group_id="indicators.registry",
        topics=[topics.REGISTRY],
        handlers={
            ProfessionalRegistered.__event_type__: on_professional_registered,
            MembershipChanged.__event_type__: on_membership_changed,
        },
    ),
]
