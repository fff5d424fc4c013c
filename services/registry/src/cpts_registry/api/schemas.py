"""Request and response bodies of the registry API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from cpts_platform.problems import RequestModel
from cpts_registry.domain.cpts import CptsStage, Mission
from cpts_registry.domain.participation import SAS_MIN_HOURS_PER_WEEK, MembershipStatus, MtPublic, SasMode
from cpts_registry.domain.professional import FINESS_PATTERN, IDNPS_PATTERN, INSEE_PATTERN

Finess = Annotated[str, Field(pattern=FINESS_PATTERN, examples=["690049999"])]
Insee = Annotated[str, Field(pattern=INSEE_PATTERN, examples=["69259"])]


class ProfessionalCreate(RequestModel):
    idnps: str = Field(pattern=IDNPS_PATTERN, description="Identifiant national : 8 + RPPS ou 0 + ADELI.",
                       examples=["810001234567"])
    civility: str | None = Field(default=None, max_length=20, examples=["Dr"])
    family_name: str = Field(min_length=1, max_length=100, examples=["Martin"])
    given_name: str = Field(min_length=1, max_length=100, examples=["Claire"])
    profession_code: str = Field(pattern=r"^\d{1,3}$", description="Code profession RPPS (10 = médecin).",
                                 examples=["10"])
    profession_label: str | None = Field(default=None, max_length=100)
    specialty_code: str | None = Field(default=None, pattern=r"^[A-Z]{1,3}\d{1,3}$", examples=["SM54"])
    specialty_label: str | None = Field(default=None, max_length=150)
    commune_insee: Insee | None = None
    cpts_ids: list[Finess] = Field(default_factory=list, max_length=20,
                                   description="FINESS des CPTS dont le professionnel est adhérent.")


class ProfessionalUpdate(RequestModel):
    civility: str | None = Field(default=None, max_length=20)
    family_name: str | None = Field(default=None, min_length=1, max_length=100)
    given_name: str | None = Field(default=None, min_length=1, max_length=100)
    profession_code: str | None = Field(default=None, pattern=r"^\d{1,3}$")
    profession_label: str | None = Field(default=None, max_length=100)
    specialty_code: str | None = Field(default=None, pattern=r"^[A-Z]{1,3}\d{1,3}$")
    specialty_label: str | None = Field(default=None, max_length=150)
    commune_insee: Insee | None = None

    @field_validator("family_name", "given_name", "profession_code")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may be left out, not set to null")
        return value


class SitePublic(BaseModel):
    site_id: str
    name: str | None
    address: str | None
    postcode: str | None
    commune_insee: str | None
    phone: str | None
    lat: float | None
    lon: float | None
    practice_mode: str | None


class MembershipPublic(BaseModel):
    cpts_id: str
    status: MembershipStatus
    since: datetime


class SasParticipationIn(RequestModel):
    mode: SasMode = Field(description="Participation via son cabinet, la CPTS, une MSP ou SOS Médecins.")
    hours_per_week: float = Field(description=f"Heures de disponibilité visibles par semaine "
                                              f"(au moins {SAS_MIN_HOURS_PER_WEEK:g}).", le=168)
    accepts_en_sus: bool = False
    en_sus_weekly_cap: int | None = Field(default=None, ge=0, le=100)
    start_date: date
    end_date: date | None = None

    @field_validator("hours_per_week")
    @classmethod
    def _at_least_minimum(cls, value: float) -> float:
        if value < SAS_MIN_HOURS_PER_WEEK:
            raise ValueError(f"at least {SAS_MIN_HOURS_PER_WEEK:g} h a week are required, got {value:g}")
        return value

    @field_validator("end_date")
    @classmethod
    def _after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start_date")
        if value is not None and start is not None and value < start:
            raise ValueError("must not be before start_date")
        return value


class SasParticipationPublic(BaseModel):
    idnps: str
    mode: SasMode
    hours_per_week: float
    accepts_en_sus: bool
    en_sus_weekly_cap: int | None
    start_date: date
    end_date: date | None
    updated_at: datetime


class MtCapacityIn(RequestModel):
    accepting: bool
    new_patients_per_month: int = Field(default=0, ge=0, le=500)
    publics: list[MtPublic] = Field(default_factory=list, max_length=3)
    until: date | None = None


class MtCapacityPublic(BaseModel):
    idnps: str
    accepting: bool
    new_patients_per_month: int
    publics: list[MtPublic]
    until: date | None
    updated_at: datetime


class ProfessionalPublic(BaseModel):
    idnps: str
    civility: str | None
    family_name: str
    given_name: str
    profession_code: str
    profession_label: str | None
    specialty_code: str | None
    specialty_label: str | None
    commune_insee: str | None
    active: bool
    source: str
    registered_at: datetime
    updated_at: datetime | None
    cpts_ids: list[str] = Field(default_factory=list)
    distance_km: float | None = Field(default=None, description="À vol d'oiseau entre communes (approximation).")


class ProfessionalDetail(ProfessionalPublic):
    sites: list[SitePublic] = Field(default_factory=list)
    memberships: list[MembershipPublic] = Field(default_factory=list)
    sas_participation: SasParticipationPublic | None = None
    mt_capacity: MtCapacityPublic | None = None


class ProfessionalPage(BaseModel):
    items: list[ProfessionalPublic]
    total: int
    limit: int
    offset: int


class CptsCreate(RequestModel):
    cpts_id: Finess = Field(description="Numéro FINESS de la CPTS (catégorie 604).")
    name: str = Field(min_length=1, max_length=200)
    communes: list[Insee] = Field(min_length=1, max_length=500)
    stage: CptsStage = CptsStage.LETTER_OF_INTENT
    aci_signed_on: date | None = Field(default=None, validate_default=True)
    missions: list[Mission] = Field(default_factory=list, max_length=7)


    @field_validator("aci_signed_on")
    @classmethod
    def _signed(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is None and info.data.get("stage") == CptsStage.ACI_SIGNED:
            raise ValueError("required when the stage is aci_signed")
        return value


class TerritoryIn(RequestModel):
    communes: list[Insee] = Field(min_length=1, max_length=500)


class StageIn(RequestModel):
    stage: CptsStage
    aci_signed_on: date | None = Field(default=None, validate_default=True)
    missions: list[Mission] = Field(default_factory=list, max_length=7)

    @field_validator("aci_signed_on")
    @classmethod
    def _signed(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is None and info.data.get("stage") == CptsStage.ACI_SIGNED:
            raise ValueError("required when the stage is aci_signed")
        return value


class MembershipIn(RequestModel):
    status: MembershipStatus = MembershipStatus.ADHERENT


class CommunePublic(BaseModel):
    insee: str
    name: str
    departement: str
    population: int
    postcodes: list[str]
    lat: float | None
    lon: float | None


class CptsPublic(BaseModel):
    cpts_id: str
    name: str
    stage: CptsStage
    aci_signed_on: date | None
    missions: list[str]
    population: int
    size_band: int = Field(description="Taille ACI : 1 (< 40 000 hab.), 2 (40 000-80 000), 3 (80 000-175 000), "
                                       "4 (≥ 175 000) ; une borne appartient à la taille supérieure.")
    departements: list[str]
    communes: list[str] = Field(default_factory=list)
    members: int = 0
    registered_at: datetime
    updated_at: datetime | None
