"""Response bodies of the indicators API (values always as published: small cells masked)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from cpts_indicators.domain.catalogue import IndicatorDefinition
from cpts_indicators.domain.masking import Cell, PublishedValue
from cpts_indicators.domain.periods import Period, PeriodKind


class ProfessionalCount(BaseModel):
    cpts_id: str
    members: int = Field(description="Membres de la CPTS (adhérents et actifs).")
    active_members: int
    professionals: int = Field(
        description="Inscriptions de professionnels comptées depuis les événements du registre.")
    last_event_time: datetime | None


class DefinitionPublic(BaseModel):
    id: str
    version: int
    mission: Literal["1a", "1b", "registry"]
    label: str
    description: str
    unit: str
    direction: Literal["up", "down", "neutral"] = Field(description="Sens de progression attendu.")
    computation: dict[str, Any] = Field(
        description="Calcul depuis les faits (voir la description du catalogue).")
    breakdowns: list[str]
    decimals: int

    @classmethod
    def of(cls, definition: IndicatorDefinition) -> DefinitionPublic:
        return cls(id=definition.id, version=definition.version, mission=definition.mission,
                   label=definition.label, description=definition.description, unit=definition.unit,
                   direction=definition.direction, breakdowns=definition.breakdowns,
                   computation=definition.compute.model_dump(exclude_defaults=True),
                   decimals=definition.decimals)


class CataloguePublic(BaseModel):
    version: str
    description: str
    small_cell_threshold: int = Field(description="Les effectifs de 1 à ce seuil moins un sont masqués.")
    period_kinds: list[PeriodKind]
    sets: dict[str, dict[str, Any]] = Field(
        description="Ensembles de faits nommés, réutilisés par les définitions.")
    indicators: list[DefinitionPublic]


class PeriodPublic(BaseModel):
    kind: PeriodKind
    key: str = Field(examples=["2026-11"])
    start: datetime = Field(description="Début (inclus), heure de Paris.")
    end: datetime = Field(description="Fin (exclue), heure de Paris.")

    @classmethod
    def of(cls, period: Period) -> PeriodPublic:
        from cpts_indicators.domain.periods import PARIS

        return cls(kind=period.kind, key=period.key, start=period.start.astimezone(PARIS),
                   end=period.end.astimezone(PARIS))


class CellPublic(BaseModel):
    value: float | None = Field(description="Valeur ; absente si masquée ou indéfinie (ratio sur zéro).")
    masked: bool = Field(description="Petit effectif masqué (ou ratio construit sur un petit effectif).")
    last_event_time: datetime | None = Field(
        description="Heure du dernier événement compté ; absente si masquée.")

    @classmethod
    def of(cls, cell: Cell) -> CellPublic:
        return cls(value=cell.value, masked=cell.masked, last_event_time=cell.last_event_time)


class BreakdownCellPublic(CellPublic):
    category: str


class BreakdownPublic(BaseModel):
    attribute: str
    cells: list[BreakdownCellPublic]


class IndicatorValuePublic(CellPublic):
    indicator_id: str
    version: int
    label: str
    unit: str
    breakdowns: list[BreakdownPublic]

    @classmethod
    def from_published(cls, value: PublishedValue) -> IndicatorValuePublic:
        d = value.definition
        return cls(indicator_id=d.id, version=d.version, label=d.label, unit=d.unit, value=value.total.value,
                   masked=value.total.masked, last_event_time=value.total.last_event_time,
                   breakdowns=_breakdowns(value))


def _breakdowns(value: PublishedValue) -> list[BreakdownPublic]:
    return [BreakdownPublic(attribute=name, cells=[
        BreakdownCellPublic(category=category, **CellPublic.of(cell).model_dump())
        for category, cell in sorted(cells.items())]) for name, cells in value.breakdowns.items()]


class CptsIndicators(BaseModel):
    cpts_id: str
    period: PeriodPublic
    catalogue_version: str
    small_cell_threshold: int
    computed_at: datetime
    indicators: list[IndicatorValuePublic]


class SeriesPoint(CellPublic):
    period: PeriodPublic
    breakdowns: list[BreakdownPublic]

    @classmethod
    def from_published(cls, value: PublishedValue) -> SeriesPoint:
        return cls(period=PeriodPublic.of(value.period), value=value.total.value, masked=value.total.masked,
                   last_event_time=value.total.last_event_time, breakdowns=_breakdowns(value))


class IndicatorSeries(BaseModel):
    cpts_id: str
    indicator: DefinitionPublic
    small_cell_threshold: int
    computed_at: datetime
    points: list[SeriesPoint]


class RebuildResult(BaseModel):
    cpts: int = Field(description="CPTS recalculées.")
    snapshots: int = Field(description="Instantanés recalculés.")
    sent: int = Field(description="Instantanés envoyés parce que leur contenu a changé.")
