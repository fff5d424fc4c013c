"""Commands of the registry: each one is a unit of work that changes the tables and writes its events."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from cpts_events import new_event
from cpts_events.registry import ProfessionalRegistered
from cpts_platform.db import Database
from cpts_platform.outbox import add_events
from cpts_registry.domain.professional import NewProfessional, ProfessionalAlreadyRegistered
from cpts_registry.repository import ProfessionalRow, get_professional


async def register_professional(*, database: Database, source: str, professional: NewProfessional) -> ProfessionalRow:
    """Register a professional and announce it on the `registry` topic."""
    row = ProfessionalRow(
        idnps=professional.idnps,
        family_name=professional.family_name,
        given_name=professional.given_name,
        profession_code=professional.profession_code,
        specialty_code=professional.specialty_code,
        commune_insee=professional.commune_insee,
        cpts_ids=list(professional.cpts_ids),
        registered_at=datetime.now(UTC),
    )
    event = new_event(
        ProfessionalRegistered(
            idnps=row.idnps, family_name=row.family_name, given_name=row.given_name,
            profession_code=row.profession_code, specialty_code=row.specialty_code,
            commune_insee=row.commune_insee, cpts_ids=row.cpts_ids,
        ),
        source=source,
        subject=f"professional/{row.idnps}",
    )
    try:
        async with database.transaction() as session:
            if await get_professional(session, row.idnps) is not None:
                raise ProfessionalAlreadyRegistered(row.idnps)
            session.add(row)
            await session.flush()
            await add_events(session, database, [event])
    except IntegrityError as exc:
        # Two concurrent registrations of one professional: the primary key lets only one through.
        raise ProfessionalAlreadyRegistered(row.idnps) from exc
    return row
