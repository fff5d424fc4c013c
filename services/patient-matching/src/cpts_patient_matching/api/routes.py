"""HTTP API of patient-matching."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from cpts_patient_matching.repository import get_gp
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.problems import ProblemError
from cpts_platform.service import ReadSessionDep

router = APIRouter(tags=["médecins"])

Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]


class GpPublic(BaseModel):
    idnps: str
    commune_insee: str | None
    cpts_ids: list[str]
    active: bool
    accepting: bool
    new_patients_per_month: int
    publics: list[str]
    accepting_until: date | None
    updated_at: datetime


@router.get("/gps/{idnps}", response_model=GpPublic,
            summary="Un médecin généraliste pouvant devenir médecin traitant, dans une CPTS du coordinateur.")
async def read_gp(idnps: str, principal: Coordinator, session: ReadSessionDep) -> GpPublic:
    row = await get_gp(session, idnps)
    if row is None:
        raise ProblemError(404, f"No GP {idnps}.")
    ensure(any(principal.can_access_cpts(c) for c in row.cpts_ids), "This GP is in no CPTS of yours.")
    return GpPublic.model_validate(row, from_attributes=True)
