"""Events published by the indicators service (topic `indicators`, keyed by CPTS), for the ARS and the CPAM.

A snapshot holds every indicator of one CPTS for one period, as published everywhere else: a small count
(and any ratio built on one) is masked, with neither its value nor the time of its last event. Never any
patient-level data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from cpts_events.catalogue import event_type, topics
from cpts_events.envelope import EventPayload
from cpts_events.registry import FINESS_PATTERN

PeriodKind = Literal["day", "week", "month", "quarter", "year"]


class IndicatorCell(EventPayload):
    value: float | None = Field(description="The value; none when masked or undefined (a ratio over zero).")
    masked: bool = Field(description="Small cell: between 1 and the threshold minus one, or built on one.")
    last_event_time: datetime | None = Field(
        default=None, description="Time of the last event counted; none when masked.")


class IndicatorBreakdownCell(IndicatorCell):
    category: str


class IndicatorBreakdown(EventPayload):
    attribute: str = Field(description="What the values are broken down by, e.g. origin, orientation.")
    cells: list[IndicatorBreakdownCell]


class IndicatorValue(IndicatorCell):
    indicator_id: str
    version: int = Field(ge=1, description="Version of the indicator's definition.")
    unit: str
    breakdowns: list[IndicatorBreakdown] = Field(default_factory=list)


@event_type("fr.cpts.indicators.snapshot.v1", topic=topics.INDICATORS, key="cpts_id",
            description="The indicators of a CPTS for a period changed: every indicator of the catalogue, "
                        "with small cells masked. Sent at most once per CPTS and period per snapshot interval, "
                        "when the masked content changed; `sequence` orders the snapshots of one CPTS and period.")
class IndicatorSnapshot(EventPayload):
    cpts_id: str = Field(pattern=FINESS_PATTERN)
    period: PeriodKind
    period_key: str = Field(description="2026-11-23, 2026-W48, 2026-11, 2026-Q4 or 2026 (Europe/Paris time).")
    period_start: datetime
    period_end: datetime
    final: bool = Field(description="The period is closed (Paris time): sent once per CPTS and closed period, "
                                    "then only if a late event corrects it (final too, higher `sequence`).")
    sequence: int = Field(ge=1)
    catalogue_version: str
    small_cell_threshold: int = Field(ge=1, description="Counts from 1 to this value minus one are masked.")
    computed_at: datetime
    indicators: list[IndicatorValue]


class QuestionnaireAnswer(EventPayload):
    item_id: str = Field(description="Item of the questionnaire, q01 to q42.")
    value: bool | int | str | list[str] = Field(
        description="yes/no: a boolean; number: an integer; choice: an option value, or a list of them; month: "
                    "YYYY-MM.")
    prefilled: bool = Field(description="Taken from the registry (size band, communes, members, missions).")


@event_type("fr.cpts.indicators.questionnaire.submitted.v1", topic=topics.INDICATORS, key="cpts_id",
            description="A CPTS submitted its yearly steering questionnaire (self-assessment in 42 items: "
                        "Structure, Processus, Résultats). Free-text answers may name people: they are withheld "
                        "(`withheld` lists them) and stay in the indicators service. At most one per CPTS and year.")
class QuestionnaireSubmitted(EventPayload):
    cpts_id: str = Field(pattern=FINESS_PATTERN)
    year: int = Field(ge=2019, le=2100)
    questionnaire_version: str
    submitted_at: datetime
    answers: list[QuestionnaireAnswer] = Field(description="Every item answered, in the questionnaire's order.")
    withheld: list[str] = Field(default_factory=list,
                                description="Items answered in free text, not sent (may hold personal data).")
