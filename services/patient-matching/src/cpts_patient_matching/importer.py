"""Import of a list of patients without a médecin traitant (the kind a CPAM sends: one row per patient) into a
CPTS's list, as `cpts matching import-patients FILE --cpts FINESS` runs it.

The file is CSV (`;`, `,` or tab; UTF-8, else Windows-1252) with a header line. Column names are matched
without regard to case, accents or punctuation, with a few synonyms (`COLUMNS`). Required: birth name, first
names, birth date, sex, commune (INSEE code). Optional: used name, NIR, phone, the priority facts, mobility,
consent. Without a consent column every row must have been confirmed with the patient (`consent_collected`).

A missing required column stops the import before anything is written (`ImportFileError`). A bad line is
reported with its line number and column, and skipped: it never stops the good ones. Lines are enrolled in
chunks, one transaction per chunk and a savepoint per line, through the same `handlers.enrol` as the API
(one person, one record: a person already on the list is matched, not enrolled twice; near duplicates go to
the review list). The report names columns, never the values of the file.
"""

from __future__ import annotations

import csv
import getpass
import io
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from cpts_patient_matching import handlers
from cpts_patient_matching.domain.errors import MatchingError
from cpts_patient_matching.domain.intake import paris_today
from cpts_patient_matching.domain.priority import PriorityWeights
from cpts_platform.auth import Principal, Role
from cpts_platform.db import Database

DEFAULT_CHUNK_SIZE = 200
PHONE = re.compile(r"^\+?[0-9 .]{6,20}$")

COLUMNS: dict[str, tuple[str, ...]] = {
    "nom_naissance": ("nom_naissance", "nom_de_naissance", "nom", "nom_patronymique"),
    "nom_usage": ("nom_usage", "nom_d_usage", "nom_marital"),
    "prenoms": ("prenoms", "prenom", "prenoms_de_naissance"),
    "date_naissance": ("date_naissance", "date_de_naissance", "naissance", "ddn"),
    "sexe": ("sexe", "sex", "genre"),
    "commune_insee": ("commune_insee", "code_insee", "insee", "code_commune", "commune"),
    "telephone": ("telephone", "tel", "portable", "telephone_portable"),
    "nir": ("nir", "ins", "ins_nir", "matricule_ins"),
    "ald": ("ald",),
    "c2s": ("c2s", "cmu_c", "cmuc"),
    "grossesse": ("grossesse", "enceinte"),
    "handicap": ("handicap",),
    "sortie_hospitalisation": ("sortie_hospitalisation", "date_sortie_hospitalisation", "sortie_hopital"),
    "distance_max_km": ("distance_max_km", "distance_max", "mobilite_km"),
    "visite_domicile": ("visite_domicile", "visites_a_domicile", "domicile"),
    "consentement": ("consentement", "consent"),
}
REQUIRED = ("nom_naissance", "prenoms", "date_naissance", "sexe", "commune_insee")
FIELD_COLUMNS = {
    "identity.birth_name": "nom_naissance", "identity.used_name": "nom_usage",
    "identity.first_names": "prenoms", "identity.birth_date": "date_naissance", "identity.sex": "sexe",
    "identity.ins_nir": "nir", "identity.phone": "telephone", "commune_insee": "commune_insee",
    "priority.hospital_discharge_on": "sortie_hospitalisation", "mobility.max_distance_km": "distance_max_km",
    "consent": "consentement",
}
TRUE = {"oui", "o", "yes", "y", "1", "true", "vrai", "x"}
FALSE = {"non", "n", "no", "0", "false", "faux", ""}
SEXES = {"f": "F", "2": "F", "feminin": "F", "femme": "F", "m": "M", "h": "M", "1": "M", "masculin": "M",
         "homme": "M", "u": "U", "i": "U", "inconnu": "U", "indetermine": "U"}


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, no header, missing required columns)."""


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"ligne {self.line}" + (f", colonne {self.column}" if self.column else "")
        return f"{where} : {self.message}"


@dataclass
class ImportSummary:
    rows: int = 0
    created: int = 0
    existing: int = 0
    re_enrolled: int = 0
    near_duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0


@dataclass
class ImportResult:
    summary: ImportSummary
    errors: list[RowError] = field(default_factory=list)


def _canonical(header: str) -> str:
    """A column name as matched: lower case, no accents, words joined by `_` (digits kept: C2S)."""
    decomposed = unicodedata.normalize("NFKD", header.lower())
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "_", letters).strip("_")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _dialect(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (";", ",", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ";"


@dataclass
class _Layout:
    """Which file column (as written) holds each canonical column."""

    index: dict[str, int]
    names: dict[str, str]

    def value(self, row: list[str], column: str) -> str:
        i = self.index.get(column)
        return row[i].strip() if i is not None and i < len(row) else ""


def _layout(header: list[str], *, consent_collected: bool) -> _Layout:
    canonical = [_canonical(h) for h in header]
    index: dict[str, int] = {}
    names: dict[str, str] = {}
    for column, synonyms in COLUMNS.items():
        for synonym in synonyms:
            if synonym in canonical:
                index[column] = canonical.index(synonym)
                names[column] = header[index[column]].strip()
                break
    missing = [c for c in REQUIRED if c not in index]
    if missing:
        raise ImportFileError("colonnes obligatoires manquantes : " + ", ".join(missing)
                              + f" (colonnes lues : {', '.join(h.strip() for h in header)})")
    if "consentement" not in index and not consent_collected:
        raise ImportFileError("le fichier n'a pas de colonne consentement : confirmez que le consentement de "
                              "chaque patient a été recueilli (--consent-collected)")
    return _Layout(index=index, names=names)


class _RowErrors(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(str(errors[0]))
        self.errors = errors


def _parse_date(text: str) -> date:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError("date attendue au format AAAA-MM-JJ ou JJ/MM/AAAA")


def _parse_row(layout: _Layout, row: list[str], line: int, *, consent_collected: bool) -> handlers.Enrolment:
    """The enrolment of a line, or _RowErrors listing each bad column."""
    errors: list[RowError] = []

    def column_name(column: str) -> str:
        return layout.names.get(column, column)

    def fail(column: str, message: str) -> None:
        errors.append(RowError(line, column_name(column), message))

    def text(column: str, *, required: bool = False) -> str | None:
        value = layout.value(row, column)
        if not value and required:
            fail(column, "valeur obligatoire manquante")
        return value or None

    def flag(column: str) -> bool:
        value = _canonical(layout.value(row, column))
        if value in TRUE:
            return True
        if value not in FALSE:
            fail(column, "oui ou non attendu")
        return False

    def day(column: str, *, required: bool = False) -> date | None:
        value = text(column, required=required)
        if value is None:
            return None
        try:
            return _parse_date(value)
        except ValueError as exc:
            fail(column, str(exc))
            return None

    birth_name = text("nom_naissance", required=True)
    first_names = text("prenoms", required=True)
    birth_date = day("date_naissance", required=True)
    sex_text = text("sexe", required=True)
    sex = SEXES.get(_canonical(sex_text or ""))
    if sex_text and sex is None:
        fail("sexe", "F, M ou U attendu")
    commune = text("commune_insee", required=True)
    if commune is not None and re.fullmatch(r"\d{4}", commune):
        commune = "0" + commune  # a spreadsheet dropped the leading zero
    phone = text("telephone")
    if phone is not None and not PHONE.fullmatch(phone):
        fail("telephone", "numéro de téléphone invalide")
    nir = text("nir")
    nir = nir.replace(" ", "").upper() if nir else None
    distance = None
    if text("distance_max_km") is not None:
        try:
            distance = float(layout.value(row, "distance_max_km").replace(",", "."))
        except ValueError:
            fail("distance_max_km", "nombre de kilomètres attendu")
    facts = handlers.Facts(ald=flag("ald"), c2s=flag("c2s"), pregnancy=flag("grossesse"),
                           disability=flag("handicap"), hospital_discharge_on=day("sortie_hospitalisation"))
    home = flag("visite_domicile")
    consent = flag("consentement") if "consentement" in layout.index else consent_collected
    if (errors or birth_name is None or first_names is None or birth_date is None or sex is None
            or commune is None):
        raise _RowErrors(errors)
    return handlers.Enrolment(
        identity=handlers.Identity(birth_name=birth_name, used_name=text("nom_usage"),
                                   first_names=first_names, birth_date=birth_date, sex=sex, phone=phone,
                                   ins_nir=nir),
        commune_insee=commune, facts=facts, max_distance_km=distance, needs_home_visit=home, consent=consent,
        consent_source="cpam_list")


def _lines(text_: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every record after the header; blank lines are skipped."""
    first_line = text_.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text_), delimiter=_dialect(first_line))
    last = 0
    for cells in reader:
        start, last = last + 1, reader.line_num
        if any(c.strip() for c in cells):
            yield start, cells


def importer_principal() -> Principal:
    try:
        user = getpass.getuser()
    except Exception:  # no login name (containers)
        user = "unknown"
    return Principal(subject=f"cli:import-patients:{user}"[:200], roles=frozenset({Role.COORDINATOR}))


async def import_patients(database: Database, path: str | Path, *, cpts_id: str, weights: PriorityWeights,
                          consent_collected: bool = False, chunk_size: int = DEFAULT_CHUNK_SIZE,
                          by: Principal | None = None, now: datetime | None = None,
                          progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Import the file into the CPTS's list; `progress(done, total)` after each chunk (data lines)."""
    started = time.perf_counter()
    path = Path(path)
    try:
        text_ = _read_text(path)
    except OSError as exc:
        raise ImportFileError(f"fichier illisible : {exc.strerror or type(exc).__name__}") from exc
    records = _lines(text_)
    try:
        _, header = next(records)
    except StopIteration:
        raise ImportFileError("fichier vide : une ligne d'en-tête est attendue") from None
    layout = _layout(header, consent_collected=consent_collected)
    rows = list(records)
    by = by or importer_principal()
    result = ImportResult(summary=ImportSummary(rows=len(rows)))
    summary = result.summary
    if progress:
        progress(0, len(rows))
    for offset in range(0, len(rows), chunk_size):
        chunk = rows[offset:offset + chunk_size]
        at = now or datetime.now(UTC)
        today = paris_today(at)
        parsed: list[tuple[int, handlers.Enrolment]] = []
        for line, cells in chunk:
            try:
                enrolment = _parse_row(layout, cells, line, consent_collected=consent_collected)
                handlers.check_enrolment(enrolment, today)
            except _RowErrors as exc:
                result.errors.extend(exc.errors)
                continue
            except MatchingError as exc:
                column = FIELD_COLUMNS.get(exc.field or "", None)
                result.errors.append(RowError(line, layout.names.get(column, column) if column else exc.field,
                                              _french(exc.detail)))
                continue
            parsed.append((line, enrolment))
        if parsed:
            async with database.transaction() as session:
                for line, enrolment in parsed:
                    try:
                        async with session.begin_nested():
                            outcome = await handlers.enrol(session, cpts_id=cpts_id, enrolment=enrolment,
                                                           source="cpam_list", by=by, weights=weights, now=at,
                                                           checked=True)
                    except MatchingError as exc:
                        result.errors.append(RowError(line, None, _french(exc.detail)))
                        continue
                    except IntegrityError:
                        result.errors.append(RowError(line, None, "conflit avec un dossier existant (INS)"))
                        continue
                    if outcome.outcome == "created":
                        summary.created += 1
                    elif outcome.outcome == "re_enrolled":
                        summary.re_enrolled += 1
                    else:
                        summary.existing += 1
                    summary.near_duplicates += len(outcome.near_duplicates)
        if progress:
            progress(min(offset + chunk_size, len(rows)), len(rows))
    summary.rejected = len({e.line for e in result.errors})
    result.errors.sort(key=lambda e: e.line)
    summary.seconds = time.perf_counter() - started
    return result


_MESSAGES = {
    "NIR key does not match": "clé du NIR incorrecte",
    "birth date is in the future": "date de naissance dans le futur",
    "the patient's consent is required to be on the list": "consentement absent",
    "the birth name must contain letters": "le nom doit contenir des lettres",
    "the first names must contain letters": "les prénoms doivent contenir des lettres",
    "the hospital discharge date is in the future": "date de sortie d'hospitalisation dans le futur",
    "the distance must be between 0 and 200 km": "distance entre 0 et 200 km attendue",
}


def _french(detail: str) -> str:
    """The domain's message in French for the report (values of the file are never in it)."""
    if detail in _MESSAGES:
        return _MESSAGES[detail]
    if detail.startswith("NIR must be"):
        return "NIR de 15 caractères attendu (13 chiffres, 2A/2B pour la Corse, et la clé)"
    if detail.startswith("unknown commune"):
        return "commune inconnue (code INSEE attendu)"
    if detail.startswith("birth date is more than"):
        return "date de naissance trop ancienne"
    return detail


async def import_into_matching(path: str | Path, *, cpts_id: str, database_url: str | None = None,
                               migrate: bool = True, **options) -> ImportResult:
    """The import as the CLI runs it: the service's database from its settings (`CPTS_PATIENT_MATCHING_*`),
    migrated first, then `import_patients(..., **options)` with the configured priority weights."""
    from cpts_patient_matching.app import service
    from cpts_patient_matching.settings import Settings
    from cpts_platform.migrations import upgrade

    settings = Settings()
    database = Database(database_url or settings.database_url, service.tables)
    try:
        if migrate:
            await upgrade(database, service.migrations, service.metadata)
        return await import_patients(database, path, cpts_id=cpts_id, weights=settings.priority, **options)
    finally:
        await database.dispose()


def write_error_report(errors: list[RowError], path: str | Path) -> int:
    """The rejected lines as `ligne<TAB>colonne<TAB>erreur` (column names and messages only)."""
    with Path(path).open("w", encoding="utf-8") as f:
        f.write("ligne\tcolonne\terreur\n")
        for error in errors:
            f.write(f"{error.line}\t{error.column or ''}\t{error.message}\n")
    return len(errors)
