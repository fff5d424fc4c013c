"""Events the indicators service consumes.

- `indicators.facts` (registry, snp-dispatch and patient-matching topics): every event the catalogue can
  count becomes facts in `indicator_fact`, in the consumer's transaction (with the processed event ids, so
  each event counts once); the snapshots of the periods they change are sent to the ARS before it commits.
  Facts only append and each transaction marks the periods of its own facts and of the earlier ones it
  reads, so on PostgreSQL the batches of different partitions are applied concurrently (`partitions_apart`).
- `indicators.registry`: the read model behind `/indicators/cpts/{id}/professionals`.
"""

from __future__ import annotations

from datetime import datetime
from itertools import groupby
from operator import attrgetter

from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import Event, topics
from cpts_events.registry import MembershipChanged, ProfessionalDeactivated, ProfessionalRegistered
from cpts_indicators.domain.facts import FACT_BUILDERS, Fact, deactivation_fact, facts_of
from cpts_indicators.repository import count_registrations, latest_professional_attributes, set_members
from cpts_indicators.snapshots import track_new_facts, write_pending_facts
from cpts_platform.consumer import batch_handler, partitions_apart
from cpts_platform.service import Subscription

PROFESSION_EVENTS = (ProfessionalRegistered.__event_type__, "fr.cpts.registry.professional.updated.v1",
                     ProfessionalDeactivated.__event_type__)


@partitions_apart
@batch_handler(any_types=True)
async def record_facts(session: AsyncSession, events: list[Event]) -> None:
    """Append the facts of a run of events, and have their periods' snapshots refreshed."""
    facts: list[Fact] = []
    for event_type, run in groupby(events, key=attrgetter("type")):
        if event_type == ProfessionalDeactivated.__event_type__:
            # The facts of one professional arrive in order (keyed by IDNPS): their profession is known already,
            # in the facts written so far.
            run = list(run)
            track_new_facts(session, facts)
            facts = []
            await session.run_sync(write_pending_facts)
            previous = await latest_professional_attributes(session, [e.payload.idnps for e in run],
                                                            PROFESSION_EVENTS)
            facts += [deactivation_fact(e, previous.get(e.payload.idnps)) for e in run]
        else:
            for event in run:
                facts += facts_of(event)
    # Inserted in bulk just before the transaction commits, with the facts of the batch's other runs.
    track_new_facts(session, facts)


@batch_handler
async def on_professionals_registered(session: AsyncSession, events: list[Event[ProfessionalRegistered]]) -> None:
    counts: dict[str, tuple[int, datetime]] = {}
    for event in events:
        for cpts_id in event.payload.cpts_ids:
            n, latest = counts.get(cpts_id, (0, event.time))
            counts[cpts_id] = (n + 1, max(latest, event.time))
    await count_registrations(session, counts)
    await set_members(session, [(cpts_id, event.payload.idnps, "adherent", event.time)
                                for event in events for cpts_id in event.payload.cpts_ids])


@batch_handler
async def on_memberships_changed(session: AsyncSession, events: list[Event[MembershipChanged]]) -> None:
    await set_members(session, [(event.payload.cpts_id, event.payload.idnps, event.payload.status, event.time)
                                for event in events])


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
            ProfessionalRegistered.__event_type__: on_professionals_registered,
            MembershipChanged.__event_type__: on_memberships_changed,
        },
    ),
]
