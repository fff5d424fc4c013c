"""HTTP API of the annual ACI report: the yearly targets of a CPTS, and its report (printable HTML or JSON).

The targets are recorded by the CPTS's coordinators (and admins); they, its secretaries and the ARS of its
départements read them and the report (`authorize` of `routes.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, field_validator

from cpts_indicators.api.routes import CptsId, Follower, authorize
from cpts_indicators.domain.catalogue import catalogue
from cpts_indicators.report import AnnualReport, build_report, check_target, record_targets, render_html
from cpts_indicators.repository import targets_of
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.problems import ProblemError, RequestModel
from cpts_platform.service import DatabaseDep, ReadSessionDep, RuntimeDep

router = APIRouter(prefix="/indicators", tags=["rapport annuel"])

Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
# The ACI was signed in 2019; a contract lasts five years, renewed.
Year = Annotated[int, Path(ge=2019, le=2100, description="Année civile.", examples=[2026])]


class TargetIn(RequestModel):
    indicator: str = Field(description="Identifiant d'un indicateur du catalogue.",
                           examples=["snp.requests.seen_within_48h_share"])
    target: float = Field(description="Valeur visée pour l'année, dans l'unité de l'indicateur.",
                          examples=[80])

    @field_validator("indicator")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in catalogue().by_id:
            raise ValueError("unknown indicator (see /indicators/catalogue)")
        return value


class TargetPublic(BaseModel):
    indicator: str
    label: str
    unit: str
    direction: Literal["up", "down", "neutral"]
    target: float
    recorded_at: datetime


class Targets(BaseModel):
    cpts_id: str
    year: int
    targets: list[TargetPublic]


def _invalid(errors: list[dict[str, str]]) -> ProblemError:
    fields = ", ".join(e["field"] for e in errors)
    return ProblemError(422, f"Invalid request: {fields}", title="Unprocessable Content", errors=errors)


async def _targets(session, cpts_id: str, year: int) -> Targets:
    by_id = catalogue().by_id
    rows = await targets_of(session, cpts_id, year)
    return Targets(cpts_id=cpts_id, year=year, targets=[
        TargetPublic(indicator=r.indicator_id, label=d.label, unit=d.unit, direction=d.direction,
                     target=r.target, recorded_at=r.recorded_at)
        for r in rows if (d := by_id.get(r.indicator_id)) is not None])


@router.get("/cpts/{cpts_id}/targets/{year}", response_model=Targets,
            summary="Les objectifs annuels d'une CPTS, par indicateur.")
async def read_targets(cpts_id: CptsId, year: Year, principal: Follower, session: ReadSessionDep) -> Targets:
    await authorize(principal, cpts_id, session)
    return await _targets(session, cpts_id, year)


@router.put("/cpts/{cpts_id}/targets/{year}", response_model=Targets,
            summary="Fixer les objectifs annuels d'une CPTS (remplace ceux de l'année ; coordinateur de la "
                    "CPTS).")
async def put_targets(cpts_id: CptsId, year: Year, principal: Coordinator, database: DatabaseDep,
                      session: ReadSessionDep,
                      body: Annotated[list[TargetIn], Body(max_length=200)]) -> Targets:
    ensure(principal.can_access_cpts(cpts_id), f"CPTS {cpts_id} is outside your scope.")
    await authorize(principal, cpts_id, session)
    by_id = catalogue().by_id
    errors, seen = [], set()
    for index, item in enumerate(body):
        if item.indicator in seen:
            errors.append({"field": f"{index}.indicator", "in": "body", "message": "indicator given twice"})
        seen.add(item.indicator)
        problem = check_target(by_id[item.indicator], item.target)
        if problem:
            errors.append({"field": f"{index}.target", "in": "body", "message": problem})
    if errors:
        raise _invalid(errors)
    await record_targets(database=database, cpts_id=cpts_id, year=year,
                         targets={item.indicator: item.target for item in body},
                         recorded_by=principal.subject, now=datetime.now(UTC))
    async with database.sessions() as fresh:  # the request's read session predates the write
        return await _targets(fresh, cpts_id, year)


@router.get("/cpts/{cpts_id}/report/{year}", response_model=AnnualReport,
            summary="Le rapport annuel ACI d'une CPTS : page HTML imprimable (défaut) ou JSON "
                    "(`format=json`).",
            responses={200: {"content": {"text/html": {}},
                             "description": "Page HTML en français, imprimable en PDF ; JSON avec "
                                            "`format=json`."}})
async def annual_report(cpts_id: CptsId, year: Year, principal: Follower, session: ReadSessionDep,
                        runtime: RuntimeDep,
                        format: Annotated[Literal["html", "json"], Query(
                            description="`html` (défaut) ou `json`.")] = "html"):
    await authorize(principal, cpts_id, session)
    report = await build_report(session, cpts_id=cpts_id, year=year,
                                threshold=runtime.settings.small_cell_threshold)  # type: ignore[attr-defined]
    if format == "json":
        return report
    return HTMLResponse(render_html(report))
