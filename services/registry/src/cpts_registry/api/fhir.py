"""FHIR R4 read and search of the registry (`/fhir`): Practitioner, PractitionerRole, Organization and
HealthcareService, shaped after the SAS implementation guide (see `cpts_registry.fhir_mapping`).

Answers are `application/fhir+json`; errors of this API are OperationOutcomes (404 unknown id, 400 bad
search parameter), while 401/403 come from the platform's authentication as problem+json. Search follows
FHIR's lenient handling: unknown parameters are ignored and left out of the `self` link. Paging is
`_count` (default 20, at most 100: a larger value is capped) and `_offset`, with `self`/`previous`/`next`
links. Each page costs a count query and one query per kind of row, never one per resource.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_platform.auth import Principal, Role, require_roles
from cpts_platform.service import ReadSessionDep
from cpts_registry import fhir_mapping as fm
from cpts_registry.repository import ActivityRow, CptsCommuneRow, CptsRow, PracticeSiteRow, ProfessionalRow

DEFAULT_COUNT = 20
MAX_COUNT = 100

Reader = Annotated[Principal, Depends(require_roles(
    Role.SECRETARY, Role.REGULATOR, Role.PROFESSIONAL, Role.COORDINATOR, Role.ARS))]


class FhirResponse(Response):
    media_type = fm.FHIR_JSON


class SearchError(Exception):
    """A search parameter this API cannot accept: answered 400 with an OperationOutcome."""

    def __init__(self, diagnostics: str, *, code: str = "invalid") -> None:
        super().__init__(diagnostics)
        self.code = code
        self.diagnostics = diagnostics


class _FhirRoute(APIRoute):
    """Routes whose SearchError becomes a 400 OperationOutcome (platform errors stay problem+json)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SearchError as exc:
                return _outcome(400, exc.code, exc.diagnostics)

        return route_handler


router = APIRouter(prefix="/fhir", tags=["FHIR"], route_class=_FhirRoute)


_FHIR_BODY = {fm.FHIR_JSON: {"schema": {"type": "object"}}}


def _read_doc(resource: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": f"{resource}.", "content": _FHIR_BODY},
        401: {"description": "Jeton absent ou invalide (problem+json)."},
        403: {"description": "Rôle non autorisé (problem+json)."},
        404: {"description": "Id inconnu (OperationOutcome).", "content": _FHIR_BODY},
    }


def _search_doc(resource: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": f"Bundle searchset de {resource}.", "content": _FHIR_BODY},
        400: {"description": "Paramètre de recherche invalide (OperationOutcome).", "content": _FHIR_BODY},
        401: {"description": "Jeton absent ou invalide (problem+json)."},
        403: {"description": "Rôle non autorisé (problem+json)."},
    }


def _search_params(**described: str) -> dict[str, Any]:
    """OpenAPI description of search parameters that the handler reads itself (FHIR syntax, repeatable)."""
    described |= {"_count": f"Taille de page (défaut {DEFAULT_COUNT}, au plus {MAX_COUNT}).",
                  "_offset": "Rang du premier résultat (défaut 0)."}
    return {"parameters": [
        {"name": name, "in": "query", "required": False, "description": description,
         "schema": {"type": "integer", "minimum": 0 if name == "_offset" else 1} if name in ("_count", "_offset")
         else {"type": "string"}}
        for name, description in described.items()]}


def _fhir(resource: Any, status: int = 200) -> FhirResponse:
    return FhirResponse(content=resource.model_dump_json(exclude_none=True), status_code=status)


def _outcome(status: int, code: str, diagnostics: str) -> FhirResponse:
    return _fhir(fm.operation_outcome(code, diagnostics), status)


def _not_found(resource_type: str, id_: str) -> FhirResponse:
    shown = id_ if fm.FHIR_ID.match(id_) else "(invalid id)"
    return _outcome(404, "not-found", f"{resource_type}/{shown} is not known.")


# --- search parameters -------------------------------------------------------------------------------------

def _split(text: str, separator: str) -> list[str]:
    """Split on `separator` where it is not escaped by a backslash; escapes are kept (see `_unescape`)."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    """FHIR search escapes: `\\|`, `\\,`, `\\$` and `\\\\` stand for the character."""
    out, escaped = [], False
    for char in text:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def _token_values(name: str, raw: str) -> list[tuple[str | None, str]]:
    """Comma-separated tokens `system|value`, `value` or `|value`: (system, value) pairs, system None for
    any system and "" for no system; `system|` has an empty value (any value of that system)."""
    tokens = []
    for item in _split(raw, ","):
        parts = _split(item, "|")
        if len(parts) > 2:
            raise SearchError(f"Malformed token in '{name}': use system|value, value or |value.")
        system, value = (None, parts[0]) if len(parts) == 1 else parts
        system = None if system is None else _unescape(system)
        value = _unescape(value)
        if not value and not system:
            raise SearchError(f"Empty value in '{name}'.")
        tokens.append((system, value))
    return tokens


def _identifier_condition(name: str, raws: list[str], system: str, column: sa.ColumnElement,
                          to_key: Callable[[str], str | None] = lambda v: v) -> sa.ColumnElement[bool]:
    """Conditions for repeated token parameters (AND) of comma-separated values (OR) on one identifier
    `system` whose values `to_key` maps to `column` (None: no resource can match)."""
    conditions = []
    for raw in raws:
        alternatives = []
        for token_system, value in _token_values(name, raw):
            if token_system not in (None, system):
                continue  # another system (or `|value`: no system): none of ours has it
            if not value:
                alternatives.append(sa.true())  # `system|`: any identifier of the system
                continue
            key = to_key(value)
            if key is not None:
                alternatives.append(column == key)
        conditions.append(sa.or_(*alternatives) if alternatives else sa.false())
    return sa.and_(*conditions)


def _reference_condition(name: str, raws: list[str], resource_type: str, column: sa.ColumnElement,
                         to_key: Callable[[str], str | None] = lambda v: v) -> sa.ColumnElement[bool]:
    """`Type/id` or `id` references (a full URL ending in `Type/id` too)."""
    conditions = []
    for raw in raws:
        alternatives = []
        for item in raw.split(","):
            item = item.strip()
            if not item:
                raise SearchError(f"Empty value for '{name}'.")
            parts = item.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] != resource_type:
                continue
            key = to_key(parts[-1])
            if key is not None:
                alternatives.append(column == key)
        conditions.append(sa.or_(*alternatives) if alternatives else sa.false())
    return sa.and_(*conditions)


def _string_condition(name: str, raws: list[str], *columns: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """FHIR string search: starts with, case-insensitive, on any of `columns`."""
    conditions = []
    for raw in raws:
        alternatives = []
        for value in raw.split(","):
            value = value.strip().lower()
            if not value:
                raise SearchError(f"Empty value for '{name}'.")
            pattern = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            alternatives += [sa.func.lower(c).like(pattern, escape="\\") for c in columns]
        conditions.append(sa.or_(*alternatives))
    return sa.and_(*conditions)


def _int_param(request: Request, name: str, default: int, *, minimum: int) -> int:
    values = request.query_params.getlist(name)
    if not values:
        return default
    if len(values) > 1:
        raise SearchError(f"'{name}' may be given once.")
    try:
        number = int(values[0])
    except ValueError:
        raise SearchError(f"'{name}' must be an integer.")
    if number < minimum:
        raise SearchError(f"'{name}' must be at least {minimum}.")
    return number


class Search:
    """The parameters of one search request that this endpoint supports, and its paging."""

    def __init__(self, request: Request, supported: tuple[str, ...]) -> None:
        self.request = request
        self.params = {name: request.query_params.getlist(name) for name in supported
                       if request.query_params.getlist(name)}
        self.count = min(_int_param(request, "_count", DEFAULT_COUNT, minimum=1), MAX_COUNT)
        self.offset = _int_param(request, "_offset", 0, minimum=0)

    def get(self, name: str) -> list[str]:
        return self.params.get(name, [])

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/") + router.prefix

    def links(self, total: int) -> dict[str, str]:
        url = str(self.request.url.replace(query=""))

        def page(offset: int) -> str:
            query = [(name, value) for name, values in self.params.items() for value in values]
            query += [("_count", str(self.count)), ("_offset", str(offset))]
            return f"{url}?{urlencode(query)}"

        links = {"self": page(self.offset)}
        if self.offset > 0:
            links["previous"] = page(max(self.offset - self.count, 0))
        if self.offset + self.count < total:
            links["next"] = page(self.offset + self.count)
        return links


async def _page(session: AsyncSession, search: Search, model: type, where: list, order_by: list,
                ) -> tuple[int, list]:
    total = (await session.exec(select(sa.func.count()).select_from(model).where(*where))).one()
    rows = []
    if search.offset < total:
        query = select(model).where(*where).order_by(*order_by).limit(search.count).offset(search.offset)
        rows = list((await session.exec(query)).all())
    return total, rows


def _search_response(search: Search, resources: list, total: int, included: list = ()) -> FhirResponse:
    return _fhir(fm.searchset(base_url=search.base_url, resources=resources, total=total,
                              links=search.links(total), included=included))


def _finess_of_idnst(value: str) -> str | None:
    return value[1:] if value.startswith("1") and len(value) > 1 else None


def _finess_of_service_id(value: str) -> str | None:
    return value.removeprefix(fm.HEALTHCARE_SERVICE_PREFIX) if value.startswith(fm.HEALTHCARE_SERVICE_PREFIX) \
        else None


# --- loading -----------------------------------------------------------------------------------------------

async def _roles_of(session: AsyncSession, professionals: list[ProfessionalRow]) -> list:
    """The PractitionerRoles of `professionals`: their activities with sites, in one query."""
    if not professionals:
        return []
    by_idnps = {p.idnps: p for p in professionals}
    query = (select(ActivityRow.idnps, PracticeSiteRow)
             .join(PracticeSiteRow, PracticeSiteRow.site_id == ActivityRow.site_id)
             .where(ActivityRow.idnps.in_(list(by_idnps)))
             .order_by(ActivityRow.idnps, ActivityRow.site_id))
    return [fm.practitioner_role(by_idnps[idnps], site) for idnps, site in (await session.exec(query)).all()]


async def _communes_of(session: AsyncSession, cpts_ids: list[str]) -> dict[str, list[str]]:
    """The communes of each CPTS in `cpts_ids`, in one query."""
    found: dict[str, list[str]] = {c: [] for c in cpts_ids}
    if cpts_ids:
        query = select(CptsCommuneRow).where(CptsCommuneRow.cpts_id.in_(cpts_ids))
        for row in (await session.exec(query)).all():
            found[row.cpts_id].append(row.commune_insee)
    return found


# --- Practitioner ------------------------------------------------------------------------------------------

PRACTITIONER_REVINCLUDE = "PractitionerRole:practitioner"
# Supported search parameters (the OpenAPI document describes them; others are ignored, FHIR's lenient mode).
PRACTITIONER_PARAMS = {
    "identifier": "IDNPS : `urn:oid:1.2.250.1.71.4.2.1|{IDNPS}` ou `{IDNPS}` ; "
                  "plusieurs valeurs séparées par des virgules.",
    "name": "Début du nom ou du prénom (casse ignorée).",
    "_revinclude": f"`{PRACTITIONER_REVINCLUDE}` : ajoute les PractitionerRole des professionnels de la page.",
}
PRACTITIONER_ROLE_PARAMS = {
    "practitioner.identifier": "IDNPS du professionnel : `urn:oid:1.2.250.1.71.4.2.1|{IDNPS}` ou `{IDNPS}`.",
    "practitioner": "`Practitioner/{IDNPS}` ou `{IDNPS}`.",
}
ORGANIZATION_PARAMS = {
    "identifier": "IDNST de la CPTS : `urn:oid:1.2.250.1.71.4.2.2|1{FINESS}` ou `1{FINESS}`.",
    "name": "Début du nom (casse ignorée).",
}
HEALTHCARE_SERVICE_PARAMS = {
    "organization.identifier": "IDNST de la CPTS : `urn:oid:1.2.250.1.71.4.2.2|1{FINESS}` ou `1{FINESS}`.",
    "organization": "`Organization/{FINESS}` ou `{FINESS}`.",
}


@router.get("/Practitioner/{id}", response_class=FhirResponse, responses=_read_doc("Practitioner"),
            summary="Lire un professionnel (Practitioner, id = IDNPS).")
async def read_practitioner(id: str, _: Reader, session: ReadSessionDep) -> Response:
    row = await session.get(ProfessionalRow, id)
    if row is None:
        return _not_found("Practitioner", id)
    return _fhir(fm.practitioner(row))


@router.get("/Practitioner", response_class=FhirResponse, responses=_search_doc("Practitioner"),
            summary="Rechercher des professionnels.", openapi_extra=_search_params(**PRACTITIONER_PARAMS))
async def search_practitioner(request: Request, _: Reader, session: ReadSessionDep) -> Response:
    search = Search(request, tuple(PRACTITIONER_PARAMS))
    where = []
    if search.get("identifier"):
        where.append(_identifier_condition("identifier", search.get("identifier"), fm.IDNPS_SYSTEM,
                                           ProfessionalRow.idnps))
    if search.get("name"):
        where.append(_string_condition("name", search.get("name"), ProfessionalRow.family_name,
                                       ProfessionalRow.given_name))
    for value in search.get("_revinclude"):
        if value != PRACTITIONER_REVINCLUDE:
            raise SearchError(f"Only _revinclude={PRACTITIONER_REVINCLUDE} is supported.", code="not-supported")
    total, rows = await _page(session, search, ProfessionalRow, where, [ProfessionalRow.idnps])
    included = await _roles_of(session, rows) if search.get("_revinclude") else []
    return _search_response(search, [fm.practitioner(r) for r in rows], total, included)


# --- PractitionerRole --------------------------------------------------------------------------------------

async def _activity_page(session: AsyncSession, search: Search, where: list) -> tuple[int, list]:
    base = (select(ActivityRow.idnps, ActivityRow.site_id)
            .join(ProfessionalRow, ProfessionalRow.idnps == ActivityRow.idnps).where(*where))
    total = (await session.exec(select(sa.func.count()).select_from(base.subquery()))).one()
    if search.offset >= total:
        return total, []
    query = (select(ProfessionalRow, PracticeSiteRow)
             .join(ActivityRow, ActivityRow.idnps == ProfessionalRow.idnps)
             .join(PracticeSiteRow, PracticeSiteRow.site_id == ActivityRow.site_id)
             .where(*where).order_by(ActivityRow.idnps, ActivityRow.site_id)
             .limit(search.count).offset(search.offset))
    return total, [fm.practitioner_role(p, s) for p, s in (await session.exec(query)).all()]


@router.get("/PractitionerRole/{id}", response_class=FhirResponse, responses=_read_doc("PractitionerRole"),
            summary="Lire une activité (PractitionerRole, id = {IDNPS}-{site}).")
async def read_practitioner_role(id: str, _: Reader, session: ReadSessionDep) -> Response:
    idnps, separator, _site = id.partition("-")
    if not separator:
        return _not_found("PractitionerRole", id)
    query = (select(ProfessionalRow, PracticeSiteRow)
             .join(ActivityRow, ActivityRow.idnps == ProfessionalRow.idnps)
             .join(PracticeSiteRow, PracticeSiteRow.site_id == ActivityRow.site_id)
             .where(ActivityRow.idnps == idnps))
    for professional, site in (await session.exec(query)).all():
        if fm.practitioner_role_id(professional.idnps, site.site_id) == id:
            return _fhir(fm.practitioner_role(professional, site))
    return _not_found("PractitionerRole", id)


@router.get("/PractitionerRole", response_class=FhirResponse, responses=_search_doc("PractitionerRole"),
            summary="Rechercher des activités.", openapi_extra=_search_params(**PRACTITIONER_ROLE_PARAMS))
async def search_practitioner_role(request: Request, _: Reader, session: ReadSessionDep) -> Response:
    search = Search(request, tuple(PRACTITIONER_ROLE_PARAMS))
    where = []
    if search.get("practitioner.identifier"):
        where.append(_identifier_condition("practitioner.identifier", search.get("practitioner.identifier"),
                                           fm.IDNPS_SYSTEM, ActivityRow.idnps))
    if search.get("practitioner"):
        where.append(_reference_condition("practitioner", search.get("practitioner"), "Practitioner",
                                          ActivityRow.idnps))
    total, roles = await _activity_page(session, search, where)
    return _search_response(search, roles, total)


# --- Organization ------------------------------------------------------------------------------------------

@router.get("/Organization/{id}", response_class=FhirResponse, responses=_read_doc("Organization"),
            summary="Lire une CPTS (Organization, id = FINESS).")
async def read_organization(id: str, _: Reader, session: ReadSessionDep) -> Response:
    row = await session.get(CptsRow, id)
    if row is None:
        return _not_found("Organization", id)
    return _fhir(fm.organization(row))


@router.get("/Organization", response_class=FhirResponse, responses=_search_doc("Organization"),
            summary="Rechercher des CPTS.", openapi_extra=_search_params(**ORGANIZATION_PARAMS))
async def search_organization(request: Request, _: Reader, session: ReadSessionDep) -> Response:
    search = Search(request, tuple(ORGANIZATION_PARAMS))
    where = []
    if search.get("identifier"):
        where.append(_identifier_condition("identifier", search.get("identifier"), fm.IDNST_SYSTEM,
                                           CptsRow.cpts_id, _finess_of_idnst))
    if search.get("name"):
        where.append(_string_condition("name", search.get("name"), CptsRow.name))
    total, rows = await _page(session, search, CptsRow, where, [CptsRow.cpts_id])
    return _search_response(search, [fm.organization(r) for r in rows], total)


# --- HealthcareService -------------------------------------------------------------------------------------

@router.get("/HealthcareService/{id}", response_class=FhirResponse, responses=_read_doc("HealthcareService"),
            summary="Lire le service d'une CPTS (HealthcareService, id = cpts-{FINESS}).")
async def read_healthcare_service(id: str, _: Reader, session: ReadSessionDep) -> Response:
    finess = _finess_of_service_id(id)
    row = await session.get(CptsRow, finess) if finess else None
    if row is None:
        return _not_found("HealthcareService", id)
    communes = await _communes_of(session, [row.cpts_id])
    return _fhir(fm.healthcare_service(row, communes[row.cpts_id]))


@router.get("/HealthcareService", response_class=FhirResponse, responses=_search_doc("HealthcareService"),
            summary="Rechercher les services des CPTS.", openapi_extra=_search_params(**HEALTHCARE_SERVICE_PARAMS))
async def search_healthcare_service(request: Request, _: Reader, session: ReadSessionDep) -> Response:
    search = Search(request, tuple(HEALTHCARE_SERVICE_PARAMS))
    where = []
    if search.get("organization.identifier"):
        where.append(_identifier_condition("organization.identifier", search.get("organization.identifier"),
                                           fm.IDNST_SYSTEM, CptsRow.cpts_id, _finess_of_idnst))
    if search.get("organization"):
        where.append(_reference_condition("organization", search.get("organization"), "Organization",
                                          CptsRow.cpts_id))
    total, rows = await _page(session, search, CptsRow, where, [CptsRow.cpts_id])
    communes = await _communes_of(session, [r.cpts_id for r in rows])
    return _search_response(search, [fm.healthcare_service(r, communes[r.cpts_id]) for r in rows], total)
