"""One person, one record: normalised identity traits, exact keys and near-duplicate detection.

Two records are the same person when their INS (NIR) is equal, or, when the INS does not tell them apart,
when their traits are equal after normalisation (case, accents, punctuation): birth name (or used name),
first given name, birth date and sex. Anything closer than chance but not equal (names a typo apart, first
and last names swapped, another of the first names used, same traits with different INS) is a *near
duplicate*: both records are kept and the pair goes to a review list, never merged silently.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss", "Œ": "oe", "Æ": "ae"})
_NOT_LETTER = re.compile(r"[^a-z]+")


def fold(text: str) -> str:
    """Lower case, without accents or ligatures; every run of non-letters becomes one space."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES).lower())
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_LETTER.sub(" ", letters).strip()


def name_key(text: str | None) -> str:
    """A name as compared: folded, without spaces, hyphens or apostrophes (Jean-Pierre = jean pierre)."""
    return fold(text or "").replace(" ", "")


def first_names_list(first_names: str) -> list[str]:
    """The first names as listed (separated by spaces or commas; a hyphenated first name is one name)."""
    return [name_key(part) for part in re.split(r"[\s,;]+", first_names.strip()) if name_key(part)]


def trait_key(family_name: str | None, first_names: str, birth_date: date, sex: str) -> str | None:
    """The exact-match key of an identity; None without a family name."""
    family = name_key(family_name)
    given = first_names_list(first_names)
    if not family or not given:
        return None
    return f"{family}|{given[0]}|{birth_date.isoformat()}|{sex}"


@dataclass(frozen=True)
class Traits:
    """An identity as the dedup compares it."""

    birth_name: str
    first_names: str
    birth_date: date
    sex: str
    used_name: str | None = None
    ins_nir: str | None = None

    @property
    def keys(self) -> set[str]:
        """Its exact-match keys: with the birth name, and with the used name when there is one."""
        found = {trait_key(self.birth_name, self.first_names, self.birth_date, self.sex),
                 trait_key(self.used_name, self.first_names, self.birth_date, self.sex)}
        return {k for k in found if k}

    @property
    def families(self) -> set[str]:
        return {k for k in (name_key(self.birth_name), name_key(self.used_name)) if k}

    @property
    def given(self) -> list[str]:
        return first_names_list(self.first_names)


def same_person(a: Traits, b: Traits) -> bool:
    """Equal INS; or equal traits when at most one of them has an INS (different INS: different people)."""
    if a.ins_nir and b.ins_nir:
        return a.ins_nir == b.ins_nir
    return bool(a.keys & b.keys)


def edit_distance(a: str, b: str, limit: int = 3) -> int:
    """Optimal string alignment distance (insertions, deletions, substitutions, adjacent transpositions),
    capped at `limit` + 1 (names are short; only small distances matter)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[len(b)], limit + 1)


def close(a: str, b: str) -> bool:
    """A typo apart: one edit for names of up to 5 letters, two for longer ones."""
    allowed = 1 if min(len(a), len(b)) <= 5 else 2
    return edit_distance(a, b, allowed) <= allowed


def near_duplicate_reason(a: Traits, b: Traits) -> str | None:
    """Why two identities born the same day may be one person (a French label for the review list), or None.

    Call it on pairs that are not `same_person`."""
    if a.birth_date != b.birth_date or (a.sex != b.sex and "U" not in (a.sex, b.sex)):
        return None
    if a.ins_nir and b.ins_nir and a.ins_nir != b.ins_nir:
        return "mêmes traits d'identité, INS différents" if a.keys & b.keys else None
    if not a.given or not b.given:
        return None
    if (a.given[0] in b.families and b.given[0] in a.families) and a.families.isdisjoint(b.families):
        return "nom et prénom inversés"
    family_equal = not a.families.isdisjoint(b.families)
    family_close = family_equal or any(close(x, y) for x in a.families for y in b.families)
    if not family_close:
        return None
    if a.given[0] == b.given[0]:
        return "nom de famille proche (faute de frappe ?)" if not family_equal else None
    if close(a.given[0], b.given[0]) or close("".join(a.given), "".join(b.given)):
        return "noms proches (faute de frappe ?)" if not family_equal else "prénom proche (faute de frappe ?)"
    if a.given[0] in b.given or b.given[0] in a.given:
        return "un autre des prénoms utilisé"
    return None
