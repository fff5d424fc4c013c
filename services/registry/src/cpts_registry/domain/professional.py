"""Health professionals of the territory (plain domain rules, no framework)."""

from __future__ import annotations

from dataclasses import dataclass, field

# IDNPS = "8" + 11-digit RPPS, or "0" + 9-character ADELI (ANS identifier rules, see DOMAIN.md); taken as given.
IDNPS_PATTERN = r"^(8\d{11}|0[0-9A-Z]{9})$"
INSEE_PATTERN = r"^(\d{5}|2[AB]\d{3})$"
FINESS_PATTERN = r"^\d{2}[0-9AB]\d{6}$"
# IDNST = "1" + FINESS, "3" + SIRET, "4" + RPPS rang, "0" + ADELI rang (ANS).
IDNST_PATTERN = r"^(1\d{2}[0-9AB]\d{6}|3\d{14}|4\d{11,13}|0[0-9A-Z]{9,11})$"
PHYSICIAN = "10"


class ProfessionalAlreadyRegistered(Exception):
    def __init__(self, idnps: str) -> None:
        super().__init__(f"professional {idnps} is already registered")
        self.idnps = idnps


class UnknownProfessional(LookupError):
    def __init__(self, idnps: str) -> None:
        super().__init__(f"no professional {idnps}")
        self.idnps = idnps


@dataclass(frozen=True)
class NewProfessional:
    idnps: str
    family_name: str
    given_name: str
    profession_code: str
    civility: str | None = None
    profession_label: str | None = None
    specialty_code: str | None = None
    specialty_label: str | None = None
    commune_insee: str | None = None
    cpts_ids: tuple[str, ...] = field(default_factory=tuple)
