"""ACI funding simulation of a CPTS for a year: fixed part + variable part per mission, from the amounts kept
as data (`funding.json`, source named there) and the attainment of the CPTS's yearly targets.

- The items funded: `fonctionnement` (fixed only) and every mission contracted. The socle missions are part of
  every ACI; an optional one counts when the registry lists it among the CPTS's missions.
- Per item: amount at 100 % for the size band, split into a fixed part (`fixed_share`; 75 % of it paid at the
  start of a mission; operation is paid as a whole) and a variable part paid in proportion of the mission's
  attainment.
- Attainment (rule `partial_attainment` in the data): each targeted indicator gets a rate, capped at 100 %, in
  its direction of progress; a value that is masked (small cell) or missing gets `unassessable_rate`, so a
  simulation never depends on a value the CPTS may not publish. The mission's rate is the mean of its
  indicators' rates (`mean_capped_ratio`) or the share of its targets reached (`share_reached`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FUNDING_FILE = Path(__file__).with_name("funding.json")
SIZE_BANDS = ("1", "2", "3", "4")
# Rates are ratios of floats: a target met to within this tolerance counts as reached.
EPSILON = 1e-9


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FundingItem(_Model):
    id: str
    label: str
    kind: Literal["fonctionnement", "socle", "optional"]
    missions: list[str] = Field(description="Codes of the registry's missions this item funds.")
    indicator_missions: list[str] = Field(description="Catalogue missions whose targets weigh on it.")
    fixed_share: float = Field(ge=0, le=1)
    amounts: dict[str, float] = Field(description="Amount per year at 100 % attainment, per size band.")

    @model_validator(mode="after")
    def _every_band(self) -> FundingItem:
        if set(self.amounts) != set(SIZE_BANDS) or any(a < 0 for a in self.amounts.values()):
            raise ValueError(f"{self.id}: one non-negative amount per size band {SIZE_BANDS}")
        return self


class FixedPart(_Model):
    paid_at_start_share: float = Field(ge=0, le=1)
    description: str


class PartialAttainment(_Model):
    rule: Literal["mean_capped_ratio", "share_reached"]
    unassessable_rate: float = Field(ge=0, le=1)
    without_targets_rate: float = Field(ge=0, le=1)
    description: str


class FundingRules(_Model):
    version: str
    currency: str
    source: str
    size_bands: dict[str, object]
    fixed_part: FixedPart
    partial_attainment: PartialAttainment
    items: list[FundingItem]
    fixed_share_note: str


def load_funding(path: Path = FUNDING_FILE) -> FundingRules:
    return FundingRules.model_validate(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def funding_rules() -> FundingRules:
    """The funding rules shipped with the service (read once)."""
    return load_funding()


def indicator_rate(value: float | None, target: float, direction: str) -> float | None:
    """How far a value goes towards its target, between 0 and 1; None when the value is unknown (masked)."""
    if value is None:
        return None
    if direction == "down":
        if value <= target + EPSILON:
            return 1.0
        return max(0.0, min(1.0, target / value))
    if target <= 0:
        return 1.0
    return max(0.0, min(1.0, value / target))


@dataclass(frozen=True)
class Attainment:
    """One targeted indicator of a year: its catalogue mission, direction, target and published value."""

    indicator_id: str
    mission: str
    direction: str
    target: float
    value: float | None

    @property
    def rate(self) -> float | None:
        return indicator_rate(self.value, self.target, self.direction)

    @property
    def reached(self) -> bool | None:
        rate = self.rate
        return None if rate is None else rate >= 1 - EPSILON


def mission_rate(rules: PartialAttainment, attainments: list[Attainment]) -> float:
    """The attainment rate of a mission from its targeted indicators, by the rule of the data."""
    if not attainments:
        return rules.without_targets_rate
    rates = [rules.unassessable_rate if a.rate is None else a.rate for a in attainments]
    if rules.rule == "share_reached":
        rates = [1.0 if r >= 1 - EPSILON else 0.0 for r in rates]
    return sum(rates) / len(rates)


@dataclass(frozen=True)
class ItemFunding:
    item: FundingItem
    amount: float
    fixed: float
    fixed_paid_at_start: float | None
    variable_max: float
    attainment: float | None
    variable: float
    targets: int
    assessed: int

    @property
    def total(self) -> float:
        return round(self.fixed + self.variable, 2)


@dataclass(frozen=True)
class FundingSimulation:
    version: str
    size_band: int
    items: list[ItemFunding]

    @property
    def fixed(self) -> float:
        return round(sum(i.fixed for i in self.items), 2)

    @property
    def variable(self) -> float:
        return round(sum(i.variable for i in self.items), 2)

    @property
    def variable_max(self) -> float:
        return round(sum(i.variable_max for i in self.items), 2)

    @property
    def total(self) -> float:
        return round(self.fixed + self.variable, 2)

    @property
    def maximum(self) -> float:
        return round(sum(i.amount for i in self.items), 2)


def contracted_items(rules: FundingRules, missions: Iterable[str]) -> list[FundingItem]:
    """Operation, the socle missions, and the optional missions the registry lists for the CPTS."""
    listed = set(missions)
    return [item for item in rules.items
            if item.kind in ("fonctionnement", "socle") or listed & set(item.missions)]


def simulate(rules: FundingRules, *, size_band: int, missions: Iterable[str],
             attainments: Iterable[Attainment]) -> FundingSimulation:
    """The funding of a year: per contracted item its fixed part and its variable part at the attainment of
    the targets of its missions' indicators."""
    if str(size_band) not in SIZE_BANDS:
        raise ValueError(f"size band {size_band} is not one of {SIZE_BANDS}")
    attainments = list(attainments)
    out = []
    for item in contracted_items(rules, missions):
        amount = item.amounts[str(size_band)]
        fixed = round(amount * item.fixed_share, 2)
        variable_max = round(amount - fixed, 2)
        mine = [a for a in attainments if a.mission in item.indicator_missions]
        rate = mission_rate(rules.partial_attainment, mine) if variable_max else None
        out.append(ItemFunding(
            item=item, amount=amount, fixed=fixed,
            fixed_paid_at_start=None if item.kind == "fonctionnement"
            else round(fixed * rules.fixed_part.paid_at_start_share, 2),
            variable_max=variable_max, attainment=rate,
            variable=round(variable_max * rate, 2) if rate is not None else 0.0,
            targets=len(mine), assessed=sum(a.rate is not None for a in mine)))
    return FundingSimulation(version=rules.version, size_band=size_band, items=out)
