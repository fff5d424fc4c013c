"""Which professionals can become a médecin traitant (plain domain rule)."""

# RPPS profession code 10 = médecin; SM54 = médecine générale, SM53 = spécialiste en médecine générale.
PHYSICIAN_PROFESSION_CODE = "10"
GENERAL_PRACTICE_SPECIALTIES = frozenset({"SM54", "SM53", "SM26"})


def can_be_medecin_traitant(profession_code: str, specialty_code: str | None) -> bool:
    return profession_code == PHYSICIAN_PROFESSION_CODE and (
        specialty_code is None or specialty_code in GENERAL_PRACTICE_SPECIALTIES
    )
