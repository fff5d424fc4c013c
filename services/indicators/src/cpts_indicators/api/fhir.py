"""FHIR R4 views of the indicators (`/fhir`): the catalogue as one `Measure`, a CPTS's values for a period
as a summary `MeasureReport`.

- `GET /fhir/Measure`: a searchset Bundle holding one Measure, `cpts-aci-indicators`, whose version is the
  catalogue's; one group per indicator (`group.code` = the indicator id, its label and unit), one stratifier
  per breakdown.
- `GET /fhir/MeasureReport?subject=<FINESS>&period=<key>`: a searchset Bundle holding one summary
  MeasureReport of that CPTS (subject: an Organization identified by its FINESS) for the period (a key as
  elsewhere: 2026-11-23, 2026-W48, 2026-11, 2026-Q4, 2026; default the current month); one group per
  indicator with its `measureScore` (value and unit), an `initial-population` count for the indicators that
  are counts, and one stratum per breakdown cell. A masked value is never sent: the score (or stratum score)
  carries only the `data-absent-reason` extension with code `masked`, and no population count is given.

Answers are `application/fhir+json`; a bad search parameter is a 400 OperationOutcome; 401/403/404 come from
the platform as problem+json, as elsewhere in this service.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from cpts_indicators import queries
from cpts_indicators.api.routes import Follower, authorize
from cpts_indicators.domain.catalogue import IndicatorDefinition, catalogue
from cpts_indicators.domain.masking import Cell, PublishedValue
from cpts_indicators.domain.periods import InvalidPeriod, Period, PeriodKind, parse_period, period_of
from cpts_platform.service import ReadSessionDep, RuntimeDep

FHIR_JSON = "application/fhir+json"
MEASURE_ID = "cpts-aci-indicators"
FINESS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
INDICATOR_SYSTEM = "urn:cpts:indicators"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DATA_ABSENT_EXT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
SCORING_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-scoring"
COUNTS = {"count", "distinct"}
FINESS = re.compile(r"^\d{2}[0-9AB]\d{6}$")
KEY_KINDS = ((re.compile(r"^\d{4}-\d{2}-\d{2}$"), PeriodKind.DAY),
             (re.compile(r"^\d{4}-W\d{2}$"), PeriodKind.WEEK),
             (re.compile(r"^\d{4}-\d{2}$"), PeriodKind.MONTH),
             (re.compile(r"^\d{4}-Q[1-4]$"), PeriodKind.QUARTER),
             (re.compile(r"^\d{4}$"), PeriodKind.YEAR))

router = APIRouter(prefix="/fhir", tags=["fhir"])


def _fhir(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def _outcome(diagnostics: str) -> JSONResponse:
    return _fhir({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": diagnostics}]}, 400)


def _bundle(request: Request, resources: list[dict[str, Any]]) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/") + "/fhir"
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "link": [{"relation": "self", "url": str(request.url)}],
            "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in resources]}


def _scoring(definition: IndicatorDefinition) -> str:
    op = definition.compute.op
    return "ratio" if op == "ratio" else "cohort" if op in COUNTS else "continuous-variable"


def _code(definition: IndicatorDefinition) -> dict[str, Any]:
    return {"coding": [{"system": INDICATOR_SYSTEM, "code": definition.id, "display": definition.label}],
            "text": definition.label}


def measure(base: str) -> dict[str, Any]:
    definitions = catalogue()
    return {
        "resourceType": "Measure", "id": MEASURE_ID, "url": f"{base}/Measure/{MEASURE_ID}",
        "version": definitions.version, "name": "IndicateursACICPTS", "title": "Indicateurs ACI des CPTS",
        "status": "active", "description": definitions.description,
        "group": [{
            "id": d.id, "code": _code(d), "description": f"{d.description} Unité : {d.unit}. "
                                                     f"Mission {d.mission}, version {d.version}.",
            "extension": [{"url": f"{INDICATOR_SYSTEM}/scoring",
                           "valueCodeableConcept": {"coding": [{"system": SCORING_SYSTEM,
                                                                "code": _scoring(d)}]}}],
            "stratifier": [{"code": {"text": name}} for name in d.breakdowns],
        } for d in definitions.indicators]}


def _absent() -> dict[str, Any]:
    return {"extension": [{"url": DATA_ABSENT_EXT, "valueCode": "masked"}]}


def _score(definition: IndicatorDefinition, cell: Cell) -> dict[str, Any] | None:
    if cell.masked:
        return _absent()
    if cell.value is None:
        return None  # nothing to compute (a share of nothing): no score, not a masked one
    return {"value": cell.value, "unit": definition.unit}


def _group(value: PublishedValue) -> dict[str, Any]:
    d = value.definition
    group: dict[str, Any] = {"code": _code(d)}
    if d.compute.op in COUNTS and not value.total.masked and value.total.value is not None:
        code = {"coding": [{"system": POPULATION_SYSTEM, "code": "initial-population"}]}
        group["population"] = [{"code": code, "count": int(value.total.value)}]
    score = _score(d, value.total)
    if score is not None:
        group["measureScore"] = score
    stratifiers = []
    for name, cells in value.breakdowns.items():
        strata = []
        for category, cell in sorted(cells.items()):
            stratum: dict[str, Any] = {"value": {"text": category}}
            s = _score(d, cell)
            if s is not None:
                stratum["measureScore"] = s
            strata.append(stratum)
        stratifiers.append({"code": [{"text": name}], "stratum": strata})
    if stratifiers:
        group["stratifier"] = stratifiers
    return group


def measure_report(base: str, cpts_id: str, period: Period, values: list[PublishedValue], *, threshold: int,
                   now: datetime) -> dict[str, Any]:
    return {
        "resourceType": "MeasureReport", "id": f"{cpts_id}-{period.kind.value}-{period.key}",
        "extension": [{"url": f"{INDICATOR_SYSTEM}/small-cell-threshold", "valueInteger": threshold}],
        "status": "complete" if period.end <= now else "pending", "type": "summary",
        "measure": f"{base}/Measure/{MEASURE_ID}|{catalogue().version}",
        "subject": {"identifier": {"system": FINESS_SYSTEM, "value": cpts_id}, "display": f"CPTS {cpts_id}"},
        "date": now.isoformat(),
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "group": [_group(v) for v in values]}


def _parse_key(text: str | None) -> Period:
    if text is None:
        return period_of(PeriodKind.MONTH, datetime.now(UTC))
    for pattern, kind in KEY_KINDS:
        if pattern.match(text):
            return parse_period(kind, text)
    raise InvalidPeriod(f"unknown period {text!r}: 2026-11-23, 2026-W48, 2026-11, 2026-Q4 or 2026")


@router.get("/Measure", response_class=JSONResponse,
            summary="Le catalogue des indicateurs (FHIR R4 Measure).",
            responses={200: {"content": {FHIR_JSON: {}}}})
async def search_measure(request: Request, _: Follower) -> JSONResponse:
    base = str(request.base_url).rstrip("/") + "/fhir"
    return _fhir(_bundle(request, [measure(base)]))


@router.get("/MeasureReport", response_class=JSONResponse,
            summary="Les indicateurs d'une CPTS pour une période (FHIR R4 MeasureReport de synthèse, petits "
                    "effectifs masqués).", responses={
                200: {"content": {FHIR_JSON: {}}},
                400: {"description": "CPTS ou période invalide (OperationOutcome).",
                      "content": {FHIR_JSON: {}}}})
async def search_measure_report(
        request: Request, principal: Follower, session: ReadSessionDep, runtime: RuntimeDep,
        subject: str | None = Query(default=None, description="FINESS de la CPTS."),
        period: str | None = Query(default=None, description="Clé de période ; défaut : le mois en cours.")
) -> JSONResponse:
    if subject is None or not FINESS.match(subject.rsplit("|", 1)[-1]):
        return _outcome("subject: the FINESS of a CPTS is required (e.g. subject=690049999)")
    cpts_id = subject.rsplit("|", 1)[-1]
    try:
        wanted = _parse_key(period)
    except InvalidPeriod as exc:
        return _outcome(f"period: {exc}")
    await authorize(principal, cpts_id, session)
    threshold = runtime.settings.small_cell_threshold  # type: ignore[attr-defined]
    values = await queries.published_values(session, cpts_id=cpts_id, periods=[wanted], threshold=threshold)
    base = str(request.base_url).rstrip("/") + "/fhir"
    report = measure_report(base, cpts_id, wanted, values, threshold=threshold, now=datetime.now(UTC))
    return _fhir(_bundle(request, [report]))
