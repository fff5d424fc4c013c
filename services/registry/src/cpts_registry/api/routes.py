"""REST API of the registry: professionals, their SAS participation and MT capacity, CPTS, communes."""

from __future__ import annotations

from typing import Annotated, Callable

from fastapi import APIRouter, Depends, Query, Response

from cpts_geo import communes as commune_directory
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.problems import ProblemError
from cpts_platform.service import DatabaseDep, ReadSessionDep
from cpts_registry import handlers, queries
from cpts_registry.api.schemas import (
    CommunePublic,
    CptsCreate,
    CptsPublic,
    MembershipIn,
    MtCapacityIn,
    MtCapacityPublic,
    ProfessionalCreate,
    ProfessionalDetail,
    ProfessionalPage,
    ProfessionalPublic,
    ProfessionalUpdate,
    SasParticipationIn,
    SasParticipationPublic,
    StageIn,
    TerritoryIn,
)
from cpts_registry.domain.cpts import (
    CptsAlreadyRegistered,
    TerritoryConflict,
    UnknownCommune,
    UnknownCpts,
)
from cpts_registry.domain.professional import NewProfessional, ProfessionalAlreadyRegistered, UnknownProfessional

professionals = APIRouter(prefix="/professionals", tags=["professionnels"])
cpts = APIRouter(prefix="/cpts", tags=["CPTS"])
communes = APIRouter(prefix="/communes", tags=["communes"])

Reader = Annotated[Principal, Depends(require_roles(
    Role.SECRETARY, Role.REGULATOR, Role.PROFESSIONAL, Role.COORDINATOR, Role.ARS))]
Manager = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
Admin = Annotated[Principal, Depends(require_roles())]
SelfOrAdmin = Annotated[Principal, Depends(require_roles(Role.PROFESSIONAL))]


def _invalid(field: str, value: str, message: str) -> ProblemError:
    return ProblemError(422, f"{field}: {message}", title="Unprocessable Content",
                        errors=[{"field": field, "in": "body", "value": value, "message": message}])


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, f"No {what}.")


# The registry's domain exceptions as problem answers, naming the field and the value (installed in app.py).
DOMAIN_PROBLEMS: dict[type[Exception], Callable[[Exception], ProblemError]] = {
    UnknownProfessional: lambda exc: _not_found(f"professional {exc.idnps}"),
    UnknownCpts: lambda exc: _not_found(f"CPTS {exc.cpts_id}"),
    UnknownCommune: lambda exc: _invalid("communes", exc.insee, f"unknown commune {exc.insee}"),
    TerritoryConflict: lambda exc: ProblemError(
        409, f"Commune {exc.insee} already belongs to CPTS {exc.other_cpts}.",
        errors=[{"field": "communes", "in": "body", "value": exc.insee, "message": f"already in CPTS {exc.other_cpts}"}]),
    ProfessionalAlreadyRegistered: lambda exc: ProblemError(409, f"Professional {exc.idnps} is already registered."),
    CptsAlreadyRegistered: lambda exc: ProblemError(409, f"CPTS {exc.cpts_id} is already registered."),
}


@professionals.post("", status_code=201, response_model=ProfessionalDetail,
                    summary="Enregistrer un professionnel (et ses adhésions à des CPTS).",
                    responses={409: {"description": "Déjà enregistré."}})
async def register_professional(body: ProfessionalCreate, principal: Manager, database: DatabaseDep
                                ) -> ProfessionalDetail:
    for cpts_id in body.cpts_ids:
        ensure(principal.can_access_cpts(cpts_id), f"CPTS {cpts_id} is outside your scope.")
    _check_commune(body.commune_insee)
    try:
        return await handlers.register_professional(
            database=database,
            professional=NewProfessional(**body.model_dump(exclude={"cpts_ids"}), cpts_ids=tuple(body.cpts_ids)),
            answer=lambda session: queries.professional_detail(session, body.idnps))
    except UnknownCpts as exc:
        # Here the CPTS is a reference in the body, not the resource of the path.
        raise _invalid("cpts_ids", exc.cpts_id, f"unknown CPTS {exc.cpts_id}")


def _check_commune(insee: str | None, field: str = "commune_insee") -> None:
    if insee is not None and insee not in commune_directory():
        raise _invalid(field, insee, f"unknown commune {insee}")


@professionals.get("", response_model=ProfessionalPage, summary="Rechercher des professionnels.")
async def search_professionals(
    _: Reader, session: ReadSessionDep,
    name: Annotated[str | None, Query(max_length=100, description="Début du nom d'exercice.")] = None,
    profession: Annotated[str | None, Query(pattern=r"^\d{1,3}$")] = None,
    specialty: Annotated[str | None, Query(pattern=r"^[A-Z]{1,3}\d{1,3}$")] = None,
    commune: Annotated[str | None, Query(pattern=r"^(\d{5}|2[AB]\d{3})$",
                                         description="Commune d'exercice, ou centre de la recherche avec radius_km.")]
    = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    radius_km: Annotated[float | None, Query(gt=0, le=200)] = None,
    cpts_id: Annotated[str | None, Query(pattern=r"^\d{2}[0-9AB]\d{6}$")] = None,
    active: bool | None = True,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ProfessionalPage:
    center = None
    if radius_km is not None:
        if commune is not None:
            found = commune_directory().get(commune)
            if found is None or found.lat is None:
                raise _invalid("commune", commune, "unknown commune")
            center = (found.lat, found.lon)
        elif lat is not None and lon is not None:
            center = (lat, lon)
        else:
            raise _invalid("radius_km", str(radius_km), "needs a commune or lat and lon as centre")
    items, total = await queries.search_professionals(
        session, name=name, profession=profession, specialty=specialty,
        commune=None if center else commune, center=center, radius_km=radius_km, cpts_id=cpts_id, active=active,
        limit=limit, offset=offset)
    return ProfessionalPage(items=items, total=total, limit=limit, offset=offset)


@professionals.get("/{idnps}", response_model=ProfessionalDetail,
                   summary="Un professionnel, ses lieux d'exercice, ses CPTS, sa participation au SAS et sa capacité MT.")
async def read_professional(idnps: str, _: Reader, session: ReadSessionDep) -> ProfessionalDetail:
    detail = await queries.professional_detail(session, idnps)
    if detail is None:
        raise _not_found(f"professional {idnps}")
    return detail


@professionals.patch("/{idnps}", response_model=ProfessionalPublic, summary="Corriger un professionnel.")
async def update_professional(idnps: str, body: ProfessionalUpdate, _: Admin, database: DatabaseDep
                              ) -> ProfessionalPublic:
    _check_commune(body.commune_insee)
    return await handlers.update_professional(database=database, idnps=idnps,
                                              changes=body.model_dump(exclude_unset=True),
                                              answer=lambda session: queries.professional_detail(session, idnps))


@professionals.post("/{idnps}/deactivate", response_model=ProfessionalPublic,
                    summary="Désactiver un professionnel qui n'exerce plus.")
async def deactivate(idnps: str, _: Admin, database: DatabaseDep) -> ProfessionalPublic:
    return await handlers.deactivate_professional(
        database=database, idnps=idnps, answer=lambda session: queries.professional_detail(session, idnps))


def _own(principal: Principal, idnps: str) -> None:
    ensure(principal.is_professional(idnps), "Only the professional themself (or an admin) may change this.")


@professionals.put("/{idnps}/sas-participation", response_model=SasParticipationPublic,
                   summary="Déclarer ou modifier sa participation au SAS (au moins 2 h par semaine).")
async def put_sas_participation(idnps: str, body: SasParticipationIn, principal: SelfOrAdmin,
                                database: DatabaseDep) -> SasParticipationPublic:
    _own(principal, idnps)
    row = await handlers.set_sas_participation(database=database, idnps=idnps, participation=(
        handlers.SasParticipation(**body.model_dump())))
    return SasParticipationPublic.model_validate(row, from_attributes=True)


@professionals.delete("/{idnps}/sas-participation", status_code=204, summary="Mettre fin à sa participation au SAS.")
async def end_sas_participation(idnps: str, principal: SelfOrAdmin, database: DatabaseDep) -> Response:
    _own(principal, idnps)
    await handlers.set_sas_participation(database=database, idnps=idnps, participation=None)
    return Response(status_code=204)


@professionals.put("/{idnps}/mt-capacity", response_model=MtCapacityPublic,
                   summary="Déclarer sa capacité à prendre de nouveaux patients comme médecin traitant.")
async def put_mt_capacity(idnps: str, body: MtCapacityIn, principal: SelfOrAdmin, database: DatabaseDep,
                          session: ReadSessionDep) -> MtCapacityPublic:
    _own(principal, idnps)
    if body.accepting:
        professional = await queries.professional_detail(session, idnps)
        if professional is not None and professional.profession_code != "10":
            raise _invalid("accepting", "true", "only physicians can be médecin traitant")
    row = await handlers.set_mt_capacity(database=database, idnps=idnps, capacity=handlers.MtCapacity(
        accepting=body.accepting, new_patients_per_month=body.new_patients_per_month,
        publics=tuple(body.publics), until=body.until))
    return MtCapacityPublic.model_validate(row, from_attributes=True)


@cpts.post("", status_code=201, response_model=CptsPublic, summary="Enregistrer une CPTS et son territoire.",
           responses={409: {"description": "CPTS déjà enregistrée, ou commune déjà dans une autre CPTS."}})
async def register_cpts(body: CptsCreate, _: Admin, database: DatabaseDep) -> CptsPublic:
    return await handlers.register_cpts(database=database, cpts_id=body.cpts_id, name=body.name,
                                        communes=body.communes, stage=body.stage, aci_signed_on=body.aci_signed_on,
                                        missions=[m.value for m in body.missions],
                                        answer=lambda session: queries.cpts_detail(session, body.cpts_id))


@cpts.get("", response_model=list[CptsPublic], summary="Les CPTS (d'un département, ou toutes).")
async def list_cpts(_: Reader, session: ReadSessionDep,
                    departement: Annotated[str | None, Query(pattern=r"^(\d{2,3}|2[AB])$")] = None
                    ) -> list[CptsPublic]:
    return await queries.list_cpts(session, departement=departement)


@cpts.get("/{cpts_id}", response_model=CptsPublic, summary="Une CPTS, son territoire, sa population et sa taille.")
async def read_cpts(cpts_id: str, _: Reader, session: ReadSessionDep) -> CptsPublic:
    found = await queries.cpts_detail(session, cpts_id)
    if found is None:
        raise _not_found(f"CPTS {cpts_id}")
    return found


def _manages(principal: Principal, cpts_id: str) -> None:
    ensure(principal.can_access_cpts(cpts_id), f"CPTS {cpts_id} is outside your scope.")


@cpts.put("/{cpts_id}/territory", response_model=CptsPublic, summary="Changer les communes d'une CPTS.")
async def put_territory(cpts_id: str, body: TerritoryIn, principal: Manager, database: DatabaseDep) -> CptsPublic:
    _manages(principal, cpts_id)
    return await handlers.change_territory(database=database, cpts_id=cpts_id, communes=body.communes,
                                           answer=lambda session: queries.cpts_detail(session, cpts_id))


@cpts.put("/{cpts_id}/stage", response_model=CptsPublic,
          summary="Changer l'étape d'une CPTS (lettre d'intention, projet de santé validé, ACI signé).")
async def put_stage(cpts_id: str, body: StageIn, _: Admin, database: DatabaseDep) -> CptsPublic:
    return await handlers.change_stage(database=database, cpts_id=cpts_id, stage=body.stage,
                                       aci_signed_on=body.aci_signed_on, missions=[m.value for m in body.missions],
                                       answer=lambda session: queries.cpts_detail(session, cpts_id))


@cpts.get("/{cpts_id}/members", response_model=ProfessionalPage, summary="Les membres d'une CPTS.")
async def members(cpts_id: str, _: Reader, session: ReadSessionDep,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> ProfessionalPage:
    items, total = await queries.search_professionals(session, cpts_id=cpts_id, active=None, limit=limit,
                                                      offset=offset)
    return ProfessionalPage(items=items, total=total, limit=limit, offset=offset)


@cpts.put("/{cpts_id}/members/{idnps}", status_code=204, summary="Ajouter un membre ou changer son statut.")
async def put_member(cpts_id: str, idnps: str, body: MembershipIn, principal: Manager,
                     database: DatabaseDep) -> Response:
    _manages(principal, cpts_id)
    await handlers.set_membership(database=database, cpts_id=cpts_id, idnps=idnps, status=body.status)
    return Response(status_code=204)


@cpts.delete("/{cpts_id}/members/{idnps}", status_code=204, summary="Retirer un membre.")
async def delete_member(cpts_id: str, idnps: str, principal: Manager, database: DatabaseDep) -> Response:
    _manages(principal, cpts_id)
    await handlers.set_membership(database=database, cpts_id=cpts_id, idnps=idnps, status=None)
    return Response(status_code=204)


@communes.get("", response_model=list[CommunePublic],
              summary="Autocomplétion des communes par début de nom ou de code postal.")
async def search_communes(_: Reader, q: Annotated[str, Query(min_length=2, max_length=60)],
                          limit: Annotated[int, Query(ge=1, le=50)] = 10) -> list[CommunePublic]:
    return [CommunePublic(insee=c.insee, name=c.name, departement=c.departement, population=c.population,
                          postcodes=list(c.postcodes), lat=c.lat, lon=c.lon) for c in commune_directory().search(q, limit)]


@communes.get("/{insee}", response_model=CommunePublic, summary="Une commune.")
async def read_commune(insee: str, _: Reader) -> CommunePublic:
    c = commune_directory().get(insee)
    if c is None:
        raise _not_found(f"commune {insee}")
    return CommunePublic(insee=c.insee, name=c.name, departement=c.departement, population=c.population,
                         postcodes=list(c.postcodes), lat=c.lat, lon=c.lon)


routers = [professionals, cpts, communes]
