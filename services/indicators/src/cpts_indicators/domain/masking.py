"""Small-cell masking: what of a computed value may be published, in every output (API, CSV, ARS stream).

Rule (DOMAIN.md, as the Assurance Maladie's territory tool does): a value counting between 1 and
`threshold - 1` units (facts, professionals, patients) is published as masked, without its value nor the time
of its last event (which would tell when the few cases happened). A ratio is masked when its numerator or its
denominator is. In a breakdown, a single masked category could be recomputed from the total and the others,
so the smallest other non-zero category is masked with it (secondary suppression); a masked total masks
every category.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

from cpts_indicators.domain.catalogue import Catalogue, IndicatorDefinition
from cpts_indicators.domain.periods import Period

DEFAULT_THRESHOLD = 6
MISSING_CATEGORY = "non_renseigne"


@dataclass(frozen=True)
class Measure:
    """A computed, unmasked value: the numbers the small-cell rule looks at (`bases`), its value, and the time
    of the last event it counts."""

    value: float | None
    bases: tuple[int, ...] = ()
    last_event_time: datetime | None = None

    def small(self, threshold: int) -> bool:
        return any(1 <= b < threshold for b in self.bases)

    @property
    def size(self) -> int:
        return min(self.bases) if self.bases else 0


@dataclass(frozen=True)
class RawValue:
    total: Measure
    breakdowns: dict[str, dict[str, Measure]] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    value: float | None
    masked: bool
    last_event_time: datetime | None


@dataclass(frozen=True)
class PublishedValue:
    definition: IndicatorDefinition
    period: Period
    total: Cell
    breakdowns: dict[str, dict[str, Cell]]


def _round(value: float | None, decimals: int) -> float | None:
    if value is None:
        return None
    return float(round(value)) if decimals == 0 else round(value, decimals)


def _cell(measure: Measure, masked: bool, decimals: int) -> Cell:
    if masked:
        return Cell(value=None, masked=True, last_event_time=None)
    return Cell(value=_round(measure.value, decimals), masked=False, last_event_time=measure.last_event_time)


def _mask_breakdown(cells: Mapping[str, Measure], total_masked: bool, threshold: int) -> dict[str, bool]:
    if total_masked:
        return {category: True for category in cells}
    masked = {category: measure.small(threshold) for category, measure in cells.items()}
    if sum(masked.values()) == 1:
        others = [(m.size, c) for c, m in cells.items() if not masked[c] and m.size > 0]
        if others:
            masked[min(others)[1]] = True
    return masked


def _ratio(numerator: Measure, denominator: Measure, scale: float) -> Measure:
    value = None
    if numerator.value is not None and denominator.value:
        value = scale * numerator.value / denominator.value
    times = [t for t in (numerator.last_event_time, denominator.last_event_time) if t is not None]
    return Measure(value=value, bases=numerator.bases + denominator.bases,
                   last_event_time=max(times) if times else None)


def publish(catalogue: Catalogue, period: Period, raw: Mapping[str, RawValue], *, threshold: int,
            ids: list[str] | None = None) -> list[PublishedValue]:
    """The publishable values of one period, in catalogue order: the raw values masked, ratios computed from
    their (masked) parts. `raw` holds every non-ratio indicator that `ids` (default: all) needs."""
    out: dict[str, PublishedValue] = {}
    wanted = set(ids) if ids is not None else None
    for definition in sorted(catalogue.indicators, key=lambda d: d.compute.op == "ratio"):
        compute = definition.compute
        if compute.op != "ratio":
            if definition.id not in raw:
                continue
            value = raw[definition.id]
            total_masked = value.total.small(threshold)
            breakdowns = {}
            for name, cells in value.breakdowns.items():
                masked = _mask_breakdown(cells, total_masked, threshold)
                breakdowns[name] = {c: _cell(m, masked[c], definition.decimals) for c, m in cells.items()}
            out[definition.id] = PublishedValue(definition, period, _cell(value.total, total_masked,
                                                                          definition.decimals), breakdowns)
            continue
        if compute.numerator not in out or compute.denominator not in out:
            continue
        num_raw, den_raw = raw[compute.numerator], raw[compute.denominator]
        num, den = out[compute.numerator], out[compute.denominator]
        total = _ratio(num_raw.total, den_raw.total, compute.scale)
        breakdowns = {}
        for name in definition.breakdowns:
            cells = {}
            num_cells, den_cells = num_raw.breakdowns.get(name, {}), den_raw.breakdowns.get(name, {})
            for category in sorted(set(num_cells) | set(den_cells)):
                part_n = num_cells.get(category, Measure(0.0))
                part_d = den_cells.get(category, Measure(0.0))
                hidden = (num.breakdowns.get(name, {}).get(category, Cell(0, False, None)).masked
                          or den.breakdowns.get(name, {}).get(category, Cell(0, False, None)).masked)
                cells[category] = _cell(_ratio(part_n, part_d, compute.scale), hidden, definition.decimals)
            breakdowns[name] = cells
        hidden_total = num.total.masked or den.total.masked
        total_cell = _cell(total, hidden_total, definition.decimals)
        out[definition.id] = PublishedValue(definition, period, total_cell, breakdowns)
    order = [d.id for d in catalogue.indicators if wanted is None or d.id in wanted]
    return [out[i] for i in order if i in out]
