"""Computation of the indicators from the fact table, at query time.

Values are never stored as running counters: each one is computed from the facts of a CPTS for the requested
periods (their Paris-time bounds are computed here and joined as a small table), so a duplicate event (refused
by the fact table's key) never counts twice, a late event counts in the period of its own time, and a rebuild
from the facts gives the same values by construction.

SQL does what indexes make cheap and planners do well: pick a selector's facts (CPTS, event types, time range,
conditions on attributes) and keep the latest of each entity with a window function, per period for a stock.
The rows come back once per selector, however many definitions and breakdowns use it; the joins on
professionals (`subject_in`), the per-professional thresholds (`having`) and the aggregates (counts, sums,
medians) are done here on those rows, whose number is bounded by the CPTS's activity over the periods asked.

The functions are synchronous SQLAlchemy Core on a `Session`: the API runs them with `run_sync`, the consumer
inside its transaction (see `snapshots.py`).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CTE
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_indicators.domain.catalogue import (
    Catalogue,
    Computation,
    IndicatorDefinition,
    Selector,
    attribute_type,
    catalogue,
)
from cpts_indicators.domain.custom import extended, is_hidden, stored_definitions
from cpts_indicators.domain.facts import PROFESSIONAL_SCOPE
from cpts_indicators.domain.masking import MISSING_CATEGORY, Measure, PublishedValue, RawValue, publish
from cpts_indicators.domain.periods import Period
from cpts_indicators.repository import custom_indicators_of
from cpts_indicators.repository import facts_table as facts
from cpts_platform.db import UtcDateTime

# Sums of slot hours are floats: a threshold such as "2 h a week" is met within this tolerance.
EPSILON = 1e-6
# Up to this many professionals, a CPTS's own are passed as a list rather than a subquery.
LISTED_SUBJECTS = 5_000


@dataclass(frozen=True)
class Row:
    """A fact a selector keeps, in one period."""

    period_key: str
    event_type: str
    event_time: datetime
    entity: str | None
    subject: str | None
    attributes: dict[str, Any]


def _typed(attributes: sa.ColumnElement, name: str, kind: str) -> sa.ColumnElement:
    element = attributes[name]
    if kind == "bool":
        return element.as_boolean()
    if kind == "num":
        return element.as_float()
    return element.as_string()


def _where(selector: Selector, rows: Any) -> list[sa.ColumnElement]:
    out = []
    for name, condition in selector.where.items():
        if name == "event_type":
            values = condition if isinstance(condition, list) else [condition]
            out.append(rows.c.event_type.in_(values))
            continue
        expr = _typed(rows.c.attributes, name, attribute_type(selector, name))
        if isinstance(condition, dict):
            parts = []
            for op, value in condition.items():
                if op == "or_null":
                    continue
                parts.append(expr.in_(value) if op == "in" else {
                    "gte": expr >= value, "gt": expr > value, "lte": expr <= value, "lt": expr < value,
                    "ne": expr != value}[op])
            clause = sa.and_(*parts)
            if condition.get("or_null"):
                clause = sa.or_(clause, rows.c.attributes[name].as_string().is_(None))
            out.append(clause)
        elif isinstance(condition, list):
            out.append(expr.in_(condition))
        else:
            out.append(expr == condition)
    return out


def _latest_key(selector: Selector, rows: Any) -> sa.ColumnElement:
    name = selector.latest_by or ""
    if name in ("entity", "subject"):
        return rows.c[name]
    return rows.c.attributes[name].as_string()


def _periods_table(periods: list[Period]) -> CTE:
    selects = [sa.select(sa.literal(p.key, sa.String()).label("period_key"),
                         sa.literal(p.start, UtcDateTime()).label("p_start"),
                         sa.literal(p.end, UtcDateTime()).label("p_end")) for p in periods]
    return (selects[0] if len(selects) == 1 else sa.union_all(*selects)).cte("periods")


@dataclass
class _Evaluator:
    """Evaluates the definitions of the catalogue over the facts of one CPTS and a list of periods."""

    session: Session
    catalogue: Catalogue
    cpts_id: str
    periods: list[Period]
    _table: CTE = field(init=False)
    _rows: dict[str, list[Row]] = field(default_factory=dict)
    _own: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._table = _periods_table(self.periods)

    @property
    def weeks(self) -> dict[str, float]:
        return {p.key: p.weeks for p in self.periods}

    def _own_subjects(self, event_types: tuple[str, ...]) -> Any:
        """The professionals of this CPTS's facts (of these types): a list, or a subquery when too many."""
        if event_types not in self._own:
            f = facts
            query = sa.select(f.c.subject).distinct().where(f.c.cpts_id == self.cpts_id,
                                                            f.c.subject.is_not(None))
            if event_types:
                query = query.where(f.c.event_type.in_(event_types))
            found = list(self.session.execute(query.limit(LISTED_SUBJECTS + 1)).scalars())
            self._own[event_types] = found if len(found) <= LISTED_SUBJECTS else query
        return self._own[event_types]

    def _statement(self, selector: Selector, joined_to: tuple[str, ...]) -> sa.Select:
        f, p = facts, self._table
        scope = PROFESSIONAL_SCOPE if selector.scope == "professional" else self.cpts_id
        picked = [f.c.cpts_id == scope, f.c.event_type.in_(selector.events)]
        if selector.scope == "professional":
            # Only the professionals of this CPTS's facts can pass the joins: the others are never read.
            picked.append(f.c.subject.in_(self._own_subjects(joined_to)))
        columns = [f.c.event_type, f.c.event_time, f.c.entity, f.c.subject, f.c.attributes]
        names = [c.name for c in columns]
        order = [f.c.event_time.desc(), f.c.event_id.desc()]
        if selector.stock:
            # The state at the end of each period: every fact before its end, the latest one per entity.
            query = sa.select(p.c.period_key, *columns).select_from(f.join(p, f.c.event_time < p.c.p_end)) \
                .where(*picked)
            if not selector.latest_by:
                return query.where(*_where(selector, f))
            rank = sa.func.row_number().over(partition_by=[p.c.period_key, _latest_key(selector, f)],
                                             order_by=order)
            ranked = query.add_columns(rank.label("rn")).subquery()
            return sa.select(ranked.c.period_key, *[ranked.c[n] for n in names]).where(
                ranked.c.rn == 1, *_where(selector, ranked))
        first, last = self.periods[0].start, self.periods[-1].end
        if not selector.latest_by:
            at = f.c.ref_time if selector.time == "ref" else f.c.event_time
            return sa.select(p.c.period_key, *columns).select_from(
                f.join(p, sa.and_(at >= p.c.p_start, at < p.c.p_end))).where(*picked, *_where(selector, f))
        if selector.time == "ref":
            # A ref time is the time of the thing itself (a slot's start, a request's reception): the same in
            # all its facts, so the facts outside the periods are not those of a thing inside.
            picked += [f.c.ref_time >= first, f.c.ref_time < last]
        else:
            # An entity whose latest fact falls in the periods has a fact there: only those are ranked.
            candidate = facts.alias("candidate")
            picked.append(f.c.entity.in_(sa.select(candidate.c.entity).where(
                candidate.c.cpts_id == scope, candidate.c.event_type.in_(selector.events),
                candidate.c.event_time >= first, candidate.c.event_time < last)))
        rank = sa.func.row_number().over(partition_by=_latest_key(selector, f), order_by=order)
        ranked = sa.select(*columns, f.c.ref_time, rank.label("rn")).where(*picked).subquery()
        at = ranked.c.ref_time if selector.time == "ref" else ranked.c.event_time
        return sa.select(p.c.period_key, *[ranked.c[n] for n in names]).select_from(
            ranked.join(p, sa.and_(at >= p.c.p_start, at < p.c.p_end))).where(
            ranked.c.rn == 1, *_where(selector, ranked))

    def rows(self, selector: Selector, joined_to: tuple[str, ...] = ()) -> list[Row]:
        """The facts a selector keeps, one row per fact and period (read once per evaluation)."""
        key = f"{selector.model_dump_json()}|{joined_to}"
        if key not in self._rows:
            rows = [Row(r.period_key, r.event_type, r.event_time, r.entity, r.subject, r.attributes or {})
                    for r in self.session.execute(self._statement(selector, joined_to))]
            for inner in selector.subject_in:
                kept = self.subjects(self.catalogue.selector(inner), tuple(selector.events))
                rows = [r for r in rows if (r.period_key, r.subject) in kept]
            self._rows[key] = rows
        return self._rows[key]

    def subjects(self, selector: Selector, joined_to: tuple[str, ...] = ()) -> set[tuple[str, str | None]]:
        """The (period, professional) pairs a selector keeps (those reaching its `having` threshold)."""
        rows = self.rows(selector, joined_to)
        having = selector.having
        if having is None:
            return {(r.period_key, r.subject) for r in rows}
        totals: dict[tuple[str, str | None], float] = defaultdict(float)
        for r in rows:
            totals[(r.period_key, r.subject)] += float(r.attributes.get(having.sum) or 0)
        weeks = self.weeks
        return {key for key, total in totals.items()
                if total >= having.gte * (weeks[key[0]] if having.per_week else 1) - EPSILON}

    def measure(self, definition: IndicatorDefinition) -> dict[str, RawValue]:
        """The raw values of a non-ratio definition, per period key, with its breakdowns."""
        compute = definition.compute
        rows = self.rows(self.catalogue.selector(compute.select))  # type: ignore[arg-type]
        by_period: dict[str, list[Row]] = defaultdict(list)
        for r in rows:
            by_period[r.period_key].append(r)
        out = {}
        for period in self.periods:
            items = by_period.get(period.key, [])
            cells = {}
            for name in definition.breakdowns:
                groups: dict[str, list[Row]] = defaultdict(list)
                for r in items:
                    groups[_category(r.attributes.get(name))].append(r)
                cells[name] = {category: _measure(compute, group, period)
                               for category, group in groups.items()}
            out[period.key] = RawValue(_measure(compute, items, period), cells)
        return out


def _category(value: Any) -> str:
    if value is None:
        return MISSING_CATEGORY
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bases(compute: Computation, value: float | None, n: int) -> tuple[int, ...]:
    if compute.mask_on == "none":
        return ()
    if compute.mask_on == "value":
        return (round(value or 0),)
    return (n,)


def _quantile(values: list[float], op: str) -> float | None:
    if not values:
        return None
    if op == "median" or len(values) == 1:
        return statistics.median(values)
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def _measure(compute: Computation, rows: list[Row], period: Period) -> Measure:
    """The value of one operation over the rows of one period (and category)."""
    last = max((r.event_time for r in rows), default=None)
    if compute.op in ("median", "p90"):
        values = [float(v) for r in rows if (v := r.attributes.get(compute.of or "")) is not None]
        return Measure(_quantile(values, compute.op), (len(values),), last if values else None)
    if compute.op == "count":
        value: float = len(rows)
        n = len(rows)
    elif compute.op == "distinct":
        of = compute.of or ""
        n = len({getattr(r, of) if of in ("entity", "subject") else r.attributes.get(of) for r in rows})
        value = n
    else:
        value = sum(float(r.attributes.get(compute.of or "") or 0) for r in rows)
        n = len(rows)
        if compute.per_week:
            value = value / period.weeks
    return Measure(float(value), _bases(compute, value, n), last)


def needed(catalogue: Catalogue, ids: Iterable[str] | None) -> list[IndicatorDefinition]:
    """The non-ratio definitions the indicators `ids` (default: all) are computed from."""
    by_id = catalogue.by_id
    wanted = list(ids) if ids is not None else list(by_id)
    out: dict[str, IndicatorDefinition] = {}
    for indicator_id in wanted:
        definition = by_id[indicator_id]
        parts = [definition.compute.numerator, definition.compute.denominator] \
            if definition.compute.op == "ratio" else [indicator_id]
        for part in parts:
            out[part] = by_id[part]  # type: ignore[index]
    return [d for d in catalogue.indicators if d.id in out]


def evaluate(session: Session, catalogue: Catalogue, cpts_id: str, periods: list[Period],
             ids: Iterable[str] | None = None) -> dict[str, dict[str, RawValue]]:
    """The raw (unmasked) values, per period key and indicator, of the non-ratio indicators `ids` need."""
    evaluator = _Evaluator(session, catalogue, cpts_id, sorted(periods))
    out: dict[str, dict[str, RawValue]] = {p.key: {} for p in periods}
    for definition in needed(catalogue, ids):
        for key, value in evaluator.measure(definition).items():
            out[key][definition.id] = value
    return out


async def cpts_definitions(session: AsyncSession, cpts_id: str) -> tuple[Catalogue, list[str]]:
    """The catalogue with the CPTS's active custom indicators after the built-in ones, and the ids shown (the
    parts of a custom ratio are computed, not shown)."""
    custom = [d for row in await custom_indicators_of(session, cpts_id) for d in stored_definitions(row)]
    definitions = extended(catalogue(), custom)
    return definitions, [d.id for d in definitions.indicators if not is_hidden(d.id)]


async def published_values(session: AsyncSession, *, cpts_id: str, periods: list[Period], threshold: int,
                           ids: list[str] | None = None, definitions: Catalogue | None = None,
                           custom: bool = False) -> list[PublishedValue]:
    """The masked values of the indicators `ids` (default: all) of a CPTS, period by period; with `custom`,
    its custom indicators too."""
    if custom and definitions is None:
        definitions, shown = await cpts_definitions(session, cpts_id)
        ids = ids if ids is not None else shown
    definitions = definitions or catalogue()
    raw = await session.run_sync(lambda sync: evaluate(sync, definitions, cpts_id, periods, ids))
    return [value for period in periods
            for value in publish(definitions, period, raw[period.key], threshold=threshold, ids=ids)]


async def fact_time_span(session: AsyncSession, cpts_id: str) -> tuple[datetime, datetime] | None:
    """The earliest and latest times (event or ref) of a CPTS's facts, or None when it has none."""
    f = facts
    row = (await session.execute(sa.select(
        sa.func.min(f.c.event_time), sa.func.max(f.c.event_time), sa.func.min(f.c.ref_time),
        sa.func.max(f.c.ref_time)).where(f.c.cpts_id == cpts_id))).one()
    times = [t for t in row if t is not None]
    return (min(times), max(times)) if times else None  # type: ignore[type-var]
