"""Care-request rules: the patient's NIR key, the regulation window, the search radius."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from cpts_platform.identifiers import nir_problem
from cpts_snp_dispatch.domain.errors import InvalidIntake
from cpts_snp_dispatch.domain.slots import PARIS


def check_nir(nir: str) -> None:
    """The NIR of a qualified INS identity, its key checked (`cpts_platform.identifiers`)."""
    problem = nir_problem(nir)
    if problem is not None:
        raise InvalidIntake(problem, field="patient.ins_nir")


def check_birth_date(birth_date: date, today: date) -> None:
    if birth_date > today:
        raise InvalidIntake("birth date is in the future", field="patient.birth_date")
    if birth_date < date(today.year - 125, 1, 1):
        raise InvalidIntake("birth date is more than 125 years ago", field="patient.birth_date")


def age_band(birth_date: date, today: date) -> str:
    years = today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))
    return "child" if years < 16 else "70+" if years >= 70 else "adult"


def search_window(now: datetime, urgency: str) -> tuple[datetime, datetime]:
    """From now to 23:59:59 (Paris) on day+2 for the SAS's 48 h; end of today for same day; now + 24 h for 24 h."""
    local = now.astimezone(PARIS)
    if urgency == "same_day":
        end = datetime.combine(local.date(), time(23, 59, 59), PARIS)
    elif urgency == "24h":
        end = now + timedelta(hours=24)
    else:
        end = datetime.combine(local.date() + timedelta(days=2), time(23, 59, 59), PARIS)
    return now, end


DAY_GROUPS = ("today", "tomorrow", "after_tomorrow")  # of the cards' slots, in Paris local days


def day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The Paris midnights that end today and tomorrow: before the first, `today`; before the second,
    `tomorrow`; after, `after_tomorrow`."""
    today = now.astimezone(PARIS).date()
    return (datetime.combine(today + timedelta(days=1), time(0), PARIS),
            datetime.combine(today + timedelta(days=2), time(0), PARIS))


def radius_steps(default_km: float, step_km: float, max_km: float) -> list[float]:
    """The radii tried in turn: the département default, then enlarged by its step up to the maximum."""
    radii = [min(default_km, max_km)]
    while radii[-1] < max_km and step_km > 0:
        radii.append(min(radii[-1] + step_km, max_km))
    return radii
