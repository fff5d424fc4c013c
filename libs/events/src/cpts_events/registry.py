"""Events published by the registry service (topic `registry`), keyed by the professional's IDNPS."""

from __future__ import annotations

from pydantic import Field

from cpts_events.catalogue import event_type, topics
from cpts_events.envelope import EventPayload

IDNPS_PATTERN = r"^(8\d{11}|0\d{9})$"


@event_type(
    "fr.cpts.registry.professional.registered.v1",
    topic=topics.REGISTRY,
    key="idnps",
    description="A health professional was registered in the territory registry.",
)
class ProfessionalRegistered(EventPayload):
    idnps: str = Field(pattern=IDNPS_PATTERN, description="National professional id: 8 + RPPS or 0 + ADELI.")
    family_name: str = Field(min_length=1, max_length=100)
    given_name: str = Field(min_length=1, max_length=100)
    profession_code: str = Field(min_length=1, max_length=10, description="RPPS profession code, 10 = médecin.")
    specialty_code: str | None = Field(default=None, max_length=10, description="Savoir-faire, e.g. SM54.")
    commune_insee: str | None = Field(default=None, pattern=r"^(\d{5}|2[AB]\d{3})$")
    cpts_ids: list[str] = Field(default_factory=list, description="CPTS (FINESS) the professional is a member of.")
