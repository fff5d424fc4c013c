"""The catalogue of indicator definitions, kept as data (`catalogue.json`) and checked against the facts.

A definition says how its value is computed from the facts of a CPTS in a period:

- a **selector** picks facts: their event types, their scope (facts about the CPTS, or about professionals),
  which time places them in a period (`event` time, or `ref` time such as a slot's start), whether only the
  latest fact of each `latest_by` (an entity, a subject or an attribute) counts, whether it is a **stock**
  (the state at the end of the period: facts up to the period's end, no lower bound), conditions on
  attributes (`where`), professionals it is restricted to (`subject_in`: other selectors or named sets),
  and a per-professional threshold (`having`: e.g. at least 2 h a week of slots);
- an **operation**: `count` of facts, `distinct` count, `sum` of an attribute (optionally per week),
  `median` or `p90` of an attribute, or `ratio` of two other indicators (a share when scaled by 100);
- **breakdowns**: attributes whose categories get their own values.

Small-cell masking (`masking.py`) applies to every value on the number of facts it counts (`mask_on: n`),
on the value itself when the value is a number of people (`value`), or never (`none`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cpts_indicators.domain.facts import FACT_SCHEMAS, AttributeType, Scope

CATALOGUE_FILE = Path(__file__).with_name("catalogue.json")
PSEUDO_ATTRIBUTES = ("entity", "subject")
COMPARISONS = ("gte", "gt", "lte", "lt", "ne", "in")


class CatalogueError(ValueError):
    """The catalogue does not hold together (unknown event, attribute, set or indicator)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Having(_Model):
    """Keep the subjects (professionals) whose total of attribute `sum` over the period reaches `gte` (a week
    on average when `per_week`)."""

    sum: str
    per_week: bool = False
    gte: float


class Selector(_Model):
    description: str | None = None
    events: list[str] = Field(min_length=1)
    scope: Scope = "cpts"
    time: Literal["event", "ref"] = "event"
    stock: bool = False
    latest_by: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    subject_in: list[str | Selector] = Field(default_factory=list)
    having: Having | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Selector:
        if self.stock and self.time != "event":
            raise ValueError("a stock is the state at the end of the period: it is placed by event time")
        return self


class Computation(_Model):
    op: Literal["count", "distinct", "sum", "median", "p90", "ratio"]
    select: str | Selector | None = None
    of: str | None = None
    per_week: bool = False
    numerator: str | None = None
    denominator: str | None = None
    scale: float = 1.0
    mask_on: Literal["n", "value", "none"] = "n"

    @model_validator(mode="after")
    def _complete(self) -> Computation:
        if self.op == "ratio":
            if not (self.numerator and self.denominator) or self.select is not None:
                raise ValueError("a ratio names a numerator and a denominator indicator, and selects nothing")
        elif self.select is None:
            raise ValueError(f"{self.op} needs a selector")
        if self.op in ("sum", "median", "p90", "distinct") and not self.of:
            raise ValueError(f"{self.op} needs `of`")
        return self


class IndicatorDefinition(_Model):
    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
    version: int = Field(ge=1)
    mission: Literal["1a", "1b", "registry", "custom"]
    label: str
    description: str
    unit: str
    direction: Literal["up", "down", "neutral"]
    compute: Computation
    breakdowns: list[str] = Field(default_factory=list)
    decimals: int = Field(default=0, ge=0, le=3)


class Catalogue(_Model):
    version: str
    description: str
    sets: dict[str, Selector] = Field(default_factory=dict)
    indicators: list[IndicatorDefinition]

    @property
    def by_id(self) -> dict[str, IndicatorDefinition]:
        return {d.id: d for d in self.indicators}

    def selector(self, ref: str | Selector) -> Selector:
        return self.sets[ref] if isinstance(ref, str) else ref

    def stock_event_types(self) -> set[str]:
        """Event types some stock reads: a fact of them changes every period from its own onwards."""
        out: set[str] = set()

        def visit(selector: Selector) -> None:
            if selector.stock:
                out.update(selector.events)
            for inner in selector.subject_in:
                visit(self.selector(inner))

        for selector in self.sets.values():
            visit(selector)
        for definition in self.indicators:
            if definition.compute.select is not None:
                visit(self.selector(definition.compute.select))
        return out

    def reads(self, selector: Selector) -> set[str]:
        """Every event type a selector reads, its `subject_in` sets included."""
        out = set(selector.events)
        for inner in selector.subject_in:
            out |= self.reads(self.selector(inner))
        return out

    def reading(self, event_types: set[str]) -> set[str]:
        """The indicators whose values facts of `event_types` can change (a ratio through either part)."""
        direct = {d.id for d in self.indicators if d.compute.select is not None
                  and self.reads(self.selector(d.compute.select)) & event_types}
        return direct | {d.id for d in self.indicators if d.compute.op == "ratio"
                         and {d.compute.numerator, d.compute.denominator} & direct}


def attribute_type(selector: Selector, name: str) -> AttributeType:
    """The type of attribute `name` in every event type of the selector (they must agree)."""
    found: set[str] = set()
    for event_type in selector.events:
        attributes = FACT_SCHEMAS[event_type].attributes(selector.scope) or {}
        if name not in attributes:
            raise CatalogueError(f"{event_type} facts ({selector.scope}) have no attribute {name!r}")
        found.add(attributes[name])
    if len(found) != 1:
        raise CatalogueError(f"attribute {name!r} has different types across {selector.events}")
    return found.pop()  # type: ignore[return-value]


def _check_selector(catalogue: Catalogue, selector: Selector, where: str) -> None:
    for event_type in selector.events:
        schema = FACT_SCHEMAS.get(event_type)
        if schema is None:
            raise CatalogueError(f"{where}: no facts are kept of event type {event_type!r}")
        if schema.attributes(selector.scope) is None:
            raise CatalogueError(f"{where}: {event_type} gives no facts of scope {selector.scope!r}")
        if selector.time == "ref" and schema.ref_time is None:
            raise CatalogueError(f"{where}: {event_type} facts have no ref time")
    if selector.latest_by and selector.latest_by not in PSEUDO_ATTRIBUTES:
        attribute_type(selector, selector.latest_by)
    for name, condition in selector.where.items():
        if name == "event_type":
            values = condition if isinstance(condition, list) else [condition]
            if not set(values) <= set(selector.events):
                raise CatalogueError(f"{where}: event_type condition outside the selected events")
            continue
        kind = attribute_type(selector, name)
        if isinstance(condition, dict):
            unknown = set(condition) - {*COMPARISONS, "or_null"}
            if unknown:
                raise CatalogueError(f"{where}: unknown comparison(s) {sorted(unknown)} on {name!r}")
        elif kind == "list":
            raise CatalogueError(f"{where}: list attribute {name!r} cannot be compared")
    if selector.having is not None and attribute_type(selector, selector.having.sum) != "num":
        raise CatalogueError(f"{where}: having sums a non-numeric attribute")
    for inner in selector.subject_in:
        if isinstance(inner, str) and inner not in catalogue.sets:
            raise CatalogueError(f"{where}: unknown set {inner!r}")
        _check_selector(catalogue, catalogue.selector(inner), f"{where} > subject_in")


def check_catalogue(catalogue: Catalogue) -> Catalogue:
    """Refuse a catalogue whose definitions refer to unknown events, attributes, sets or indicators."""
    for name, selector in catalogue.sets.items():
        _check_selector(catalogue, selector, f"set {name}")
    by_id = catalogue.by_id
    if len(by_id) != len(catalogue.indicators):
        raise CatalogueError("indicator ids must be unique")
    for definition in catalogue.indicators:
        compute = definition.compute
        if compute.op == "ratio":
            for part in (compute.numerator, compute.denominator):
                if part not in by_id or by_id[part].compute.op == "ratio":
                    raise CatalogueError(f"{definition.id}: {part!r} is not a non-ratio indicator")
            for name in definition.breakdowns:
                for part in (compute.numerator, compute.denominator):
                    if name not in by_id[part].breakdowns:
                        raise CatalogueError(f"{definition.id}: breakdown {name!r} missing from {part}")
            continue
        if isinstance(compute.select, str) and compute.select not in catalogue.sets:
            raise CatalogueError(f"{definition.id}: unknown set {compute.select!r}")
        selector = catalogue.selector(compute.select)  # type: ignore[arg-type]
        _check_selector(catalogue, selector, definition.id)
        if selector.having is not None:
            raise CatalogueError(f"{definition.id}: a selector with `having` yields professionals, use it in "
                                 "subject_in")
        if compute.op in ("sum", "median", "p90") and attribute_type(selector, compute.of or "") != "num":
            raise CatalogueError(f"{definition.id}: {compute.op} of a non-numeric attribute")
        if compute.op == "distinct" and compute.of not in PSEUDO_ATTRIBUTES:
            attribute_type(selector, compute.of or "")
        for name in definition.breakdowns:
            if attribute_type(selector, name) != "str":
                raise CatalogueError(f"{definition.id}: breakdown on non-text attribute {name!r}")
    return catalogue


def load_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    return check_catalogue(Catalogue.model_validate(json.loads(path.read_text(encoding="utf-8"))))


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The catalogue shipped with the service (read and checked once)."""
    return load_catalogue()
