"""HTTP API of the indicators service: catalogue, values of a CPTS for a period, series, CSV export.

Who sees what: the coordinators and secretaries of a CPTS (token scope `cpts`), the ARS for the CPTS whose
territory touches one of its départements (token scope `departements`), and admins. A CPTS outside the
caller's scope is a 403; a CPTS the indicators have not heard of (no registry event yet) a 404.
"""

from __future__ import annotations


from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_indicators import handlers, queries
from cpts_indicators.api.schemas import (
    CataloguePublic,
    CptsIndicators,
    DefinitionPublic,
    IndicatorSeries,
    IndicatorValuePublic,
    PeriodPublic,
    ProfessionalCount,
    RebuildResult,
    SeriesPoint,
)
from cpts_indicators.domain.catalogue import catalogue
from cpts_indicators.domain.periods import (
    InvalidPeriod,
    Period,
    PeriodKind,
    parse_period,
    period_of,
    periods_between,
)
from cpts_indicators.exports import XLSX_MEDIA_TYPE, csv_export, xlsx_export
from cpts_indicators.repository import cpts_profile, professional_figures
from cpts_indicators.settings import Settings, configure
from cpts_indicators.snapshots import snapshot_worker
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.problems import ProblemError
from cpts_platform.service import DatabaseDep, ReadSessionDep, Runtime, RuntimeDep, background_task


def _start_snapshots(runtime: Runtime):
    """Inside the service's lifespan (the runtime exists): the event handlers get the service's settings, and
    the snapshot worker starts unless switched off."""
    configure(runtime.settings)
    interval = runtime.settings.snapshot_interval_seconds
    if interval <= 0:
        return None
    return snapshot_worker(runtime.database, interval,
                           backlog=lambda: any(consumer.behind for consumer in runtime.consumers),
                           max_delay=runtime.settings.snapshot_max_delay_seconds)


router = APIRouter(prefix="/indicators", tags=["indicateurs"])
router.include_router(background_task("indicator-snapshots", _start_snapshots))

Follower = Annotated[Principal, Depends(require_roles(Role.COORDINATOR, Role.SECRETARY, Role.ARS))]
Admin = Annotated[Principal, Depends(require_roles())]
CptsId = Annotated[str, Path(pattern=r"^\d{2}[0-9AB]\d{6}$", description="FINESS de la CPTS.",
                             examples=["690049999"])]
PeriodQuery = Annotated[PeriodKind, Query(
    description="Jour, semaine ISO, mois, trimestre ou année (heure de Paris).")]
KeyHelp = "Clé de période (2026-11-23, 2026-W48, 2026-11, 2026-Q4, 2026) ou date contenue dans la période."
# A range `from`..`to` holds at most `max_periods_per_request` periods (400 by default): a 422 beyond.
RangeHelp = KeyHelp + " Au plus `max_periods_per_request` périodes (400 par défaut) de `from` à `to`."
FromKey = Annotated[str | None, Query(alias="from", max_length=10, description=RangeHelp)]
ToKey = Annotated[str | None, Query(alias="to", max_length=10, description=RangeHelp)]


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(422, f"{field}: {message}", title="Unprocessable Content",
                        errors=[{"field": field, "in": "query", "message": message}])


def _period(kind: PeriodKind, text: str | None, field: str) -> Period:
    if text is None:
        return period_of(kind, datetime.now(UTC))
    try:
        return parse_period(kind, text)
    except InvalidPeriod as exc:
        raise _invalid(field, str(exc)) from None


def _range(kind: PeriodKind, first: str | None, last: str | None, limit: int) -> list[Period]:
    """From `first` (default: `last`) to `last` (default: the current period), both included."""
    end = _period(kind, last, "to")
    try:
        return periods_between(_period(kind, first, "from") if first else end, end, limit=limit)
    except InvalidPeriod as exc:
        raise _invalid("from", str(exc)) from None


async def authorize(principal: Principal, cpts_id: str, session: AsyncSession, *, must_be_known: bool = True
                    ) -> None:
    """403 outside the caller's scope; 404 for a CPTS no registry event has told the indicators about."""
    own = principal.roles & {Role.COORDINATOR, Role.SECRETARY} and principal.can_access_cpts(cpts_id)
    if Role.ADMIN in principal.roles or own:
        if must_be_known and await cpts_profile(session, cpts_id) is None:
            raise ProblemError(404, f"No CPTS {cpts_id}.")
        return
    if Role.ARS in principal.roles:
        profile = await cpts_profile(session, cpts_id)
        if profile is None:
            raise ProblemError(404, f"No CPTS {cpts_id}.")
        ensure(any(principal.can_access_departement(d) for d in profile.get("departements", [])),
               f"CPTS {cpts_id} is outside your départements.")
        return
    ensure(False, f"CPTS {cpts_id} is outside your scope.")


def _settings(runtime: Runtime) -> Settings:
    return runtime.settings  # type: ignore[return-value]


@router.get("/catalogue", response_model=CataloguePublic,
            summary="Le catalogue des indicateurs : définitions versionnées, calcul, ventilations.")
async def read_catalogue(_: Follower, runtime: RuntimeDep) -> CataloguePublic:
    definitions = catalogue()
    return CataloguePublic(
        version=definitions.version, description=definitions.description,
        small_cell_threshold=_settings(runtime).small_cell_threshold, period_kinds=list(PeriodKind),
        sets={name: s.model_dump(exclude_defaults=True) for name, s in definitions.sets.items()},
        indicators=[DefinitionPublic.of(d) for d in definitions.indicators])


@router.get("/cpts/{cpts_id}", response_model=CptsIndicators,
            summary="Tous les indicateurs d'une CPTS pour une période (petits effectifs masqués).")
async def indicators_of_cpts(
    cpts_id: CptsId, principal: Follower, session: ReadSessionDep, runtime: RuntimeDep,
    period: PeriodQuery = PeriodKind.MONTH,
    at: Annotated[str | None, Query(max_length=10, description=KeyHelp + " Défaut : la période en cours.",
                                    examples=["2026-11"])] = None,
) -> CptsIndicators:
    await authorize(principal, cpts_id, session)
    wanted = _period(period, at, "at")
    threshold = _settings(runtime).small_cell_threshold
    values = await queries.published_values(session, cpts_id=cpts_id, periods=[wanted], threshold=threshold,
                                             custom=True)
    return CptsIndicators(cpts_id=cpts_id, period=PeriodPublic.of(wanted),
                          catalogue_version=catalogue().version, small_cell_threshold=threshold,
                          computed_at=datetime.now(UTC),
                          indicators=[IndicatorValuePublic.from_published(v) for v in values])


@router.get("/cpts/{cpts_id}/series/{indicator_id}", response_model=IndicatorSeries,
            summary="Un indicateur d'une CPTS période par période.")
async def indicator_series(cpts_id: CptsId, indicator_id: str, principal: Follower, session: ReadSessionDep,
                           runtime: RuntimeDep, period: PeriodQuery = PeriodKind.MONTH,
                           first: FromKey = None,
                           last: ToKey = None
                           ) -> IndicatorSeries:
    await authorize(principal, cpts_id, session)
    definitions, shown = await queries.cpts_definitions(session, cpts_id)  # with the CPTS's custom ones
    definition = definitions.by_id.get(indicator_id) if indicator_id in shown else None
    if definition is None:
        raise ProblemError(404, f"No indicator {indicator_id}.")
    settings = _settings(runtime)
    periods = _range(period, first, last, settings.max_periods_per_request)
    values = await queries.published_values(session, cpts_id=cpts_id, periods=periods,
                                             threshold=settings.small_cell_threshold, ids=[indicator_id],
                                             definitions=definitions)
    return IndicatorSeries(cpts_id=cpts_id, indicator=DefinitionPublic.of(definition),
                           small_cell_threshold=settings.small_cell_threshold, computed_at=datetime.now(UTC),
                           points=[SeriesPoint.from_published(v) for v in values])


async def _export(principal: Principal, cpts_id: str, session: AsyncSession, runtime: Runtime,
                  period: PeriodKind, first: str | None, last: str | None) -> tuple[list, str, int]:
    """What both exports serve: the published values of the periods asked (custom indicators included), the
    file's name without its extension, and the small-cell threshold."""
    await authorize(principal, cpts_id, session)
    settings = _settings(runtime)
    periods = _range(period, first, last, settings.max_periods_per_request)
    values = await queries.published_values(session, cpts_id=cpts_id, periods=periods,
                                             threshold=settings.small_cell_threshold, custom=True)
    return values, f"indicateurs-{cpts_id}-{periods[0].key}-{periods[-1].key}", settings.small_cell_threshold


@router.get("/cpts/{cpts_id}/export.csv", response_class=Response,
            summary="Export CSV des indicateurs d'une CPTS sur une suite de périodes (petits effectifs "
                    "masqués).",
            responses={200: {"content": {"text/csv": {}},
                             "description": "Une ligne par indicateur, période et catégorie."}})
async def export_csv(cpts_id: CptsId, principal: Follower, session: ReadSessionDep, runtime: RuntimeDep,
                     period: PeriodQuery = PeriodKind.MONTH,
                     first: FromKey = None,
                     last: ToKey = None) -> Response:
    values, name, threshold = await _export(principal, cpts_id, session, runtime, period, first, last)
    name += ".csv"
    return Response(csv_export(cpts_id, values), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/cpts/{cpts_id}/export.xlsx", response_class=Response,
            summary="Export XLSX des indicateurs d'une CPTS sur une suite de périodes (mêmes colonnes que le "
                    "CSV ; petits effectifs masqués).",
            responses={200: {"content": {XLSX_MEDIA_TYPE: {}},
                             "description": "Une ligne par indicateur, période et catégorie."}})
async def export_xlsx(cpts_id: CptsId, principal: Follower, session: ReadSessionDep, runtime: RuntimeDep,
                      period: PeriodQuery = PeriodKind.MONTH,
                      first: FromKey = None,
                      last: ToKey = None) -> Response:
    values, name, threshold = await _export(principal, cpts_id, session, runtime, period, first, last)
    name += ".xlsx"
    return Response(xlsx_export(cpts_id, values, threshold=threshold),
                    media_type=XLSX_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/snapshots/rebuild", response_model=RebuildResult,
             summary="Recalculer depuis les faits les instantanés envoyés à l'ARS ; renvoyer ceux qui "
                     "diffèrent.")
async def rebuild_snapshots(_: Admin, database: DatabaseDep, runtime: RuntimeDep,
                            cpts_id: Annotated[str | None, Query(pattern=r"^\d{2}[0-9AB]\d{6}$")] = None
                            ) -> RebuildResult:
    settings = _settings(runtime)
    cpts, snapshots, sent = await handlers.rebuild_snapshots(
        database=database, kinds=settings.snapshot_periods, threshold=settings.small_cell_threshold,
        cpts_id=cpts_id)
    return RebuildResult(cpts=cpts, snapshots=snapshots, sent=sent)


@router.get("/cpts/{cpts_id}/professionals", response_model=ProfessionalCount,
            summary="Nombre de professionnels membres d'une CPTS, tenu à jour depuis les événements du "
                    "registre.")
async def professionals_of_cpts(cpts_id: str, principal: Follower, session: ReadSessionDep
                                ) -> ProfessionalCount:
    await authorize(principal, cpts_id, session, must_be_known=False)
    members, active, registrations, last = await professional_figures(session, cpts_id)
    return ProfessionalCount(cpts_id=cpts_id, members=members, active_members=active,
                             professionals=registrations, last_event_time=last)

