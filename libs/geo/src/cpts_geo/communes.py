"""Lookups on the reference tables, loaded once per process."""

from __future__ import annotations

import bisect
import csv
import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable, Iterator

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Commune:
    insee: str
    name: str
    kind: str  # COM commune, ARM arrondissement of Paris / Lyon / Marseille
    departement: str
    region: str
    population: int
    lat: float | None
    lon: float | None
    postcodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Departement:
    code: str
    name: str
    region_code: str
    region_name: str


@dataclass(frozen=True, slots=True)
class SasRadius:
    """SAS search area of a département (ANS SAS-moteur-recherche)."""

    departement: str
    default_radius_km: float
    enlargement_step_km: float


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance: the approximation used where no road network is available."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def distance_from(lat: float, lon: float) -> Callable[[float, float], float]:
    """`haversine_km(lat, lon, ...)` as a function of the other point, the first point's trigonometry done once:
    for measuring many points from one (every site of a search area from the patient)."""
    p1, l1, cos1 = math.radians(lat), math.radians(lon), math.cos(math.radians(lat))
    radians, sin, cos, asin, sqrt = math.radians, math.sin, math.cos, math.asin, math.sqrt

    def distance(lat2: float, lon2: float) -> float:
        p2 = radians(lat2)
        a = sin((p2 - p1) / 2) ** 2 + cos1 * cos(p2) * sin((radians(lon2) - l1) / 2) ** 2
        return 2 * EARTH_RADIUS_KM * asin(sqrt(a))

    return distance


def fold(text: str) -> str:
    """Lower case without accents, for prefix search on names."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def _rows(name: str) -> Iterator[dict[str, str]]:
    with resources.files("cpts_geo").joinpath("data", name).open(encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f)


class CommuneDirectory:
    def __init__(self, items: list[Commune]) -> None:
        self._by_insee = {c.insee: c for c in items}
        self._by_postcode: dict[str, list[Commune]] = {}
        for c in items:
            for postcode in c.postcodes:
                self._by_postcode.setdefault(postcode, []).append(c)
        self._folded = sorted((fold(c.name), c.insee) for c in items)
        self._by_lat = sorted((c for c in items if c.lat is not None), key=lambda c: c.lat)
        self._lats = [c.lat for c in self._by_lat]

    def __len__(self) -> int:
        return len(self._by_insee)

    def __contains__(self, insee: str) -> bool:
        return insee in self._by_insee

    def __iter__(self) -> Iterator[Commune]:
        return iter(self._by_insee.values())

    def within(self, lat: float, lon: float, radius_km: float) -> list[Commune]:
        """Communes whose point lies within `radius_km` (great-circle) of (lat, lon)."""
        # A degree of latitude is ~111 km: only the communes of the latitude band (found by bisection) get the
        # exact distance.
        band = radius_km / 111.0 + 0.01
        low, high = bisect.bisect_left(self._lats, lat - band), bisect.bisect_right(self._lats, lat + band)
        distance = distance_from(lat, lon)
        return [c for c in self._by_lat[low:high] if distance(c.lat, c.lon) <= radius_km]

    def get(self, insee: str) -> Commune | None:
        return self._by_insee.get(insee)

    def by_postcode(self, postcode: str) -> list[Commune]:
        return list(self._by_postcode.get(postcode, ()))

    def search(self, text: str, limit: int = 10) -> list[Commune]:
        """Communes whose name starts with `text` (accents and case ignored) or whose postcode does."""
        text = text.strip()
        if not text:
            return []
        if text.isdigit():
            found = [c for pc, cs in self._by_postcode.items() if pc.startswith(text) for c in cs]
            return sorted({c.insee: c for c in found}.values(), key=lambda c: (-c.population, c.name))[:limit]
        key = fold(text)
        found = [self._by_insee[insee] for name, insee in self._folded if name.startswith(key)]
        return sorted(found, key=lambda c: (-c.population, c.name))[:limit]


@lru_cache(maxsize=1)
def communes() -> CommuneDirectory:
    items = []
    for row in _rows("communes-fr.csv"):
        items.append(Commune(
            insee=row["insee_code"], name=row["name"], kind=row["kind"], departement=row["departement"],
            region=row["region"], population=int(row["population"] or 0),
            lat=float(row["lat"]) if row["lat"] else None, lon=float(row["lon"]) if row["lon"] else None,
            postcodes=tuple(p for p in row["postcodes"].split(";") if p),
        ))
    return CommuneDirectory(items)


@lru_cache(maxsize=1)
def departements() -> dict[str, Departement]:
    return {r["code"]: Departement(r["code"], r["name"], r["region_code"], r["region_name"])
            for r in _rows("departements-fr.csv")}


@lru_cache(maxsize=1)
def sas_radii() -> dict[str, SasRadius]:
    return {r["departement_code"]: SasRadius(r["departement_code"], float(r["default_radius_km"] or 0),
                                             float(r["enlargement_step_km"] or 0))
            for r in _rows("sas-search-radii.csv")}


def load_all() -> None:
    """Load every table now (a service's startup) rather than on first use."""
    communes()
    departements()
    sas_radii()
