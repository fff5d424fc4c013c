"""CPTS territories: population and ACI size band computed from the communes (plain domain rules)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cpts_geo import communes

# ACI size bands by population covered (DOMAIN.md): 1 < 40,000; 2 40,000-80,000; 3 80,000-175,000; 4 > 175,000.
# The sources do not say where a boundary falls; ours: a boundary value belongs to the upper band
# (exactly 40,000 inhabitants is size 2, 80,000 size 3, 175,000 size 4).
SIZE_BAND_LOWER_BOUNDS = ((175_000, 4), (80_000, 3), (40_000, 2))


def size_band(population: int) -> int:
    for lower, band in SIZE_BAND_LOWER_BOUNDS:
        if population >= lower:
            return band
    return 1


class CptsStage(StrEnum):
    LETTER_OF_INTENT = "letter_of_intent"
    HEALTH_PROJECT_VALIDATED = "health_project_validated"
    ACI_SIGNED = "aci_signed"  # the CPTS is operating


class Mission(StrEnum):
    ACCES_MEDECIN_TRAITANT = "1a-medecin-traitant"
    ACCES_SNP = "1b-soins-non-programmes"
    PARCOURS = "2-parcours"
    PREVENTION = "3-prevention"
    CRISES_SANITAIRES = "4-crises-sanitaires"
    QUALITE = "5-qualite-pertinence"
    ACCOMPAGNEMENT = "6-accompagnement-professionnels"


class UnknownCommune(ValueError):
    def __init__(self, insee: str) -> None:
        super().__init__(f"unknown commune {insee}")
        self.insee = insee


class TerritoryConflict(Exception):
    """A commune belongs to at most one CPTS."""

    def __init__(self, insee: str, other_cpts: str) -> None:
        super().__init__(f"commune {insee} already belongs to CPTS {other_cpts}")
        self.insee = insee
        self.other_cpts = other_cpts


class CptsAlreadyRegistered(Exception):
    def __init__(self, cpts_id: str) -> None:
        super().__init__(f"CPTS {cpts_id} is already registered")
        self.cpts_id = cpts_id


class UnknownCpts(LookupError):
    def __init__(self, cpts_id: str) -> None:
        super().__init__(f"no CPTS {cpts_id}")
        self.cpts_id = cpts_id


@dataclass(frozen=True)
class Territory:
    communes: tuple[str, ...]
    population: int
    size_band: int
    departements: tuple[str, ...]

    @classmethod
    def of(cls, insee_codes: list[str] | tuple[str, ...]) -> "Territory":
        directory = communes()
        codes = tuple(sorted(set(insee_codes)))
        for code in codes:
            if code not in directory:
                raise UnknownCommune(code)
        found = [directory.get(c) for c in codes]
        population = sum(c.population for c in found)
        return cls(communes=codes, population=population, size_band=size_band(population),
                   departements=tuple(sorted({c.departement for c in found})))
