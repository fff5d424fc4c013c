"""Slots as the professionals publish them: one by one, or as a weekly recurrence expanded into slots."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cpts_snp_dispatch.domain.errors import InvalidSlot, SlotOverlap

PARIS = ZoneInfo("Europe/Paris")
VISIBILITIES = ("PUBLIC", "PRO", "SNP", "CPTS")
SERVICE_TYPES = ("AMB", "HH", "VR")
APPOINTMENT_TYPES = ("ROUTINE", "WALKIN")
MAX_SLOTS_PER_PUBLICATION = 2_000


@dataclass(frozen=True)
class SlotSpec:
    """One slot to publish. `field` prefixes the error location (e.g. `slots[3]`) of the request it came from."""

    idnps: str
    site_id: str
    start: datetime
    end: datetime
    service_type: str = "AMB"
    visibility: frozenset[str] = frozenset({"SNP", "PRO"})
    appointment_type: str = "ROUTINE"
    comment: str | None = None
    slot_id: str | None = None
    field: str = "slots[0]"


@dataclass(frozen=True)
class WeeklyRecurrence:
    """"Every Tuesday 14:00-16:00 in 15-minute slots for 6 weeks", in the local time of the practice (Paris)."""

    weekdays: tuple[int, ...]  # ISO: 1 Monday ... 7 Sunday
    start_time: time
    end_time: time
    slot_minutes: int
    first_day: date
    weeks: int
    skip_past: bool = field(default=True)

    def expand(self, now: datetime) -> list[tuple[datetime, datetime]]:
        """The (start, end) pairs in UTC-aware datetimes, in order; a slot that would cross end_time is left out."""
        if self.end_time <= self.start_time:
            raise InvalidSlot("end_time must be after start_time", field="end_time")
        out: list[tuple[datetime, datetime]] = []
        step = timedelta(minutes=self.slot_minutes)
        for offset in range(self.weeks * 7):
            day = self.first_day + timedelta(days=offset)
            if day.isoweekday() not in self.weekdays:
                continue
            start = datetime.combine(day, self.start_time, PARIS)
            stop = datetime.combine(day, self.end_time, PARIS)
            while start + step <= stop:
                if not (self.skip_past and start < now):
                    out.append((start, start + step))
                start += step
        return out


def check_specs(specs: list[SlotSpec], now: datetime) -> None:
    """Refuse slots in the past, ending before they start, badly coded, or overlapping each other."""
    if len(specs) > MAX_SLOTS_PER_PUBLICATION:
        raise InvalidSlot(f"at most {MAX_SLOTS_PER_PUBLICATION} slots per publication", field="slots")
    for spec in specs:
        if spec.start.tzinfo is None or spec.end.tzinfo is None:
            raise InvalidSlot("start and end need an explicit UTC offset", field=f"{spec.field}.start")
        if spec.end <= spec.start:
            raise InvalidSlot("end must be after start", field=f"{spec.field}.end")
        if spec.start < now:
            raise InvalidSlot("a slot cannot start in the past", field=f"{spec.field}.start")
        if spec.end - spec.start > timedelta(hours=12):
            raise InvalidSlot("a slot lasts at most 12 hours", field=f"{spec.field}.end")
        if spec.service_type not in SERVICE_TYPES:
            raise InvalidSlot(f"service_type must be one of {', '.join(SERVICE_TYPES)}", field=f"{spec.field}.service_type")
        if not spec.visibility or not spec.visibility <= set(VISIBILITIES):
            raise InvalidSlot(f"visibility must be a non-empty subset of {', '.join(VISIBILITIES)}",
                              field=f"{spec.field}.visibility")
        if spec.appointment_type not in APPOINTMENT_TYPES:
            raise InvalidSlot("appointment_type must be ROUTINE or WALKIN", field=f"{spec.field}.appointment_type")
    by_professional: dict[str, list[SlotSpec]] = {}
    for spec in specs:
        by_professional.setdefault(spec.idnps, []).append(spec)
    for items in by_professional.values():
        items.sort(key=lambda s: s.start)
        for before, after in zip(items, items[1:]):
            if after.start < before.end:
                raise SlotOverlap(f"overlaps {before.field} of the same request", field=f"{after.field}.start",
                                  other_slot_id=None)
