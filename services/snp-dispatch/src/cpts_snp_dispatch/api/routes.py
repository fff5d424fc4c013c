"""HTTP API of snp-dispatch."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from cpts_platform.auth import Principal, Role, require_roles
from cpts_platform.problems import ProblemError
from cpts_platform.service import ReadSessionDep
from cpts_snp_dispatch.repository import get_professional

router = APIRouter(tags=["effecteurs"])

Dispatcher = Annotated[Principal, Depends(require_roles(Role.REGULATOR, Role.SECRETARY, Role.COORDINATOR))]


class EffecteurPublic(BaseModel):
    idnps: str
    family_name: str
    given_name: str
    profession_code: str
    specialty_code: str | None
    commune_insee: str | None
    cpts_ids: list[str]
    active: bool
    sites: list[dict]
    sas_participant: bool
    sas_mode: str | None
    accepts_en_sus: bool
    en_sus_weekly_cap: int | None
    updated_at: datetime


@router.get("/effecteurs/{idnps}", response_model=EffecteurPublic,
            summary="Un professionnel tel que connu pour l'orientation (modèle de lecture du registre).")
async def read_effecteur(idnps: str, _: Dispatcher, session: ReadSessionDep) -> EffecteurPublic:
    row = await get_professional(session, idnps)
    if row is None:
        raise ProblemError(404, f"No professional {idnps}.")
    return EffecteurPublic.model_validate(row, from_attributes=True)
