"""SAS participation and médecin-traitant capacity rules."""

from __future__ import annotations

from enum import StrEnum

# An effecteur commits on honour to at least 2 h of visible availability per week (SAS charter, DOMAIN.md).
SAS_MIN_HOURS_PER_WEEK = 2.0


class SasMode(StrEnum):
    OWN_PRACTICE = "own_practice"
    CPTS = "cpts"
    MSP = "msp"
    SOS_MEDECINS = "sos_medecins"


class MtPublic(StrEnum):
    ADULTS = "adults"
    CHILDREN = "children"
    HOME_BOUND = "home_bound"


class MembershipStatus(StrEnum):
    ADHERENT = "adherent"
    ACTIVE = "active"
