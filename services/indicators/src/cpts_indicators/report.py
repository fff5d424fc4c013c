"""The annual ACI report of a CPTS: its identity and contract, per mission its indicators for the year (value,
previous year, monthly series, target and attainment), and the funding simulation.

Every value comes from the published (masked) values: a small cell is shown as masked, never as its value,
and the attainment of a masked value is not assessed (see `domain/funding.py`). The same report is served as
JSON (`AnnualReport`) and as a printable French HTML page (`render_html`, template `templates/report.html`).
"""

from __future__ import annotations

import html
import math
from datetime import UTC, date, datetime
from pathlib import Path
from string import Template
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_indicators import queries
from cpts_indicators.domain.catalogue import IndicatorDefinition, catalogue
from cpts_indicators.domain.funding import Attainment, FundingSimulation, funding_rules, simulate
from cpts_indicators.domain.masking import Cell
from cpts_indicators.domain.periods import PARIS, PeriodKind, parse_period, periods_between
from cpts_indicators.repository import cpts_contract, cpts_profile, replace_targets, targets_of
from cpts_platform.db import Database

TEMPLATE_FILE = Path(__file__).parent / "templates" / "report.html"
MISSION_LABELS = {
    "1a-medecin-traitant": "1a. Accès à un médecin traitant",
    "1b-soins-non-programmes": "1b. Soins non programmés",
    "2-parcours": "2. Parcours pluriprofessionnels",
    "3-prevention": "3. Prévention",
    "4-crises-sanitaires": "4. Crises sanitaires graves",
    "5-qualite-pertinence": "5. Qualité et pertinence des soins",
    "6-accompagnement-professionnels": "6. Accompagnement des professionnels",
}
SECTION_LABELS = {"1a": "Accès à un médecin traitant (mission 1a)", "1b": "Soins non programmés (mission 1b)",
                  "registry": "Ressources de la CPTS (registre)"}
STAGE_LABELS = {"letter_of_intent": "Lettre d'intention",
                "health_project_validated": "Projet de santé validé", "aci_signed": "ACI signé"}
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")


class ReportCell(BaseModel):
    value: float | None = Field(description="Valeur publiée ; absente si masquée ou indéfinie.")
    masked: bool = Field(description="Petit effectif masqué : la valeur n'est jamais donnée.")

    @classmethod
    def of(cls, cell: Cell | None) -> ReportCell:
        return cls(value=None, masked=False) if cell is None else cls(value=cell.value, masked=cell.masked)


class MonthCell(ReportCell):
    month: str = Field(examples=["2026-03"])


class ReportIndicator(BaseModel):
    indicator_id: str
    version: int
    mission: str
    label: str
    unit: str
    decimals: int
    direction: Literal["up", "down", "neutral"] = Field(description="Sens de progression attendu.")
    value: ReportCell = Field(description="Valeur de l'année.")
    previous: ReportCell = Field(description="Valeur de l'année précédente.")
    trend: Literal["up", "down", "stable"] | None = Field(
        description="Évolution sur un an ; absente si l'une des deux valeurs est masquée ou absente.")
    progress: Literal["favorable", "unfavorable", "neutral"] | None = Field(
        description="L'évolution au regard du sens de progression de l'indicateur.")
    months: list[MonthCell]
    target: float | None = Field(description="Objectif de l'année, s'il en a un.")
    attainment: float | None = Field(
        description="Taux d'atteinte de l'objectif (0 à 1) ; absent sans objectif ou si la valeur est "
                    "masquée.")
    reached: bool | None


class ReportSection(BaseModel):
    mission: str = Field(description="Mission du catalogue (1a, 1b, registry).")
    label: str
    indicators: list[ReportIndicator]


class MissionPublic(BaseModel):
    code: str = Field(examples=["1a-medecin-traitant"])
    label: str


class CptsIdentity(BaseModel):
    cpts_id: str = Field(description="FINESS de la CPTS.")
    name: str | None
    size_band: int | None = Field(description="Taille ACI (1 à 4) selon la population couverte.")
    population: int | None
    communes: int | None = Field(description="Nombre de communes du territoire.")
    departements: list[str]
    stage: str | None
    aci_signed_on: date | None
    missions: list[MissionPublic] = Field(description="Missions contractées selon le registre.")
    missions_known: bool = Field(description="Faux si le registre n'a pas (encore) communiqué les missions.")


class FundingLine(BaseModel):
    item: str
    label: str
    kind: Literal["fonctionnement", "socle", "optional"]
    amount: float = Field(description="Montant annuel à 100 % d'atteinte pour la taille de la CPTS.")
    fixed: float
    fixed_paid_at_start: float | None = Field(
        description="Part de la partie fixe d'une mission versée à son démarrage (75 %).")
    variable_max: float
    attainment: float | None = Field(description="Taux d'atteinte retenu pour la part variable (0 à 1).")
    variable: float
    total: float
    targets: int = Field(description="Objectifs fixés sur les indicateurs de la mission.")
    assessed: int = Field(description="Objectifs évaluables (valeur publiée, non masquée).")


class FundingPublic(BaseModel):
    version: str
    currency: str
    source: str
    rule: str = Field(description="Règle d'atteinte partielle appliquée.")
    fixed_share_note: str
    size_band: int
    lines: list[FundingLine]
    fixed: float
    variable: float
    variable_max: float
    total: float
    maximum: float

    @classmethod
    def of(cls, simulation: FundingSimulation) -> FundingPublic:
        rules = funding_rules()
        return cls(
            version=rules.version, currency=rules.currency, source=rules.source,
            rule=rules.partial_attainment.description, fixed_share_note=rules.fixed_share_note,
            size_band=simulation.size_band, fixed=simulation.fixed, variable=simulation.variable,
            variable_max=simulation.variable_max, total=simulation.total, maximum=simulation.maximum,
            lines=[FundingLine(item=i.item.id, label=i.item.label, kind=i.item.kind, amount=i.amount,
                               fixed=i.fixed, fixed_paid_at_start=i.fixed_paid_at_start,
                               variable_max=i.variable_max, attainment=i.attainment, variable=i.variable,
                               total=i.total, targets=i.targets, assessed=i.assessed)
                   for i in simulation.items])


class AnnualReport(BaseModel):
    cpts: CptsIdentity
    year: int
    year_in_progress: bool = Field(description="L'année n'est pas close : ses valeurs sont un cumul à date.")
    generated_at: datetime = Field(description="Heure de génération (heure de Paris).")
    catalogue_version: str = Field(description="Version des définitions des indicateurs.")
    small_cell_threshold: int
    sections: list[ReportSection]
    funding: FundingPublic | None = Field(
        description="Simulation du financement ; absente sans taille connue.")


Trend = Literal["up", "down", "stable"]
Progress = Literal["favorable", "unfavorable", "neutral"]


def _trend(current: ReportCell, previous: ReportCell, direction: str) -> tuple[Trend | None, Progress | None]:
    if current.value is None or previous.value is None:
        return None, None
    trend: Trend = "up" if current.value > previous.value \
        else "down" if current.value < previous.value else "stable"
    if direction == "neutral" or trend == "stable":
        return trend, "neutral"
    return trend, "favorable" if (trend == "up") == (direction == "up") else "unfavorable"


async def build_report(session: AsyncSession, *, cpts_id: str, year: int, threshold: int,
                       now: datetime | None = None) -> AnnualReport:
    """The report of a CPTS for a calendar year (Paris time), from published values only."""
    now = now or datetime.now(UTC)
    definitions = catalogue()
    profile = await cpts_profile(session, cpts_id) or {}
    contract = await cpts_contract(session, cpts_id) or {}
    this_year, last_year = (parse_period(PeriodKind.YEAR, str(y)) for y in (year, year - 1))
    months = periods_between(parse_period(PeriodKind.MONTH, f"{year}-01"),
                             parse_period(PeriodKind.MONTH, f"{year}-12"), limit=12)
    yearly = await queries.published_values(session, cpts_id=cpts_id, periods=[this_year, last_year],
                                            threshold=threshold)
    started = [m for m in months if m.start <= now]  # months to come have no value yet
    monthly = await queries.published_values(session, cpts_id=cpts_id, periods=started, threshold=threshold) \
        if started else []
    cells = {(v.definition.id, v.period.key): v.total for v in [*yearly, *monthly]}
    targets = {t.indicator_id: t.target for t in await targets_of(session, cpts_id, year)}

    attainments: list[Attainment] = []
    sections: dict[str, list[ReportIndicator]] = {}
    for d in definitions.indicators:
        current = ReportCell.of(cells.get((d.id, this_year.key)))
        previous = ReportCell.of(cells.get((d.id, last_year.key)))
        trend, progress = _trend(current, previous, d.direction)
        attainment = None
        if d.id in targets:
            attainment = Attainment(d.id, d.mission, d.direction, targets[d.id], current.value)
            attainments.append(attainment)
        sections.setdefault(d.mission, []).append(ReportIndicator(
            indicator_id=d.id, version=d.version, mission=d.mission, label=d.label, unit=d.unit,
            decimals=d.decimals, direction=d.direction, value=current, previous=previous, trend=trend,
            progress=progress, target=targets.get(d.id),
            attainment=attainment.rate if attainment else None,
            reached=attainment.reached if attainment else None,
            months=[MonthCell(month=m.key, **ReportCell.of(cells.get((d.id, m.key))).model_dump())
                    for m in months]))

    missions = contract.get("missions")
    size_band = profile.get("size_band")
    simulation = simulate(funding_rules(), size_band=int(size_band), missions=missions or [],
                          attainments=attainments) if size_band else None
    signed = contract.get("aci_signed_on")
    identity = CptsIdentity(
        cpts_id=cpts_id, name=profile.get("name"), size_band=size_band, population=profile.get("population"),
        communes=profile.get("communes"), departements=profile.get("departements", []),
        stage=contract.get("stage"), aci_signed_on=date.fromisoformat(signed) if signed else None,
        missions=[MissionPublic(code=m, label=MISSION_LABELS.get(m, m)) for m in missions or []],
        missions_known=bool(missions))
    order = [m for m in ("1a", "1b") if m in sections] + [m for m in sections if m not in ("1a", "1b")]
    return AnnualReport(
        cpts=identity, year=year, year_in_progress=this_year.start <= now < this_year.end,
        generated_at=now.astimezone(PARIS), catalogue_version=definitions.version,
        small_cell_threshold=threshold,
        sections=[ReportSection(mission=m, label=SECTION_LABELS.get(m, m), indicators=sections[m])
                  for m in order],
        funding=FundingPublic.of(simulation) if simulation else None)


async def record_targets(*, database: Database, cpts_id: str, year: int, targets: dict[str, float],
                         recorded_by: str, now: datetime | None = None) -> None:
    """Replace the yearly targets of a CPTS, in one transaction."""
    async with database.transaction() as session:
        await replace_targets(session, cpts_id=cpts_id, year=year, targets=targets, recorded_by=recorded_by,
                              now=now or datetime.now(UTC))


def check_target(definition: IndicatorDefinition, target: float) -> str | None:
    """Why a target cannot be one for this indicator, or None."""
    if not math.isfinite(target) or target < 0:
        return "must be a finite number, 0 or more"
    if definition.unit == "%" and target > 100:
        return "a share is at most 100"
    return None


# HTML rendering (French, printable, no external asset, no script).

def number(value: float | None, decimals: int = 0) -> str:
    """A number written the French way: narrow no-break space between thousands, decimal comma."""
    if value is None:
        return "–"
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\u202f").replace(".", ",")


def money(value: float) -> str:
    return f"{number(value, 0 if float(value).is_integer() else 2)}\u00a0€"


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{number(100 * rate, 0)}\u00a0%"


def french_date(day: date) -> str:
    return f"{'1er' if day.day == 1 else day.day} {MONTHS[day.month - 1]} {day.year}"


def french_time(moment: datetime) -> str:
    local = moment.astimezone(PARIS)
    return f"{french_date(local.date())} à {local.hour:02d}\u00a0h\u00a0{local.minute:02d}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cell(cell: ReportCell, decimals: int, threshold: int) -> str:
    if cell.masked:
        return f'<span class="masked" title="Petit effectif masqué">&lt;&nbsp;{threshold}</span>'
    return _e(number(cell.value, decimals)) if cell.value is not None else '<span class="na">–</span>'


def _sparkline(indicator: ReportIndicator, threshold: int) -> str:
    """The twelve months as a small inline SVG: a bar per published value, a grey mark for a masked one."""
    width, height, step = 96, 22, 8
    values = [m.value for m in indicator.months if m.value is not None]
    top = max(values, default=0) or 1
    parts = [(f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
              f'role="img" aria-label="Série mensuelle">')]
    for i, month in enumerate(indicator.months):
        x = i * step
        label = f"{MONTHS[i]} : " + (f"< {threshold} (masqué)" if month.masked
                                     else number(month.value, indicator.decimals) if month.value is not None
                                     else "–")
        if month.masked:
            parts.append(f'<rect x="{x + 1}" y="{height - 3}" width="{step - 2}" height="3" class="m">'
                         f'<title>{_e(label)}</title></rect>')
        elif month.value is not None:
            bar = max(1.0, (height - 2) * max(month.value, 0) / top)
            parts.append(f'<rect x="{x + 1}" y="{height - bar:.1f}" width="{step - 2}" height="{bar:.1f}">'
                         f'<title>{_e(label)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


TREND_TEXT = {("up", "favorable"): ("↑", "fav", "en progrès"),
              ("down", "favorable"): ("↓", "fav", "en progrès"),
              ("up", "unfavorable"): ("↑", "unfav", "en recul"),
              ("down", "unfavorable"): ("↓", "unfav", "en recul"),
              ("up", "neutral"): ("↑", "", "en hausse"), ("down", "neutral"): ("↓", "", "en baisse"),
              ("stable", "neutral"): ("=", "", "stable")}


def _trend_html(indicator: ReportIndicator) -> str:
    if indicator.trend is None or indicator.progress is None:
        return '<span class="na">–</span>'
    arrow, css, words = TREND_TEXT[(indicator.trend, indicator.progress)]
    return f'<span class="trend {css}" title="{_e(words)}">{arrow}</span> <small>{_e(words)}</small>'


def _attainment_html(indicator: ReportIndicator) -> str:
    if indicator.target is None:
        return '<span class="na">–</span>'
    if indicator.attainment is None:
        return '<span class="masked">non évaluable</span>'
    mark = " ✓" if indicator.reached else ""
    return f"{percent(indicator.attainment)}{mark}"


def _section_html(section: ReportSection, threshold: int) -> str:
    rows = []
    for i in section.indicators:
        arrow = {"up": "↗ à augmenter", "down": "↘ à réduire", "neutral": "suivi"}[i.direction]
        rows.append(
            f'<tr id="{_e(i.indicator_id)}"><th scope="row">{_e(i.label)}<br><small>{_e(i.unit)} · {arrow} · '
            f'<code>{_e(i.indicator_id)}</code> v{i.version}</small></th>'
            f'<td class="num value">{_cell(i.value, i.decimals, threshold)}</td>'
            f'<td class="num value">{_cell(i.previous, i.decimals, threshold)}</td>'
            f'<td>{_trend_html(i)}</td><td>{_sparkline(i, threshold)}</td>'
            f'<td class="num">{_e(number(i.target, i.decimals)) if i.target is not None else "–"}</td>'
            f'<td class="num">{_attainment_html(i)}</td></tr>')
    return (f'<section class="mission"><h3>{_e(section.label)}</h3><table class="indicators"><thead><tr>'
            f'<th scope="col">Indicateur</th><th scope="col">Année</th><th scope="col">Année précédente</th>'
            f'<th scope="col">Évolution</th><th scope="col">Mois (janv.–déc.)</th>'
            f'<th scope="col">Objectif</th><th scope="col">Atteinte</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


def _line_attainment(line: FundingLine) -> str:
    if not line.variable_max:
        return "–"
    if not line.targets:
        return f"{percent(line.attainment)}<br><small>aucun objectif</small>"
    return (f"{percent(line.attainment)}<br><small>{line.assessed} objectif(s) évaluable(s) sur "
            f"{line.targets}</small>")


def _funding_html(funding: FundingPublic | None) -> str:
    if funding is None:
        return "<p>Taille de la CPTS inconnue : simulation impossible.</p>"
    kinds = {"fonctionnement": "fonctionnement", "socle": "socle", "optional": "optionnelle"}
    rows = "".join(
        f'<tr id="funding-{_e(line.item)}"><th scope="row">{_e(line.label)} '
        f'<small>({kinds[line.kind]})</small></th>'
        f'<td class="num">{money(line.amount)}</td><td class="num">{money(line.fixed)}</td>'
        f'<td class="num">{"–" if line.fixed_paid_at_start is None else money(line.fixed_paid_at_start)}</td>'
        f'<td class="num">{money(line.variable_max)}</td><td class="num">{_line_attainment(line)}</td>'
        f'<td class="num">{money(line.variable)}</td>'
        f'<td class="num"><strong>{money(line.total)}</strong></td></tr>' for line in funding.lines)
    total = (f'<tr id="funding-total" class="total"><th scope="row">Total</th>'
             f'<td class="num">{money(funding.maximum)}</td>'
             f'<td class="num">{money(funding.fixed)}</td><td></td>'
             f'<td class="num">{money(funding.variable_max)}</td><td></td>'
             f'<td class="num">{money(funding.variable)}</td>'
             f'<td class="num"><strong>{money(funding.total)}</strong></td></tr>')
    return (f'<table class="funding"><thead><tr><th scope="col">Poste</th>'
            f'<th scope="col">Montant à 100 %</th><th scope="col">Part fixe</th>'
            f'<th scope="col">dont versé au démarrage</th>'
            f'<th scope="col">Part variable maximale</th><th scope="col">Atteinte</th>'
            f'<th scope="col">Part variable simulée</th><th scope="col">Total simulé</th></tr></thead>'
            f'<tbody>{rows}{total}</tbody></table>'
            f'<p class="note">Taille {funding.size_band}. '
            f'Barème {_e(funding.version)} ({_e(funding.currency)}) : '
            f'{_e(funding.source)}</p><p class="note">Règle d\'atteinte partielle : {_e(funding.rule)}</p>'
            f'<p class="note">{_e(funding.fixed_share_note)}</p>')


def render_html(report: AnnualReport) -> str:
    """The report as a standalone French HTML page (inline CSS with print rules, no script, no external
    asset)."""
    c = report.cpts
    threshold = report.small_cell_threshold
    name = c.name or f"CPTS {c.cpts_id}"
    missions = "".join(f"<li>{_e(m.label)}</li>" for m in c.missions) if c.missions_known else \
        "<li>Missions non communiquées par le registre : les missions socles (1 à 4) sont retenues.</li>"
    identity = (
        f"<dl class=\"identity\"><dt>FINESS</dt><dd>{_e(c.cpts_id)}</dd>"
        f"<dt>Taille ACI</dt><dd>{_e(c.size_band) if c.size_band else '–'}</dd>"
        f"<dt>Population couverte</dt><dd>{_e(number(c.population))} habitants</dd>"
        f"<dt>Communes</dt><dd>{_e(number(c.communes)) if c.communes is not None else 'non communiqué'}</dd>"
        f"<dt>Départements</dt><dd>{_e(', '.join(c.departements) or '–')}</dd>"
        f"<dt>Étape</dt><dd>{_e(STAGE_LABELS.get(c.stage or '', c.stage or '–'))}"
        f"{' le ' + french_date(c.aci_signed_on) if c.aci_signed_on else ''}</dd></dl>")
    page = Template(TEMPLATE_FILE.read_text(encoding="utf-8"))
    in_progress = ('<p class="note"><strong>Année en cours : valeurs arrêtées à la date de génération.'
                   '</strong></p>') if report.year_in_progress else ""
    return page.substitute(
        title=_e(f"Rapport annuel ACI {report.year} – {name}"), name=_e(name), year=report.year,
        identity=identity, missions=missions, in_progress=in_progress,
        sections="".join(_section_html(s, threshold) for s in report.sections),
        funding=_funding_html(report.funding), threshold=threshold,
        catalogue_version=_e(report.catalogue_version), generated_at=_e(french_time(report.generated_at)))
