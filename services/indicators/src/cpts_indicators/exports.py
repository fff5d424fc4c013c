"""CSV export of published (masked) values: one row per indicator, period and breakdown category."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Iterable

from cpts_indicators.domain.masking import Cell, PublishedValue
from cpts_indicators.domain.periods import PARIS

COLUMNS = ("cpts_id", "periode", "cle_periode", "debut", "fin", "indicateur", "version", "libelle", "unite",
           "ventilation", "categorie", "valeur", "masque", "dernier_evenement")


def _time(value: datetime | None) -> str:
    return value.astimezone(PARIS).isoformat() if value is not None else ""


def _value(cell: Cell) -> str:
    if cell.value is None:
        return ""
    return str(int(cell.value)) if float(cell.value).is_integer() else str(cell.value)


def csv_export(cpts_id: str, values: Iterable[PublishedValue]) -> str:
    """RFC 4180 CSV (comma, UTF-8, CRLF); a masked cell has an empty value, `masque` true, no event time."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for value in values:
        d, p = value.definition, value.period
        head = [cpts_id, p.kind.value, p.key, _time(p.start), _time(p.end), d.id, d.version, d.label, d.unit]
        rows = [("", "", value.total)] + [(name, category, cell) for name, cells in value.breakdowns.items()
                                          for category, cell in sorted(cells.items())]
        for breakdown, category, cell in rows:
            writer.writerow([*head, breakdown, category, _value(cell), "true" if cell.masked else "false",
                             _time(cell.last_event_time)])
    return out.getvalue()
