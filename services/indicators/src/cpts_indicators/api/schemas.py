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
    mission: Literal["1a", "1b", "registry", "custom"] = Field(
        description="Mission de l'ACI ; « custom » : indicateur défini par la CPTS.")
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


class QuestionnaireAnswerPublic(BaseModel):
    item_id: str = Field(examples=["q07"])
    value: bool | int | str | list[str] | dict[str, str] = Field(
        description="Oui/non : booléen ; nombre : entier ; choix : valeur d'option (liste si choix multiple) ; "
                    "mois : AAAA-MM ; texte : chaîne (ou objet rôle → texte pour la composition du bureau).")
    prefilled: bool = Field(description="Valeur pré-remplie depuis le registre, pas encore saisie.")


class CptsQuestionnaire(BaseModel):
    cpts_id: str
    year: int
    status: Literal["new", "draft", "submitted"] = Field(
        description="new : rien d'enregistré ; draft : brouillon ; submitted : soumis, en lecture seule.")
    questionnaire_version: str
    answers: list[QuestionnaireAnswerPublic] = Field(description="Dans l'ordre du questionnaire.")
    missing: list[str] = Field(description="Questions obligatoires encore sans réponse.")
    updated_at: datetime | None
    submitted_at: datetime | None


class CptsQuestionnaireColumn(BaseModel):
    cpts_id: str
    name: str | None
    departements: list[str]
    status: Literal["new", "draft", "submitted"] = Field(
        description="Seuls les questionnaires soumis sont montrés à l'ARS (sinon « new », sans réponses).")
    submitted_at: datetime | None
    answers: dict[str, bool | int | str | list[str] | dict[str, str]] = Field(
        description="Réponses par question (q01 à q42).")


class RegionalQuestionnaires(BaseModel):
    year: int
    questionnaire_version: str
    cpts: list[CptsQuestionnaireColumn] = Field(description="Les CPTS des départements de l'appelant, côte à côte.")


class CptsQuestionnaireHistory(BaseModel):
    cpts_id: str
    name: str | None
    years: list[CptsQuestionnaire] = Field(description="Un questionnaire par année, de la plus ancienne à la "
                                                       "plus récente.")
