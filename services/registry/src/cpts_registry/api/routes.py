"""HTTP API of the registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.problems import ProblemError
from cpts_platform.service import DatabaseDep, ReadSessionDep, RuntimeDep
from cpts_registry import handlers
from cpts_registry.api.schemas import ProfessionalCreate, ProfessionalPage, ProfessionalPublic
from cpts_registry.domain.professional import NewProfessional, ProfessionalAlreadyRegistered
from cpts_registry.repository import get_professional, list_professionals

router = APIRouter(prefix="/professionals", tags=["professionnels"])

Manager = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
Reader = Annotated[Principal, Depends(require_roles(
    Role.SECRETARY, Role.REGULATOR, Role.PROFESSIONAL, Role.COORDINATOR, Role.ARS))]


@router.post("", status_code=201, response_model=ProfessionalPublic, summary="Enregistrer un professionnel.",
             responses={409: {"description": "Professionnel déjà enregistré."}})
async def register_professional(body: ProfessionalCreate, principal: Manager, database: DatabaseDep,
                                runtime: RuntimeDep) -> ProfessionalPublic:
    for cpts_id in body.cpts_ids:
        ensure(principal.can_access_cpts(cpts_id), f"CPTS {cpts_id} is outside your scope.")
    try:
        row = await handlers.register_professional(
            database=database, source=runtime.settings.source,
            professional=NewProfessional(**body.model_dump(exclude={"cpts_ids"}), cpts_ids=tuple(body.cpts_ids)),
        )
    except ProfessionalAlreadyRegistered as exc:
        raise ProblemError(409, f"Professional {exc.idnps} is already registered.")
    return ProfessionalPublic.model_validate(row, from_attributes=True)


@router.get("/{idnps}", response_model=ProfessionalPublic, summary="Lire un professionnel.")
async def read_professional(idnps: str, _: Reader, session: ReadSessionDep) -> ProfessionalPublic:
    row = await get_professional(session, idnps)
    if row is None:
        raise ProblemError(404, f"No professional {idnps}.")
    return ProfessionalPublic.model_validate(row, from_attributes=True)


@router.get("", response_model=ProfessionalPage, summary="Lister les professionnels.")
async def list_all(_: Reader, session: ReadSessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   offset: Annotated[int, Query(ge=0)] = 0) -> ProfessionalPage:
    rows = await list_professionals(session, limit=limit, offset=offset)
    return ProfessionalPage(items=[ProfessionalPublic.model_validate(r, from_attributes=True) for r in rows],
                            limit=limit, offset=offset)
