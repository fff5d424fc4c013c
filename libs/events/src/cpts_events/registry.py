"""Events published by the registry service (topic `registry`).

Professionals' events are keyed by IDNPS and CPTS events by FINESS, so each aggregate's events stay in order.
Payloads are snapshots of the aggregate's state after the change: a consumer can upsert without history.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from cpts_events.catalogue import event_type, topics
from cpts_events.envelope import EventPayload

IDNPS_PATTERN = r"^(8\d{11}|0[0-9A-Z]{9})$"
FINESS_PATTERN = r"^\d{2}[0-9AB]\d{6}$"
INSEE_PATTERN = r"^(\d{5}|2[AB]\d{3})$"

Idnps = Field(pattern=IDNPS_PATTERN, description="National professional id: 8 + RPPS or 0 + ADELI.")
Finess = Field(pattern=FINESS_PATTERN, description="FINESS number of the CPTS.")


class ProfessionalSnapshot(EventPayload):
    idnps: str = Idnps
    civility: str | None = Field(default=None, max_length=20, description="Civilité d'exercice (Dr, M, Mme).")
    family_name: str = Field(min_length=1, max_length=100)
    given_name: str = Field(min_length=1, max_length=100)
    profession_code: str = Field(min_length=1, max_length=10, description="RPPS profession code, 10 = médecin.")
    profession_label: str | None = Field(default=None, max_length=100)
    specialty_code: str | None = Field(default=None, max_length=10, description="Savoir-faire, e.g. SM54.")
    specialty_label: str | None = Field(default=None, max_length=150)
    commune_insee: str | None = Field(default=None, pattern=INSEE_PATTERN, description="Main practice commune.")
    cpts_ids: list[str] = Field(default_factory=list, description="CPTS (FINESS) the professional is a member of.")
    active: bool = True


@event_type("fr.cpts.registry.professional.registered.v1", topic=topics.REGISTRY, key="idnps",
            description="A health professional was registered in the territory registry.")
class ProfessionalRegistered(ProfessionalSnapshot):
    pass


@event_type("fr.cpts.registry.professional.updated.v1", topic=topics.REGISTRY, key="idnps",
            description="A professional's identity, profession or practice changed (state after the change).")
class ProfessionalUpdated(ProfessionalSnapshot):
    pass


@event_type("fr.cpts.registry.professional.deactivated.v1", topic=topics.REGISTRY, key="idnps",
            description="A professional no longer practises (absent from a full RPPS import, or deactivated).")
class ProfessionalDeactivated(EventPayload):
    idnps: str = Idnps
    reason: Literal["absent-from-rpps-import", "deactivated-by-admin"]


class PracticeSite(EventPayload):
    site_id: str = Field(min_length=1, max_length=40, description="IDNST or the RPPS technical id of the site.")
    name: str | None = Field(default=None, max_length=200)
    commune_insee: str | None = Field(default=None, pattern=INSEE_PATTERN)
    postcode: str | None = Field(default=None, max_length=10)
    lat: float | None = None
    lon: float | None = None
    practice_mode: str | None = Field(default=None, max_length=2, description="L libéral, S salarié, B bénévole.")
    address: str | None = Field(default=None, max_length=300, description="Street address of the site.")
    phone: str | None = Field(default=None, max_length=20, description="Phone of the site, for the SAS.")


@event_type("fr.cpts.registry.professional.sites.changed.v1", topic=topics.REGISTRY, key="idnps",
            description="The practice sites (activities) of a professional changed; the full list after the change.")
class ProfessionalSitesChanged(EventPayload):
    idnps: str = Idnps
    sites: list[PracticeSite]


@event_type("fr.cpts.registry.membership.changed.v1", topic=topics.REGISTRY, key="idnps",
            description="A professional joined, left or changed status in a CPTS.")
class MembershipChanged(EventPayload):
    idnps: str = Idnps
    cpts_id: str = Finess
    status: Literal["adherent", "active", "left"]


@event_type("fr.cpts.registry.sas_participation.changed.v1", topic=topics.REGISTRY, key="idnps",
            description="A professional's participation in the SAS changed (state after the change).")
class SasParticipationChanged(EventPayload):
    idnps: str = Idnps
    participating: bool
    mode: Literal["own_practice", "cpts", "msp", "sos_medecins"] | None = None
    hours_per_week: float | None = Field(default=None, ge=0)
    accepts_en_sus: bool = False
    en_sus_weekly_cap: int | None = Field(default=None, ge=0)
    start_date: date | None = None
    end_date: date | None = None


@event_type("fr.cpts.registry.mt_capacity.changed.v1", topic=topics.REGISTRY, key="idnps",
            description="A GP's capacity to take new médecin-traitant patients changed (state after the change).")
class MtCapacityChanged(EventPayload):
    idnps: str = Idnps
    accepting: bool
    new_patients_per_month: int = Field(default=0, ge=0)
    publics: list[Literal["adults", "children", "home_bound"]] = Field(default_factory=list)
    until: date | None = None


class CptsTerritory(EventPayload):
    communes: list[str] = Field(description="INSEE codes of the communes of the territory.")
    population: int = Field(ge=0)
    size_band: int = Field(ge=1, le=4, description="ACI size: 1 <40k, 2 40-80k, 3 80-175k, 4 >=175k inhabitants.")
    departements: list[str]


@event_type("fr.cpts.registry.cpts.registered.v1", topic=topics.REGISTRY, key="cpts_id",
            description="A CPTS and its territory were registered.")
class CptsRegistered(CptsTerritory):
    cpts_id: str = Finess
    name: str = Field(min_length=1, max_length=200)
    stage: Literal["letter_of_intent", "health_project_validated", "aci_signed"]
    aci_signed_on: date | None = None
    missions: list[str] = Field(default_factory=list)


@event_type("fr.cpts.registry.cpts.territory.changed.v1", topic=topics.REGISTRY, key="cpts_id",
            description="The communes of a CPTS changed (territory, population and size after the change).")
class CptsTerritoryChanged(CptsTerritory):
    cpts_id: str = Finess


@event_type("fr.cpts.registry.cpts.stage.changed.v1", topic=topics.REGISTRY, key="cpts_id",
            description="A CPTS moved to another stage (letter of intent, health project validated, ACI signed).")
class CptsStageChanged(EventPayload):
    cpts_id: str = Finess
    stage: Literal["letter_of_intent", "health_project_validated", "aci_signed"]
    aci_signed_on: date | None = None
    missions: list[str] = Field(default_factory=list)
