"""National identifiers shared by the services: the NIR of an INS identity and its key (DOMAIN.md)."""

from __future__ import annotations

import re

NIR_PATTERN = re.compile(r"^[12378]\d{4}(\d{2}|2A|2B)\d{6}\d{2}$")


def nir_key(first13: str) -> str:
    """The 2-digit key of a NIR's first 13 characters: 97 - (number mod 97), Corsica's 2A / 2B read as 19 / 18
    (they only occur as the département)."""
    body = first13.replace("2A", "19").replace("2B", "18")
    return f"{97 - int(body) % 97:02d}"


def nir_problem(nir: str) -> str | None:
    """Why `nir` is not a valid NIR (without repeating it), or None when it is one."""
    if not NIR_PATTERN.fullmatch(nir):
        return "NIR must be 15 characters: 13 digits (2A/2B allowed for Corsica) and a 2-digit key"
    if nir_key(nir[:13]) != nir[13:]:
        return "NIR key does not match"
    return None
