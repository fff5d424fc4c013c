"""Reporting periods (day, ISO week, month, quarter, year) in Europe/Paris local time, as UTC instants.

A period is half-open, [start, end): an event at local midnight belongs to the period that starts then.
Keys: `2026-11-23` (day), `2026-W48` (ISO week), `2026-11` (month), `2026-Q4` (quarter), `2026` (year).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class InvalidPeriod(ValueError):
    """A period key that does not parse, or a range that is empty or too long."""


@dataclass(frozen=True, order=True)
class Period:
    """One period: its kind, key, first local day and the local day after its last one."""

    first_day: date
    next_day: date
    kind: PeriodKind
    key: str

    @property
    def start(self) -> datetime:
        return _local_midnight(self.first_day)

    @property
    def end(self) -> datetime:
        return _local_midnight(self.next_day)

    @property
    def weeks(self) -> float:
        """Length in weeks of calendar days (a DST day counts as a full day)."""
        return (self.next_day - self.first_day).days / 7

    def next(self) -> Period:
        return period_of_day(self.kind, self.next_day)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, PARIS).astimezone(UTC)


def local_day(moment: datetime) -> date:
    return moment.astimezone(PARIS).date()


@lru_cache(maxsize=16384, typed=True)
def period_of_day(kind: PeriodKind, day: date) -> Period:
    """The period of `kind` holding the local day `day` (memoised: periods are immutable)."""
    if kind is PeriodKind.DAY:
        return Period(day, day + timedelta(days=1), kind, day.isoformat())
    if kind is PeriodKind.WEEK:
        monday = day - timedelta(days=day.isoweekday() - 1)
        year, week, _ = monday.isocalendar()
        return Period(monday, monday + timedelta(days=7), kind, f"{year}-W{week:02d}")
    if kind is PeriodKind.MONTH:
        first = day.replace(day=1)
        return Period(first, _add_months(first, 1), kind, f"{day.year}-{day.month:02d}")
    if kind is PeriodKind.QUARTER:
        quarter = (day.month - 1) // 3 + 1
        first = date(day.year, 3 * quarter - 2, 1)
        return Period(first, _add_months(first, 3), kind, f"{day.year}-Q{quarter}")
    first = date(day.year, 1, 1)
    return Period(first, date(day.year + 1, 1, 1), kind, str(day.year))


def period_of(kind: PeriodKind, moment: datetime) -> Period:
    """The period of `kind` holding the instant `moment` (an aware datetime), in Paris local time."""
    return period_of_day(kind, local_day(moment))


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


_KEY_PATTERNS = {
    PeriodKind.DAY: re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
    PeriodKind.WEEK: re.compile(r"^(\d{4})-W(\d{2})$"),
    PeriodKind.MONTH: re.compile(r"^(\d{4})-(\d{2})$"),
    PeriodKind.QUARTER: re.compile(r"^(\d{4})-Q([1-4])$"),
    PeriodKind.YEAR: re.compile(r"^(\d{4})$"),
}


def parse_period(kind: PeriodKind, text: str) -> Period:
    """The period of `kind` named by its key (`2026-11` for a month...) or holding a date (`2026-11-23`)."""
    text = text.strip()
    try:
        day_match = _KEY_PATTERNS[PeriodKind.DAY].match(text)
        if day_match:
            return period_of_day(kind, date.fromisoformat(text))
        match = _KEY_PATTERNS[kind].match(text)
        if match is None:
            raise InvalidPeriod(f"{text!r} is not a {kind.value} key (e.g. {example_key(kind)}) nor a date")
        year = int(match.group(1))
        if kind is PeriodKind.WEEK:
            return period_of_day(kind, date.fromisocalendar(year, int(match.group(2)), 1))
        if kind is PeriodKind.MONTH:
            return period_of_day(kind, date(year, int(match.group(2)), 1))
        if kind is PeriodKind.QUARTER:
            return period_of_day(kind, date(year, 3 * int(match.group(2)) - 2, 1))
        return period_of_day(kind, date(year, 1, 1))
    except ValueError as exc:
        if isinstance(exc, InvalidPeriod):
            raise
        raise InvalidPeriod(f"{text!r} is not a valid {kind.value}: {exc}") from None


def example_key(kind: PeriodKind) -> str:
    return {PeriodKind.DAY: "2026-11-23", PeriodKind.WEEK: "2026-W48", PeriodKind.MONTH: "2026-11",
            PeriodKind.QUARTER: "2026-Q4", PeriodKind.YEAR: "2026"}[kind]


def periods_between(first: Period, last: Period, *, limit: int) -> list[Period]:
    """Every period from `first` to `last` included, refusing an empty range or one longer than `limit`."""
    if first.kind is not last.kind:
        raise InvalidPeriod("both ends of a range must be periods of the same kind")
    if last < first:
        raise InvalidPeriod(f"the range ends ({last.key}) before it starts ({first.key})")
    out = [first]
    while out[-1] != last:
        if len(out) >= limit:
            raise InvalidPeriod(f"at most {limit} periods at once")
        out.append(out[-1].next())
    return out


def periods_from(kind: PeriodKind, moment: datetime, until: datetime) -> list[Period]:
    """The periods of `kind` from the one holding `moment` to the one holding `until` (at least one)."""
    first, last = period_of(kind, moment), period_of(kind, max(moment, until))
    out = [first]
    while out[-1] != last:
        out.append(out[-1].next())
    return out
