"""Health professionals of the territory (plain domain rules, no framework)."""

from __future__ import annotations

from dataclasses import dataclass, field

# IDNPS = "8" + 11-digit RPPS, or "0" + 9-digit ADELI (ANS identifier rules, see DOMAIN.md); taken as given.
IDNPS_PATTERN = r"^(8\d{11}|0\d{9})$"
INSEE_PATTERN = r"^(\d{5}|2[AB]\d{3})$"
FINESS_PATTERN = r"^[0-9]{2}[0-9AB][0-9]{6}$"


class ProfessionalAlreadyRegistered(Exception):
    def __init__(self, idnps: str) -> None:
        super().__init__(f"professional {idnps} is already registered")
        self.idnps = idnps


@dataclass(frozen=True)
class NewProfessional:
    idnps: str
    family_name: str
    given_name: str
    profession_code: str
    specialty_code: str | None = None
    commune_insee: str | None = None
    cpts_ids: tuple[str, ...] = field(default_factory=tuple)
