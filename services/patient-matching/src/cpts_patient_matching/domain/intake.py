"""Checks of the patient data taken at enrolment: NIR key (`cpts_platform.identifiers`), birth date, commune,
and the age rules."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from cpts_geo import Commune, communes
from cpts_platform.identifiers import nir_problem
from cpts_patient_matching.domain.errors import InvalidPatient

PARIS = ZoneInfo("Europe/Paris")
CHILD_UNDER_YEARS = 16
"""Under 16 a patient is a child (the médecin traitant of a child, and the GP's `children` public)."""
SENIOR_FROM_YEARS = 70
"""The ACI priority group of patients aged 70 and over."""
OLDEST_YEARS = 125


def paris_today(now: datetime) -> date:
    """The calendar day in France (ages, waiting days, months of capacity are counted in Paris days)."""
    return now.astimezone(PARIS).date()


def check_nir(nir: str, *, field: str = "ins_nir") -> None:
    """The NIR of a qualified INS identity, its key checked; the value is never echoed in the error."""
    problem = nir_problem(nir)
    if problem is not None:
        raise InvalidPatient(problem, field=field)


def check_birth_date(birth_date: date, today: date, *, field: str = "birth_date") -> None:
    if birth_date > today:
        raise InvalidPatient("birth date is in the future", field=field)
    if birth_date < date(today.year - OLDEST_YEARS, 1, 1):
        raise InvalidPatient(f"birth date is more than {OLDEST_YEARS} years ago", field=field)


def check_commune(insee: str, *, field: str = "commune_insee") -> Commune:
    """The commune (with the point distances are measured from), or InvalidPatient."""
    commune = communes().get(insee)
    if commune is None or commune.lat is None or commune.lon is None:
        raise InvalidPatient(f"unknown commune {insee}", field=field)
    return commune


def age_on(birth_date: date, today: date) -> int:
    """Age in whole years on `today`."""
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def age_band(birth_date: date, today: date) -> str:
    """child (under 16), adult, or 70+ (the bands of the events, as snp-dispatch's)."""
    years = age_on(birth_date, today)
    return "child" if years < CHILD_UNDER_YEARS else "70+" if years >= SENIOR_FROM_YEARS else "adult"


def is_child(birth_date: date, today: date) -> bool:
    return age_on(birth_date, today) < CHILD_UNDER_YEARS
