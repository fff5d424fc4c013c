"""CSV and XLSX exports of published (masked) values: one row per indicator, period and breakdown category."""

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


def _rows(cpts_id: str, values: Iterable[PublishedValue]):
    for value in values:
        d, p = value.definition, value.period
        head = [cpts_id, p.kind.value, p.key, _time(p.start), _time(p.end), d.id, d.version, d.label, d.unit]
        cells = [("", "", value.total)] + [(name, category, cell) for name, cells in value.breakdowns.items()
                                           for category, cell in sorted(cells.items())]
        for breakdown, category, cell in cells:
            yield head + [breakdown, category], cell


XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MASKED_TEXT = "masqué (< seuil)"


def xlsx_export(cpts_id: str, values: Iterable[PublishedValue], *, threshold: int) -> bytes:
    """The CSV's columns as a workbook: numbers as numbers; a masked cell reads "masqué (< seuil)" (never a
    number), `masque` is VRAI; a second sheet says what masking means and the threshold."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Indicateurs"
    sheet.append(list(COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    grey = PatternFill("solid", fgColor="DDDDDD")
    for head, cell in _rows(cpts_id, values):
        value = MASKED_TEXT if cell.masked else cell.value
        sheet.append([*head, value, cell.masked, _time(cell.last_event_time)])
        if cell.masked:
            sheet.cell(row=sheet.max_row, column=COLUMNS.index("valeur") + 1).fill = grey
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    notes = workbook.create_sheet("Lisez-moi")
    notes.append(["CPTS", cpts_id])
    notes.append(["Seuil de masquage", threshold])
    notes.append(["Masquage", f"Les effectifs de 1 à {threshold - 1} sont masqués (ainsi que les cellules "
                              "qui "
                              "permettraient de les retrouver par différence)."])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
