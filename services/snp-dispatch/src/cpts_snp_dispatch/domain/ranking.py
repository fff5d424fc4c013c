"""The SAS order of result cards (national behaviour, see DOMAIN.md "SAS slot search").

Groups, in order: the patient's own doctor; SAS participants with slots; non-participants with slots;
participants without slots; the others. Inside a group, when the patient was located by a precise address, cards
go by distance then earliest slot; otherwise (commune or postcode only) the order is a neutral pseudo-random one,
seeded per care request so that it stays the same from one page or refresh to the next, then earliest slot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

GROUPS = ("own_doctor", "participant_with_slots", "non_participant_with_slots", "participant_without_slots",
          "others")


@dataclass
class Candidate:
    idnps: str
    sas_participant: bool
    distance_km: float
    first_start: datetime | None = None
    slot_count: int = 0
    is_own_doctor: bool = False
    group: str = field(init=False, default="")

    def __post_init__(self) -> None:
        has_slots = self.slot_count > 0
        if self.is_own_doctor:
            self.group = "own_doctor"
        elif has_slots:
            self.group = "participant_with_slots" if self.sas_participant else "non_participant_with_slots"
        else:
            self.group = "participant_without_slots" if self.sas_participant else "others"


def neutral_key(seed: int, idnps: str) -> bytes:
    """Same seed and professional, same key; no professional is favoured across requests."""
    return hashlib.blake2b(f"{seed}:{idnps}".encode(), digest_size=8).digest()


def rank(candidates: list[Candidate], *, by_distance: bool, seed: int) -> list[Candidate]:
    far_future = datetime.max.replace(tzinfo=None)

    def key(c: Candidate):
        first = c.first_start.replace(tzinfo=None) if c.first_start else far_future
        inner = (round(c.distance_km, 3),) if by_distance else (neutral_key(seed, c.idnps),)
        return (GROUPS.index(c.group), *inner, first, c.idnps)

    return sorted(candidates, key=key)
