"""HTTP API of the indicators service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from cpts_indicators.repository import get_professional_count
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.service import ReadSessionDep

router = APIRouter(prefix="/indicators", tags=["indicateurs"])

Follower = Annotated[Principal, Depends(require_roles(Role.COORDINATOR, Role.ARS))]


class ProfessionalCount(BaseModel):
    cpts_id: str
    professionals: int
    last_event_time: datetime | None


@router.get("/cpts/{cpts_id}/professionals", response_model=ProfessionalCount,
            summary="Nombre de professionnels membres d'une CPTS, tenu à jour depuis les événements du registre.")
async def professionals_of_cpts(cpts_id: str, principal: Follower, session: ReadSessionDep) -> ProfessionalCount:
    if Role.ARS not in principal.roles:
        ensure(principal.can_access_cpts(cpts_id), f"CPTS {cpts_id} is outside your scope.")
    row = await get_professional_count(session, cpts_id)
    return ProfessionalCount(cpts_id=cpts_id, professionals=row.professionals if row else 0,
                             last_event_time=row.last_event_time if row else None)
