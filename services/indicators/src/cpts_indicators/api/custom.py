"""HTTP API of the custom indicators of a CPTS, and the regional view for the ARS.

- Custom indicators (`domain/custom.py`): the coordinator of a CPTS (or an admin) defines, lists, reads and
  deletes (deactivates) its own indicators; their values come with the built-in ones in the CPTS's values,
  series and exports (`api/routes.py`), computed from the facts kept since the beginning and masked alike.
  Those who follow the CPTS (its coordinators and secretaries, the ARS of its départements) read them.
- Regional view: every CPTS of a région with its stage, size band, population, members and active members,
  and the share of the région's population covered by an operating CPTS (ACI signed), for the ARS whose
  départements are in the région, and admins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from cpts_indicators.api.routes import CptsId, Follower, authorize
from cpts_indicators.domain.catalogue import catalogue
from cpts_indicators.domain.custom import (
    FACT_KINDS,
    SLUG_PATTERN,
    CustomPart,
    InvalidDefinition,
    check_definition,
    indicator_id,
)
from cpts_indicators.repository import CustomIndicator, custom_indicator, custom_indicators_of, registry_cpts
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.problems import ProblemError, RequestModel
from cpts_platform.service import DatabaseDep, ReadSessionDep

router = APIRouter(prefix="/indicators", tags=["indicateurs personnalisés"])

Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
Regional = Annotated[Principal, Depends(require_roles(Role.ARS))]
Slug = Annotated[str, Path(pattern=SLUG_PATTERN, description="Identifiant de l'indicateur dans la CPTS.",
                           examples=["demandes_sas_jour"])]
OPERATING_STAGE = "aci_signed"


class CustomIndicatorIn(RequestModel):
    id: str = Field(pattern=SLUG_PATTERN, description="Identifiant (minuscules, chiffres, _), unique dans la "
                    "CPTS ; l'indicateur s'appelle ensuite `custom.<id>`.", examples=["demandes_sas_jour"])
    label: str = Field(min_length=1, max_length=200, examples=["Demandes du SAS pour le jour même"])
    description: str = Field(default="", max_length=1000)
    unit: str = Field(min_length=1, max_length=40, examples=["demandes"])
    direction: Literal["up", "down", "neutral"] = Field(description="Sens de progression attendu.")
    kind: Literal["count", "ratio"] = Field(description="count : nombre de faits ; ratio : numérateur / "
                                                        "dénominateur (multiplié par `scale`).")
    numerator: CustomPart = Field(description="Les faits comptés (le numérateur d'un ratio).")
    denominator: CustomPart | None = Field(default=None, description="Le dénominateur d'un ratio.")
    scale: float = Field(default=100, ge=1, le=1000, description="Multiplicateur d'un ratio (100 : un pourcentage).")


class CustomIndicatorPublic(BaseModel):
    id: str
    indicator_id: str = Field(description="Identifiant dans les valeurs, séries et exports de la CPTS.",
                              examples=["custom.demandes_sas_jour"])
    version: int = Field(description="Incrémentée quand l'indicateur est redéfini après suppression.")
    active: bool
    label: str
    description: str
    unit: str
    direction: Literal["up", "down", "neutral"]
    kind: Literal["count", "ratio"]
    numerator: CustomPart
    denominator: CustomPart | None
    scale: float
    updated_at: datetime

    @classmethod
    def of(cls, row: CustomIndicator) -> CustomIndicatorPublic:
        return cls(id=row.slug, indicator_id=indicator_id(row.slug), version=row.version, active=row.active,
                   label=row.label, description=row.description, unit=row.unit,
                   direction=row.direction,  # type: ignore[arg-type]
                   kind=row.kind,  # type: ignore[arg-type]
                   numerator=CustomPart.model_validate(row.numerator),
                   denominator=CustomPart.model_validate(row.denominator) if row.denominator else None,
                   scale=row.scale, updated_at=row.updated_at)


class FactKindPublic(BaseModel):
    fact: str
    label: str
    filters: dict[str, list[str | bool]] = Field(description="Attributs filtrables et leurs valeurs.")


def _ensure_coordinator(principal: Principal, cpts_id: str) -> None:
    ensure(Role.ADMIN in principal.roles
           or (Role.COORDINATOR in principal.roles and principal.can_access_cpts(cpts_id)),
           f"Only the coordinator of CPTS {cpts_id} defines its indicators.")


@router.get("/custom-facts", response_model=list[FactKindPublic],
            summary="Les types de faits qu'un indicateur personnalisé peut compter, leurs filtres et valeurs.")
async def custom_facts(_: Follower) -> list[FactKindPublic]:
    return [FactKindPublic(fact=name, label=kind.label,
                           filters={a: list(values) for a, values in kind.attributes.items()})
            for name, kind in FACT_KINDS.items()]


@router.post("/cpts/{cpts_id}/custom", response_model=CustomIndicatorPublic, status_code=201,
             summary="Définir un indicateur personnalisé de la CPTS (comptage ou ratio de comptages de faits).")
async def create_custom(cpts_id: CptsId, body: CustomIndicatorIn, principal: Coordinator,
                        database: DatabaseDep, response: Response) -> CustomIndicatorPublic:
    _ensure_coordinator(principal, cpts_id)
    try:
        check_definition(catalogue(), slug=body.id, version=1, label=body.label, description=body.description,
                         unit=body.unit, direction=body.direction, kind=body.kind, numerator=body.numerator,
                         denominator=body.denominator, scale=body.scale)
    except InvalidDefinition as exc:
        fields = [field for field, _ in exc.errors]
        raise ProblemError(422, "Invalid definition: " + ", ".join(fields) + ".", title="Unprocessable Content",
                           errors=[{"field": field, "in": "body", "message": message}
                                   for field, message in exc.errors]) from None
    now = datetime.now(UTC)
    try:
        async with database.transaction() as session:
            await authorize(principal, cpts_id, session)
            row = await custom_indicator(session, cpts_id, body.id, for_update=True)
            if row is not None and row.active:
                raise ProblemError(409, f"CPTS {cpts_id} already has an indicator {body.id}.")
            version = row.version + 1 if row is not None else 1
            row = row or CustomIndicator(cpts_id=cpts_id, slug=body.id, label=body.label, unit=body.unit,
                                         direction=body.direction, kind=body.kind, updated_at=now,
                                         updated_by=principal.subject)
            for name, value in {"version": version, "active": True, "label": body.label,
                                "description": body.description, "unit": body.unit, "direction": body.direction,
                                "kind": body.kind, "scale": body.scale if body.kind == "ratio" else 1.0,
                                "numerator": body.numerator.model_dump(),
                                "denominator": body.denominator.model_dump() if body.denominator else None,
                                "updated_at": now, "updated_by": principal.subject}.items():
                setattr(row, name, value)
            session.add(row)
            await session.flush()
            created = CustomIndicatorPublic.of(row)
    except sa.exc.IntegrityError:
        raise ProblemError(409, f"CPTS {cpts_id} already has an indicator {body.id}.") from None
    response.headers["Location"] = f"/indicators/cpts/{cpts_id}/custom/{body.id}"
    return created


@router.get("/cpts/{cpts_id}/custom", response_model=list[CustomIndicatorPublic],
            summary="Les indicateurs personnalisés de la CPTS.")
async def list_custom(cpts_id: CptsId, principal: Follower, session: ReadSessionDep,
                      inactive: Annotated[bool, Query(description="Inclure les indicateurs supprimés.")] = False
                      ) -> list[CustomIndicatorPublic]:
    await authorize(principal, cpts_id, session)
    rows = await custom_indicators_of(session, cpts_id, active_only=not inactive)
    return [CustomIndicatorPublic.of(row) for row in rows]


@router.get("/cpts/{cpts_id}/custom/{slug}", response_model=CustomIndicatorPublic,
            summary="Un indicateur personnalisé de la CPTS (ses valeurs : `GET /indicators/cpts/{cpts_id}/"
                    "series/custom.{slug}`).")
async def read_custom(cpts_id: CptsId, slug: Slug, principal: Follower, session: ReadSessionDep
                      ) -> CustomIndicatorPublic:
    await authorize(principal, cpts_id, session)
    row = await custom_indicator(session, cpts_id, slug)
    if row is None:
        raise ProblemError(404, f"No indicator {slug} in CPTS {cpts_id}.")
    return CustomIndicatorPublic.of(row)


@router.delete("/cpts/{cpts_id}/custom/{slug}", status_code=204, response_class=Response,
               summary="Supprimer (désactiver) un indicateur personnalisé : il n'apparaît plus dans les valeurs.")
async def delete_custom(cpts_id: CptsId, slug: Slug, principal: Coordinator, database: DatabaseDep) -> Response:
    _ensure_coordinator(principal, cpts_id)
    async with database.transaction() as session:
        await authorize(principal, cpts_id, session)
        row = await custom_indicator(session, cpts_id, slug, for_update=True)
        if row is None or not row.active:
            raise ProblemError(404, f"No indicator {slug} in CPTS {cpts_id}.")
        row.active = False
        row.updated_at = datetime.now(UTC)
        row.updated_by = principal.subject
        session.add(row)
    return Response(status_code=204)


# Regional view ------------------------------------------------------------------------------------------------


class RegionalCpts(BaseModel):
    cpts_id: str
    name: str | None
    stage: Literal["letter_of_intent", "health_project_validated", "aci_signed"] | None = Field(
        description="Étape : lettre d'intention, projet de santé validé, ACI signé.")
    operating: bool = Field(description="En fonctionnement : ACI signé.")
    size_band: int | None = Field(description="Taille ACI (1 : <40k, 2 : 40-80k, 3 : 80-175k, 4 : ≥175k).")
    population: int | None = Field(description="Population couverte selon le registre.")
    departements: list[str]
    members: int = Field(description="Membres (adhérents et actifs).")
    active_members: int


class RegionalView(BaseModel):
    region_code: str = Field(examples=["84"])
    region_name: str
    departements: list[str]
    population: int = Field(description="Population municipale de la région (INSEE).")
    population_covered: int = Field(description="Population couverte par une CPTS en fonctionnement.")
    covered_share: float | None = Field(
        description="Part de la population de la région couverte par une CPTS en fonctionnement (%).")
    computed_at: datetime
    cpts: list[RegionalCpts]


@lru_cache(maxsize=1)
def _regions() -> dict[str, tuple[str, list[str], int]]:
    """Région code -> (name, départements, municipal population), from the reference data of `cpts_geo`
    (INSEE COG and populations, Licence Ouverte; arrondissements are inside their commune's population)."""
    from cpts_geo.communes import communes, departements

    out: dict[str, tuple[str, list[str], int]] = {}
    for code, d in sorted(departements().items()):
        name, codes, _ = out.get(d.region_code, (d.region_name, [], 0))
        out[d.region_code] = (name, [*codes, code], 0)
    population: dict[str, int] = {}
    for commune in communes():
        if commune.kind == "COM":
            population[commune.region] = population.get(commune.region, 0) + commune.population
    return {code: (name, codes, population.get(code, 0)) for code, (name, codes, _) in out.items()}


def regional_view(region_code: str, cpts: list[dict[str, Any]], *, now: datetime) -> RegionalView:
    """The CPTS whose territory touches a département of the région, and the share of its population the
    operating ones cover (their registry population: a commune belongs to one CPTS at most, so they never
    overlap; a CPTS across two régions counts whole in each)."""
    name, departements, population = _regions()[region_code]
    inside = [c for c in cpts if set(c.get("departements") or []) & set(departements)]
    rows = [RegionalCpts(cpts_id=c["cpts_id"], name=c.get("name"), stage=c.get("stage"),
                         operating=c.get("stage") == OPERATING_STAGE, size_band=c.get("size_band"),
                         population=c.get("population"), departements=c.get("departements") or [],
                         members=c.get("members", 0), active_members=c.get("active_members", 0))
            for c in inside]
    covered = sum(r.population or 0 for r in rows if r.operating)
    share = round(min(100.0, 100 * covered / population), 1) if population else None
    return RegionalView(region_code=region_code, region_name=name, departements=departements,
                        population=population, population_covered=covered, covered_share=share,
                        computed_at=now, cpts=sorted(rows, key=lambda r: ((r.name or "").lower(), r.cpts_id)))


@router.get("/regions/{region_code}", response_model=RegionalView, tags=["indicateurs"],
            summary="Vue régionale pour l'ARS : chaque CPTS de la région (étape, taille, population, membres) et "
                    "la part de la population couverte par une CPTS en fonctionnement.")
async def region(region_code: Annotated[str, Path(pattern=r"^\d{2}$", description="Code INSEE de la région.",
                                                  examples=["84"])],
                 principal: Regional, session: ReadSessionDep) -> RegionalView:
    regions = _regions()
    if region_code not in regions:
        raise ProblemError(404, f"No région {region_code}.")
    ensure(any(principal.can_access_departement(d) for d in regions[region_code][1]),
           f"Région {region_code} is outside your départements.")
    return regional_view(region_code, await registry_cpts(session), now=datetime.now(UTC))
