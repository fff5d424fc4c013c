"""Request and response bodies of the registry API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from cpts_platform.problems import RequestModel
from cpts_registry.domain.professional import FINESS_PATTERN, IDNPS_PATTERN, INSEE_PATTERN


class ProfessionalCreate(RequestModel):
    idnps: str = Field(pattern=IDNPS_PATTERN, description="Identifiant national : 8 + RPPS ou 0 + ADELI.",
                       examples=["810001234567"])
    family_name: str = Field(min_length=1, max_length=100, examples=["Martin"])
    given_name: str = Field(min_length=1, max_length=100, examples=["Claire"])
    profession_code: str = Field(pattern=r"^\d{1,3}$", description="Code profession RPPS (10 = médecin).",
                                 examples=["10"])
    specialty_code: str | None = Field(default=None, pattern=r"^[A-Z]{1,3}\d{1,3}$", examples=["SM54"])
    commune_insee: str | None = Field(default=None, pattern=INSEE_PATTERN, examples=["69123"])
    cpts_ids: list[Annotated[str, Field(pattern=FINESS_PATTERN)]] = Field(
        default_factory=list, max_length=20, description="FINESS des CPTS dont le professionnel est membre."
    )


class ProfessionalPublic(BaseModel):
    idnps: str
    family_name: str
    given_name: str
    profession_code: str
    specialty_code: str | None
    commune_insee: str | None
    cpts_ids: list[str]
    active: bool
    registered_at: datetime


class ProfessionalPage(BaseModel):
    items: list[ProfessionalPublic]
    limit: int
    offset: int
