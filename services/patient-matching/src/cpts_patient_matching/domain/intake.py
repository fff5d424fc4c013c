"""Checks of the patient data taken at enrolment: NIR key, birth date, commune, and the age rules.

`check_nir` and `nir_key` are the same rule as snp-dispatch's intake (services never import each other): they
are meant to move to a shared library.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from cpts_geo import Commune, communes
from cpts_patient_matching.domain.errors import InvalidPatient

PARIS = ZoneInfo("Europe/Paris")
NIR_PATTERN = re.compile(r"^[12378]\d{4}(\d{2}|2A|2B)\d{6}\d{2}$")
CHILD_UNDER_YEARS = 16
"""Under 16 a patient is a child (the médecin traitant of a child, and the GP's `children` public)."""
SENIOR_FROM_YEARS = 70
"""The ACI priority group of patients aged 70 and over."""
OLDEST_YEARS = 125


def paris_today(now: datetime) -> date:
    """The calendar day in France (ages, waiting days, months of capacity are counted in Paris days)."""
    return now.astimezone(PARIS).date()


def check_nir(nir: str, *, field: str = "ins_nir") -> None:
    """A NIR of 15 characters whose key is 97 - (first 13 digits mod 97), Corsica's 2A / 2B read as 19 / 18.

    The value is never echoed in the error (it identifies the patient)."""
    if not NIR_PATTERN.fullmatch(nir):
        raise InvalidPatient("NIR must be 15 characters: 13 digits (2A/2B allowed for Corsica) and a 2-digit "
                             "key", field=field)
    if nir_key(nir[:13]) != nir[13:]:
        raise InvalidPatient("NIR key does not match", field=field)


def nir_key(first13: str) -> str:
    """The 2-digit key of a NIR's first 13 characters (2A and 2B only occur as the département)."""
    body = first13.replace("2A", "19").replace("2B", "18")
    return f"{97 - int(body) % 97:02d}"


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
