"""HTTP API of the indicators service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from cpts_indicators.repository import professional_figures
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.service import ReadSessionDep

router = APIRouter(prefix="/indicators", tags=["indicateurs"])

Follower = Annotated[Principal, Depends(require_roles(Role.COORDINATOR, Role.ARS))]


class ProfessionalCount(BaseModel):
    cpts_id: str
    members: int = Field(description="Membres de la CPTS (adhérents et actifs).")
    active_members: int
    professionals: int = Field(description="Inscriptions de professionnels comptées depuis les événements du registre.")
    last_event_time: datetime | None


@router.get("/cpts/{cpts_id}/professionals", response_model=ProfessionalCount,
            summary="Nombre de professionnels membres d'une CPTS, tenu à jour depuis les événements du registre.")
async def professionals_of_cpts(cpts_id: str, principal: Follower, session: ReadSessionDep) -> ProfessionalCount:
    if Role.ARS not in principal.roles:
        ensure(principal.can_access_cpts(cpts_id), f"CPTS {cpts_id} is outside your scope.")
    members, active, registrations, last = await professional_figures(session, cpts_id)
    return ProfessionalCount(cpts_id=cpts_id, members=members, active_members=active, professionals=registrations,
                             last_event_time=last)
