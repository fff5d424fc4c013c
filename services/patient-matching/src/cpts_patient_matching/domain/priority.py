"""Transparent priority of the patients waiting for a médecin traitant: a score, its parts, a French sentence.

The score is a sum of points, all kept in configuration (`PriorityWeights`, settings `priority`):

* `base` for everyone (the solver needs positive weights);
* one amount per priority fact: ALD, 70 and over (from the birth date, on the day of the computation), C2S,
  then the others (pregnancy, disability, hospital discharge in the last `recent_discharge_days` days, and
  "complex" patients after a nurse's assessment); the amounts add up when several facts apply;
* `per_waiting_day` for every day since enrolment, so that nobody waits forever.

Why these defaults. A round maximises the sum of the scores of the patients it serves, so when demand exceeds
capacity the round serves the highest scores first. A fact worth P points is then worth P / per_waiting_day
days of waiting: with 2 points a day, ALD (400) puts a patient 200 days ahead in the queue, 70 and over (250)
125 days, C2S (150) 75 days, each other fact (100) 50 days. A patient with none of them is therefore served
before a newly enrolled ALD patient once they have waited 200 days more, instead of never (weights of 1000
for ALD and 1 a day would mean 900 days, or 2.5 years, i.e. ALD patients take every place as long as some are
enrolled). The order of the groups (ALD, then 70+, then C2S, then the others) is the ACI's and CPTS plans'.

Among equal scores the earlier enrolment goes first, then the record id (the round's tie-break).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from cpts_patient_matching.domain.intake import PARIS, SENIOR_FROM_YEARS, age_on

GROUP_ORDER = ("ald", "70+", "c2s")
OTHER_FACTS = ("pregnancy", "disability", "recent_hospital_discharge", "complex")
FACT_LABELS = {
    "ald": "ALD",
    "70+": "70 ans et plus",
    "c2s": "C2S",
    "pregnancy": "grossesse",
    "disability": "handicap",
    "recent_hospital_discharge": "sortie d'hospitalisation récente",
    "complex": "patient complexe (évaluation infirmière)",
}


@dataclass(frozen=True)
class PriorityWeights:
    """Points of the priority score (see the module docstring for why these defaults)."""

    base: int = 100
    ald: int = 400
    age_70_plus: int = 250
    c2s: int = 150
    pregnancy: int = 100
    disability: int = 100
    recent_hospital_discharge: int = 100
    complex: int = 100
    per_waiting_day: int = 2
    recent_discharge_days: int = 90

    def __post_init__(self) -> None:
        if self.base < 1:
            raise ValueError("priority base must be at least 1 (the round needs positive weights)")
        for name in ("ald", "age_70_plus", "c2s", "pregnancy", "disability", "recent_hospital_discharge",
                     "complex", "per_waiting_day", "recent_discharge_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"priority {name} must be >= 0")

    def points(self, fact: str) -> int:
        return {"ald": self.ald, "70+": self.age_70_plus, "c2s": self.c2s, "pregnancy": self.pregnancy,
                "disability": self.disability, "recent_hospital_discharge": self.recent_hospital_discharge,
                "complex": self.complex}[fact]


@dataclass(frozen=True)
class PriorityFacts:
    """What the score is computed from (a patient record's facts)."""

    birth_date: date
    enrolled_on: date
    ald: bool = False
    c2s: bool = False
    pregnancy: bool = False
    disability: bool = False
    hospital_discharge_on: date | None = None
    complex: bool = False


@dataclass(frozen=True)
class Component:
    """One part of a score: a fact (or `base`, `waiting`) with its label and points."""

    key: str
    label: str
    points: int


@dataclass(frozen=True)
class Priority:
    score: int
    group: str
    """The highest priority group: ald, 70+, c2s, other_priority or none."""
    facts: tuple[str, ...]
    """Every priority fact that applies, in the order of FACT_LABELS."""
    age: int
    waiting_days: int
    components: tuple[Component, ...]
    explanation: str
    """e.g. "ALD, 74 ans, attend depuis 63 jours"."""

    def points_of(self, key: str) -> int:
        return sum(c.points for c in self.components if c.key == key)


def priority_facts(facts: PriorityFacts, today: date, weights: PriorityWeights) -> tuple[str, ...]:
    """The priority facts of a patient on `today` (age and the recency of a discharge depend on the day)."""
    found = []
    if facts.ald:
        found.append("ald")
    if age_on(facts.birth_date, today) >= SENIOR_FROM_YEARS:
        found.append("70+")
    if facts.c2s:
        found.append("c2s")
    if facts.pregnancy:
        found.append("pregnancy")
    if facts.disability:
        found.append("disability")
    if facts.hospital_discharge_on is not None and \
            0 <= (today - facts.hospital_discharge_on).days <= weights.recent_discharge_days:
        found.append("recent_hospital_discharge")
    if facts.complex:
        found.append("complex")
    return tuple(found)


def group_of(facts: tuple[str, ...] | list[str]) -> str:
    for group in GROUP_ORDER:
        if group in facts:
            return group
    return "other_priority" if facts else "none"


def _days(n: int) -> str:
    return f"{n} jour" if n < 2 else f"{n} jours"


def priority(facts: PriorityFacts, today: date, weights: PriorityWeights) -> Priority:
    """The score of a patient on `today`, its components and its French explanation."""
    found = priority_facts(facts, today, weights)
    age = age_on(facts.birth_date, today)
    waiting = max((today - facts.enrolled_on).days, 0)
    components = [Component("base", "socle", weights.base)]
    components += [Component(fact, FACT_LABELS[fact], weights.points(fact)) for fact in found]
    components.append(Component("waiting", f"attente ({_days(waiting)})", waiting * weights.per_waiting_day))
    labels = []
    for fact in found:
        if fact == "70+":
            continue  # said by the age
        if fact == "recent_hospital_discharge" and facts.hospital_discharge_on is not None:
            days = (today - facts.hospital_discharge_on).days
            labels.append(f"sortie d'hospitalisation il y a {_days(days)}")
        else:
            labels.append(FACT_LABELS[fact])
    labels.append(f"{age} an" if age < 2 else f"{age} ans")
    labels.append("inscrit aujourd'hui" if waiting == 0 else f"attend depuis {_days(waiting)}")
    return Priority(score=sum(c.points for c in components), group=group_of(found), facts=found, age=age,
                    waiting_days=waiting, components=tuple(components), explanation=", ".join(labels))


@dataclass(frozen=True)
class Ranked:
    """A patient as the priority order sees it."""

    patient_id: str
    enrolled_at: datetime
    priority: Priority

    @property
    def order_key(self) -> tuple[int, datetime, str]:
        """Higher score first, then earlier enrolment, then the record id (the round's tie-break)."""
        return (-self.priority.score, self.enrolled_at, self.patient_id)


@dataclass(frozen=True)
class Comparison:
    first: str
    """"a" or "b": who comes first."""
    score_difference: int
    """Score of the first minus score of the second (>= 0)."""
    differences: tuple[tuple[str, str, int], ...]
    """(key, label, points of a - points of b) for every component that differs."""
    explanation: str


def _day(moment: datetime) -> str:
    return moment.astimezone(PARIS).date().strftime("%d/%m/%Y")


def compare(a: Ranked, b: Ranked, *, label_a: str = "A", label_b: str = "B") -> Comparison:
    """Why one patient comes before the other, in French: the scores, then the components that differ."""
    first, second = (a, b) if a.order_key <= b.order_key else (b, a)
    name_first, name_second = (label_a, label_b) if first is a else (label_b, label_a)
    keys = dict.fromkeys(c.key for c in (*a.priority.components, *b.priority.components))
    differences = []
    for key in keys:
        delta = a.priority.points_of(key) - b.priority.points_of(key)
        if delta:
            label = "attente" if key == "waiting" else FACT_LABELS.get(key, key)
            differences.append((key, label, delta))
    sa_, sb = first.priority.score, second.priority.score
    if sa_ != sb:
        parts = []
        for key, label, delta in differences:
            winner = label_a if delta > 0 else label_b
            detail = f"{label} : +{abs(delta)} pour {winner}"
            if key == "waiting":
                days = abs(a.priority.waiting_days - b.priority.waiting_days)
                detail += f" ({_days(days)} de plus)"
            parts.append(detail)
        text = (f"{name_first} passe avant {name_second} : {sa_} points contre {sb} "
                f"({first.priority.explanation} / {second.priority.explanation}). "
                f"Écarts : {' ; '.join(parts)}.")
    elif first.enrolled_at != second.enrolled_at:
        text = (f"À score égal ({sa_} points), {name_first} passe avant {name_second} car inscrit plus tôt "
                f"(le {_day(first.enrolled_at)} contre le {_day(second.enrolled_at)}).")
    else:
        text = (f"À score et date d'inscription égaux ({sa_} points), {name_first} passe avant {name_second} "
                "par l'ordre des identifiants de dossier.")
    text += (" À distance et disponibilité égales, un tour d'appariement sert le premier avant le second ; "
             "la géographie (mobilité, médecins proches) peut faire servir l'autre.")
    return Comparison(first="a" if first is a else "b", score_difference=sa_ - sb,
                      differences=tuple(differences), explanation=text)
