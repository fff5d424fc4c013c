"""Streaming reader of the public RPPS extract `PS_LibreAcces_Personne_activite_<date>.txt`.

Format (see `reference/rpps-extract-format.md`): `|`-separated, one header line, a trailing `|` on every line,
no quoting, UTF-8 or Latin-1 depending on the publication. Columns are mapped by header name, never by
position. The reader reads bytes and decodes line by line, so memory stays constant whatever the file size,
and yields for every data line one of:

- `RppsRow`: a well-formed activity row (text fields stripped, identifiers kept as text);
- `RejectedLine(line_no, reason)`: a malformed line; the reason names the column and the problem, never a
  value;
- `SkippedLine(line_no, reason)`: a well-formed line out of scope by nature (a site abroad).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from operator import itemgetter
from pathlib import Path

SEPARATOR = "|"
FRANCE = "99100"
UTF8_PROBE_BYTES = 1 << 20

# The 52 columns of the national file, in the order of the publications of 2023-2025.
COLUMNS: tuple[str, ...] = (
    "Type d'identifiant PP", "Identifiant PP", "Identification nationale PP", "Code civilité d'exercice",
    "Libellé civilité d'exercice", "Code civilité", "Libellé civilité", "Nom d'exercice", "Prénom d'exercice",
    "Code profession", "Libellé profession", "Code catégorie professionnelle",
    "Libellé catégorie professionnelle", "Code type savoir-faire", "Libellé type savoir-faire",
    "Code savoir-faire", "Libellé savoir-faire", "Code mode exercice", "Libellé mode exercice",
    "Numéro SIRET site", "Numéro SIREN site", "Numéro FINESS site", "Numéro FINESS établissement juridique",
    "Identifiant technique de la structure", "Raison sociale site", "Enseigne commerciale site",
    "Complément destinataire (coord. structure)", "Complément point géographique (coord. structure)",
    "Numéro Voie (coord. structure)", "Indice répétition voie (coord. structure)",
    "Code type de voie (coord. structure)", "Libellé type de voie (coord. structure)",
    "Libellé Voie (coord. structure)", "Mention distribution (coord. structure)",
    "Bureau cedex (coord. structure)", "Code postal (coord. structure)", "Code commune (coord. structure)",
    "Libellé commune (coord. structure)", "Code pays (coord. structure)", "Libellé pays (coord. structure)",
    "Téléphone (coord. structure)", "Téléphone 2 (coord. structure)", "Télécopie (coord. structure)",
    "Adresse e-mail (coord. structure)", "Code Département (structure)", "Libellé Département (structure)",
    "Ancien identifiant de la structure", "Autorité d'enregistrement", "Code secteur d'activité",
    "Libellé secteur d'activité", "Code section tableau pharmaciens", "Libellé section tableau pharmaciens",
)

# Field of RppsRow -> header name. Columns absent from a file's header read as "".
FIELD_COLUMNS: dict[str, str] = {
    "id_type": "Type d'identifiant PP",
    "pp_id": "Identifiant PP",
    "idnps": "Identification nationale PP",
    "practice_civility_code": "Code civilité d'exercice",
    "civility_code": "Code civilité",
    "family_name": "Nom d'exercice",
    "given_name": "Prénom d'exercice",
    "profession_code": "Code profession",
    "profession_label": "Libellé profession",
    "skill_type_code": "Code type savoir-faire",
    "skill_code": "Code savoir-faire",
    "skill_label": "Libellé savoir-faire",
    "practice_mode": "Code mode exercice",
    "siret": "Numéro SIRET site",
    "finess": "Numéro FINESS site",
    "structure_id": "Identifiant technique de la structure",
    "company_name": "Raison sociale site",
    "brand_name": "Enseigne commerciale site",
    "geo_complement": "Complément point géographique (coord. structure)",
    "street_number": "Numéro Voie (coord. structure)",
    "street_index": "Indice répétition voie (coord. structure)",
    "street_type_code": "Code type de voie (coord. structure)",
    "street_type_label": "Libellé type de voie (coord. structure)",
    "street_name": "Libellé Voie (coord. structure)",
    "distribution": "Mention distribution (coord. structure)",
    "cedex_office": "Bureau cedex (coord. structure)",
    "postcode": "Code postal (coord. structure)",
    "commune_code": "Code commune (coord. structure)",
    "commune_label": "Libellé commune (coord. structure)",
    "country_code": "Code pays (coord. structure)",
    "phone": "Téléphone (coord. structure)",
    "departement_code": "Code Département (structure)",
    "former_structure_id": "Ancien identifiant de la structure",
    "sector_code": "Code secteur d'activité",
}
REQUIRED = ("id_type", "pp_id", "idnps", "family_name", "given_name", "profession_code")

# Longest value accepted per code column (the registry's columns and the events' fields).
_CODE_LIMITS = {"profession_code": 10, "skill_code": 10, "practice_mode": 2, "sector_code": 10}
_RPPS = re.compile(r"\d{11}")
_ADELI = re.compile(r"[0-9A-Z]{9}")
_IDNPS = re.compile(r"8\d{11}|0[0-9A-Z]{9}")


class RppsFormatError(ValueError):
    """The file cannot be read as an RPPS extract at all (no header, required columns missing)."""


@dataclass(slots=True)
class RppsRow:
    """One activity of one professional, as read (stripped text; "" when empty)."""

    line_no: int
    id_type: str
    pp_id: str
    idnps: str
    practice_civility_code: str
    civility_code: str
    family_name: str
    given_name: str
    profession_code: str
    profession_label: str
    skill_type_code: str
    skill_code: str
    skill_label: str
    practice_mode: str
    siret: str
    finess: str
    structure_id: str
    company_name: str
    brand_name: str
    geo_complement: str
    street_number: str
    street_index: str
    street_type_code: str
    street_type_label: str
    street_name: str
    distribution: str
    cedex_office: str
    postcode: str
    commune_code: str
    commune_label: str
    country_code: str
    phone: str
    departement_code: str
    former_structure_id: str
    sector_code: str

    @property
    def site_id(self) -> str:
        """The structure id already prefixed (IDNST-like) when the file has it, else the technical id."""
        return self.former_structure_id or self.structure_id


_ROW_FIELDS = [f.name for f in fields(RppsRow)][1:]
assert set(_ROW_FIELDS) == set(FIELD_COLUMNS)


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line_no: int
    reason: str
    # The line's IDNPS when it is well-formed (a full import must not deactivate that professional); never
    # part of the report.
    idnps: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class SkippedLine:
    line_no: int
    reason: str


def normalise_header(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).split())


def detect_encoding(probe: bytes) -> str:
    """UTF-8 or Latin-1, from the first bytes of the file.

    The national header has accented names: it decodes as UTF-8 in a UTF-8 file and fails in a Latin-1 one,
    which settles it. With an ASCII-only header, the lines of the probe with non-ASCII bytes vote (the last
    line of the probe may be cut, it does not vote). A stray line of the other encoding is still read: see
    `_decode`.
    """
    lines = probe.split(b"\n")
    header = lines[0]
    if not header.isascii():
        return "utf-8" if _is_utf8(header) else "latin-1"
    votes = [_is_utf8(line) for line in lines[1:-1] if not line.isascii()]
    return "latin-1" if votes.count(False) > votes.count(True) else "utf-8"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def split_line(text: str) -> list[str]:
    """Fields of a header line, without the empty field that the trailing separator adds."""
    parts = text.split(SEPARATOR)
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


class RppsExtract:
    """The lines of an extract, read again at each iteration; `bytes_read`, `encoding` and `fallback_lines`
    follow the reading."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.total_bytes = self.path.stat().st_size
        self.bytes_read = 0
        self.encoding = "utf-8"
        self.fallback_lines = 0  # lines of a UTF-8 file that only decoded as Latin-1
        self.header: list[str] = []
        self._positions: dict[str, int] = {}

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            self.fallback_lines += 1
            return raw.decode("latin-1")

    def __iter__(self) -> Iterator[RppsRow | RejectedLine | SkippedLine]:
        with self.path.open("rb") as f:
            self.encoding = detect_encoding(f.read(UTF8_PROBE_BYTES))
            f.seek(0)
            first = f.readline()
            self.bytes_read = len(first)
            if not first.strip():
                raise RppsFormatError("empty file: no header line")
            header_text = self._decode(first).lstrip("\ufeff").rstrip("\r\n")
            self.header = [normalise_header(h) for h in split_line(header_text)]
            positions: dict[str, int] = {}
            for i, name in enumerate(self.header):
                positions.setdefault(name, i)
            missing = [FIELD_COLUMNS[f] for f in REQUIRED if FIELD_COLUMNS[f] not in positions]
            if missing:
                raise RppsFormatError(f"header lacks the columns: {', '.join(missing)}")
            self._positions = positions
            width = len(self.header)
            # An absent optional column reads the "" appended after the line's own fields.
            getter = itemgetter(*[positions.get(FIELD_COLUMNS[f], width) for f in _ROW_FIELDS])
            decode = self._decode
            line_no = 1
            for raw in f:
                line_no += 1
                self.bytes_read += len(raw)
                text = decode(raw).rstrip("\r\n")
                if not text.strip():
                    continue
                parts = text.split(SEPARATOR)
                if len(parts) == width + 1 and parts[-1] == "":
                    parts.pop()  # the trailing separator (a line without it may end with an empty field)
                if len(parts) != width:
                    count = len(parts) - (parts[-1] == "")
                    yield RejectedLine(line_no, f"column count: {count} instead of {width}")
                    continue
                parts.append("")
                row = RppsRow(line_no, *[v.strip() for v in getter(parts)])
                country = row.country_code
                abroad = country != FRANCE and country.startswith("99")
                if abroad or row.commune_code.startswith("99"):
                    yield SkippedLine(line_no, "out of territory: site abroad")
                    continue
                problem = check(row)
                if problem:
                    yield RejectedLine(line_no, problem, row.idnps if _IDNPS.fullmatch(row.idnps) else None)
                    continue
                yield row


def check(row: RppsRow) -> str | None:
    """The first problem of a row, as "<column>: <problem>", or None."""
    if row.id_type == "8":
        if not _RPPS.fullmatch(row.pp_id):
            return "Identifiant PP: not 11 digits for an RPPS id"
    elif row.id_type == "0":
        if not _ADELI.fullmatch(row.pp_id):
            return "Identifiant PP: not 9 characters for an ADELI id"
    else:
        return "Type d'identifiant PP: neither 8 (RPPS) nor 0 (ADELI)"
    if row.idnps != row.id_type + row.pp_id:
        return "Identification nationale PP: not type + identifier"
    if not row.family_name:
        return "Nom d'exercice: empty"
    if not row.given_name:
        return "Prénom d'exercice: empty"
    if not row.profession_code:
        return "Code profession: empty"
    for name, limit in _CODE_LIMITS.items():
        if len(getattr(row, name)) > limit:
            return f"{FIELD_COLUMNS[name]}: longer than {limit} characters"
    if len(row.site_id) > 40:
        return f"{FIELD_COLUMNS['structure_id']}: longer than 40 characters"
    return None


def read_extract(path: str | Path) -> RppsExtract:
    return RppsExtract(path)


def idnps_column_index(path: str | Path) -> tuple[int, bytes]:
    """Position of the IDNPS column and the separator in the file's encoding (for the raw pre-scan)."""
    with Path(path).open("rb") as f:
        probe = f.read(UTF8_PROBE_BYTES)
    encoding = detect_encoding(probe)
    first = probe.split(b"\n", 1)[0]
    text = first.decode(encoding, "replace").lstrip("\ufeff").rstrip("\r")
    header = [normalise_header(h) for h in split_line(text)]
    name = FIELD_COLUMNS["idnps"]
    if name not in header:
        raise RppsFormatError(f"header lacks the columns: {name}")
    return header.index(name), SEPARATOR.encode()


def scan_reappearing(path: str | Path, *, progress=None, bitmap_bits: int = 1 << 27) -> set[str]:
    """IDNPS that appear in more than one run of contiguous lines (a professional listed again later).

    One pass over the raw bytes, with a bitmap of hashed ids instead of a set of every id (16 MB for any file
    size): a hash collision can only add a false candidate, which costs nothing but holding that
    professional's rows until the end of the import. `progress(bytes_read)` is called every 20,000 lines.
    """
    index, sep = idnps_column_index(path)
    mask = bitmap_bits - 1
    bitmap = bytearray(bitmap_bits >> 3)
    candidates: set[bytes] = set()
    previous = None
    read = 0
    with Path(path).open("rb") as f:
        read += len(f.readline())
        for n, raw in enumerate(f):
            read += len(raw)
            parts = raw.split(sep, index + 1)
            if len(parts) <= index:
                continue
            value = parts[index].strip()
            if value == previous:
                continue
            previous = value
            h = hash(value) & mask
            byte, bit = h >> 3, 1 << (h & 7)
            if bitmap[byte] & bit:
                candidates.add(value)
            else:
                bitmap[byte] |= bit
            if progress is not None and not n % 20000:
                progress(read)
    if progress is not None:
        progress(read)
    return {c.decode("latin-1") for c in candidates}
