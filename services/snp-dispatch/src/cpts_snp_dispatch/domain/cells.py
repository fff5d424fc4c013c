"""Map cells of 0.1° x 0.1° (about 11 x 8 km in metropolitan France): a slot stores the cell of its site, and the
search asks for the few cells that cover its circle, each an index seek, instead of scanning the whole window."""

from __future__ import annotations

import math

STEP = 0.1


def cell_of(lat: float, lon: float) -> int:
    """The cell holding a point, as one integer (valid for every latitude and longitude)."""
    return (math.floor(lat / STEP) + 900) * 10_000 + (math.floor(lon / STEP) + 1_800)


def cells_around(lat: float, lon: float, radius_km: float) -> set[int]:
    """Every cell that intersects the bounding box of the circle of `radius_km` around the point."""
    dlat = radius_km / 111.0
    dlon = radius_km / (111.0 * max(0.1, abs(math.cos(math.radians(lat)))))
    rows = range(math.floor((lat - dlat) / STEP), math.floor((lat + dlat) / STEP) + 1)
    columns = range(math.floor((lon - dlon) / STEP), math.floor((lon + dlon) / STEP) + 1)
    return {(r + 900) * 10_000 + (c + 1_800) for r in rows for c in columns}
