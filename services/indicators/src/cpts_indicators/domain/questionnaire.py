"""The CPTS steering questionnaire: a yearly self-assessment in 42 items (Structure 1-29, Processus 30-39,
Résultats 40-42), kept as data (`questionnaire.json`) and checked here when loaded.

Source: a 2022 public-health thesis on steering tools for CPTS, after Donabedian's three dimensions (see the
document's `source`). Only what the product needs is kept: each item's number, section, sub-dimension, French
label, answer type and options, and which items the registry pre-fills.

Answer types and the JSON value each takes:

- `yes_no`: true or false;
- `number`: a whole number between `minimum` and `maximum`;
- `choice`: one option value, or a list of distinct option values when `multiple` (an `exclusive` option,
  such as « Aucun », cannot be combined with another);
- `month`: `YYYY-MM` (e.g. the creation date of the CPTS);
- `text`: free text of at most `max_length` characters; with `options`, an object giving a text per option
  (the board's composition, role by role). Free text may name people: it stays inside the service.

An item is required unless it has `asked_when` (asked only when another item's answer is among given values):
Q26-Q27 of operating CPTS, Q28 of CPTS not yet operating.

Pre-fill (`prefill.from`): `missions` (the ACI missions the registry holds, as Q3's options), `size_band`
(the ACI size band 1-4, as Q6's options), `communes` (how many communes the territory has) and `members`
(members of the CPTS, mapped to Q12's band by its options' `min`/`max`).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

QUESTIONNAIRE_FILE = Path(__file__).with_name("questionnaire.json")
SECTIONS = ("structure", "processus", "resultats")
PREFILL_SOURCES = ("missions", "size_band", "communes", "members")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
AnswerType = Literal["yes_no", "number", "choice", "month", "text"]
AnswerValue = bool | int | str | list[str] | dict[str, str]


class QuestionnaireError(ValueError):
    """The questionnaire document does not hold together."""


class InvalidAnswer(ValueError):
    """An answer that does not fit its item (the message is in French, for the person filling it in)."""

    def __init__(self, item_id: str, message: str) -> None:
        super().__init__(message)
        self.item_id = item_id
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Option(_Model):
    value: str = Field(min_length=1, max_length=64)
    label: str = Field(min_length=1)
    exclusive: bool = False
    min: int | None = None
    max: int | None = None


class Prefill(_Model):
    source: Literal["missions", "size_band", "communes", "members"] = Field(alias="from")


class Condition(_Model):
    item: str
    values: list[str] = Field(alias="in", min_length=1)


class Section(_Model):
    id: Literal["structure", "processus", "resultats"]
    label: str


class Item(_Model):
    id: str = Field(pattern=r"^q\d{2}$")
    number: int = Field(ge=1)
    section: Literal["structure", "processus", "resultats"]
    sub_dimension: str
    label: str = Field(min_length=1)
    type: AnswerType
    options: list[Option] = Field(default_factory=list)
    multiple: bool = False
    minimum: int | None = None
    maximum: int | None = None
    max_length: int = 2000
    prefill: Prefill | None = None
    asked_when: Condition | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Item:
        if self.id != f"q{self.number:02d}":
            raise QuestionnaireError(f"{self.id}: id does not match number {self.number}")
        if self.type == "choice" and not self.options:
            raise QuestionnaireError(f"{self.id}: a choice needs options")
        if self.type not in ("choice", "text") and self.options:
            raise QuestionnaireError(f"{self.id}: only choices and texts have options")
        if self.multiple and self.type != "choice":
            raise QuestionnaireError(f"{self.id}: only a choice can be multiple")
        values = [o.value for o in self.options]
        if len(set(values)) != len(values):
            raise QuestionnaireError(f"{self.id}: option values must be unique")
        return self

    @property
    def free_text(self) -> bool:
        return self.type == "text"

    def validate_answer(self, value: Any) -> AnswerValue:
        """The answer as stored, or `InvalidAnswer` saying in French what is expected."""
        if self.type == "yes_no":
            if not isinstance(value, bool):
                raise InvalidAnswer(self.id, "réponse attendue : oui (true) ou non (false)")
            return value
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidAnswer(self.id, "réponse attendue : un nombre entier")
            if (self.minimum is not None and value < self.minimum) or (
                    self.maximum is not None and value > self.maximum):
                raise InvalidAnswer(self.id, f"réponse attendue : un nombre entre {self.minimum} et "
                                             f"{self.maximum}")
            return value
        if self.type == "month":
            if not isinstance(value, str) or not MONTH.match(value) or not 1990 <= int(value[:4]) <= 2100:
                raise InvalidAnswer(self.id, "réponse attendue : un mois au format AAAA-MM")
            return value
        if self.type == "text":
            return self._text(value)
        return self._choice(value)

    def _text(self, value: Any) -> AnswerValue:
        if not self.options:
            if not isinstance(value, str) or not value.strip() or len(value) > self.max_length:
                raise InvalidAnswer(self.id, f"réponse attendue : un texte de 1 à {self.max_length} caractères")
            return value.strip()
        known = {o.value for o in self.options}
        if not isinstance(value, dict) or not value or set(value) - known or not all(
                isinstance(v, str) and v.strip() and len(v) <= self.max_length for v in value.values()):
            raise InvalidAnswer(self.id, "réponse attendue : un texte (au plus "
                                         f"{self.max_length} caractères) pour une ou plusieurs de : "
                                         + ", ".join(sorted(known)))
        return {k: v.strip() for k, v in value.items()}

    def _choice(self, value: Any) -> AnswerValue:
        by_value = {o.value: o for o in self.options}
        if not self.multiple:
            if not isinstance(value, str) or value not in by_value:
                raise InvalidAnswer(self.id, "réponse attendue : une de " + ", ".join(by_value))
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) and v in by_value for v in value) \
                or len(set(value)) != len(value):
            raise InvalidAnswer(self.id, "réponse attendue : une liste sans doublon parmi " + ", ".join(by_value))
        exclusive = [v for v in value if by_value[v].exclusive]
        if exclusive and len(value) > 1:
            raise InvalidAnswer(self.id, f"« {by_value[exclusive[0]].label} » exclut toute autre réponse")
        return [o.value for o in self.options if o.value in value]  # in the options' order

    def prefilled_value(self, registry: dict[str, Any]) -> AnswerValue | None:
        """What the registry's figures say for this item (None: nothing known, or nothing that fits)."""
        if self.prefill is None:
            return None
        figure = registry.get(self.prefill.source)
        if figure is None:
            return None
        try:
            if self.type == "choice" and self.multiple and isinstance(figure, list):
                return self.validate_answer([v for v in figure if v in {o.value for o in self.options}])
            if self.type == "choice" and isinstance(figure, int) and any(o.min is not None for o in self.options):
                return next((o.value for o in self.options if (o.min is None or figure >= o.min)
                             and (o.max is None or figure <= o.max)), None)
            if self.type == "choice" and isinstance(figure, int):
                return self.validate_answer(str(figure))
            return self.validate_answer(figure)
        except InvalidAnswer:
            return None


class Questionnaire(_Model):
    version: str = Field(min_length=1)
    title: str
    source: str = Field(min_length=1)
    sections: list[Section]
    prefill_sources: dict[str, str]
    items: list[Item]

    @property
    def by_id(self) -> dict[str, Item]:
        return {item.id: item for item in self.items}

    def applies(self, item: Item, answers: dict[str, Any]) -> bool:
        """Whether `item` is asked, given the answers so far (an item with `asked_when` is asked once the
        item it depends on is answered with one of the given values)."""
        if item.asked_when is None:
            return True
        return answers.get(item.asked_when.item) in item.asked_when.values

    def missing(self, answers: dict[str, Any]) -> list[str]:
        """The ids of the items asked and not answered, in order."""
        return [item.id for item in self.items if self.applies(item, answers) and answers.get(item.id) is None]

    def prefilled(self, registry: dict[str, Any]) -> dict[str, AnswerValue]:
        """The pre-filled value of every pre-fillable item the registry's figures give a value for."""
        out = {}
        for item in self.items:
            value = item.prefilled_value(registry)
            if value is not None:
                out[item.id] = value
        return out


def check_questionnaire(questionnaire: Questionnaire) -> Questionnaire:
    items = questionnaire.items
    if [item.number for item in items] != list(range(1, len(items) + 1)):
        raise QuestionnaireError("items must be numbered 1, 2, 3... in order")
    if [s.id for s in questionnaire.sections] != list(SECTIONS):
        raise QuestionnaireError(f"sections must be {', '.join(SECTIONS)}")
    order = [SECTIONS.index(item.section) for item in items]
    if order != sorted(order):
        raise QuestionnaireError("items must follow the order of the sections")
    by_id = questionnaire.by_id
    for item in items:
        if item.asked_when is not None:
            condition = by_id.get(item.asked_when.item)
            if condition is None or condition.type != "choice" or condition.multiple \
                    or set(item.asked_when.values) - {o.value for o in condition.options}:
                raise QuestionnaireError(f"{item.id}: asked_when must name a single choice and its options")
        if item.prefill is not None and item.prefill.source not in questionnaire.prefill_sources:
            raise QuestionnaireError(f"{item.id}: undocumented pre-fill source {item.prefill.source}")
    if set(questionnaire.prefill_sources) - set(PREFILL_SOURCES):
        raise QuestionnaireError(f"pre-fill sources are among {', '.join(PREFILL_SOURCES)}")
    return questionnaire


def load_questionnaire(path: Path = QUESTIONNAIRE_FILE) -> Questionnaire:
    try:
        return check_questionnaire(Questionnaire.model_validate(json.loads(path.read_text(encoding="utf-8"))))
    except ValueError as exc:  # pydantic's ValidationError included
        raise QuestionnaireError(str(exc)) from exc


@lru_cache(maxsize=1)
def questionnaire() -> Questionnaire:
    """The questionnaire shipped with the service (read and checked once)."""
    return load_questionnaire()
