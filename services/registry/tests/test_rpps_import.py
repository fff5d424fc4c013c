"""Import of the public RPPS extract: reading the file, writing the registry, events in the outbox."""

from __future__ import annotations

import json
from pathlib import Path

import cpts_registry
import pytest
import sqlalchemy as sa
from cpts_events import decode, encode
from cpts_platform.db import Database
from cpts_platform.migrations import upgrade
from cpts_registry.repository import ActivityRow, PracticeSiteRow, ProfessionalRow, metadata, tables
from cpts_registry.rpps.demo import generate_demo
from cpts_registry.rpps.extract import (
    COLUMNS,
    RejectedLine,
    RppsExtract,
    RppsFormatError,
    RppsRow,
    SkippedLine,
)
from cpts_registry.rpps.importer import import_rpps, new_event_ids, write_rejected_report

MIGRATIONS = Path(cpts_registry.__file__).parent / "migrations"
PROFESSIONAL = ProfessionalRow.__table__
SITE = PracticeSiteRow.__table__
ACTIVITY = ActivityRow.__table__

GP = "810000000019"  # RPPS 10000000001
NURSE = "810000000027"
AUDIO = "0012600017"  # ADELI 012600017: 9 characters, a leading zero


def activity(idnps: str = GP, **columns: str) -> dict[str, str]:
    """One row of the national file (column name -> value); a GP in Lyon 3e unless told otherwise."""
    row = {
        "Type d'identifiant PP": idnps[0], "Identifiant PP": idnps[1:], "Identification nationale PP": idnps,
        "Code civilité d'exercice": "DR", "Libellé civilité d'exercice": "Docteur", "Code civilité": "MME",
        "Nom d'exercice": "LEFÈVRE", "Prénom d'exercice": "Hélène", "Code profession": "10",
        "Libellé profession": "Médecin", "Code type savoir-faire": "S", "Code savoir-faire": "SM54",
        "Libellé savoir-faire": "Médecine générale", "Code mode exercice": "L",
        "Numéro SIRET site": "35380181104116",
        "Identifiant technique de la structure": "C00000001", "Raison sociale site": "CABINET DU PARC",
        "Numéro Voie (coord. structure)": "12", "Code type de voie (coord. structure)": "R",
        "Libellé type de voie (coord. structure)": "Rue",
        "Libellé Voie (coord. structure)": "DE LA RÉPUBLIQUE",
        "Bureau cedex (coord. structure)": "69003 LYON", "Code postal (coord. structure)": "69003",
        "Code commune (coord. structure)": "69383",
        "Libellé commune (coord. structure)": "Lyon 3e Arrondissement",
        "Téléphone (coord. structure)": "0478000000", "Code Département (structure)": "69",
        "Ancien identifiant de la structure": "335380181104116", "Code secteur d'activité": "SA07",
    }
    row.update(columns)
    return row


def write_extract(path: Path, rows: list[dict[str, str]], *, columns=COLUMNS, encoding: str = "utf-8",
                  trailing: bool = True) -> Path:
    end = "|\n" if trailing else "\n"
    with path.open("w", encoding=encoding, newline="") as f:
        f.write("|".join(columns) + end)
        for row in rows:
            f.write("|".join(row.get(c, "") for c in columns) + end)
    return path


def nurse(**columns: str) -> dict[str, str]:
    return activity(NURSE, **{
        "Code civilité d'exercice": "", "Libellé civilité d'exercice": "", "Code civilité": "M",
        "Nom d'exercice": "MOREL", "Prénom d'exercice": "Jérôme", "Code profession": "60",
        "Libellé profession": "Infirmier", "Code type savoir-faire": "", "Code savoir-faire": "",
        "Libellé savoir-faire": "", "Identifiant technique de la structure": "C00000002",
        "Ancien identifiant de la structure": "335380181200013", "Raison sociale site": "",
        "Code postal (coord. structure)": "01000", "Code commune (coord. structure)": "01053",
        "Bureau cedex (coord. structure)": "01000 BOURG-EN-BRESSE", "Code Département (structure)": "01",
        **columns})


def audioprothesiste(**columns: str) -> dict[str, str]:
    """The ADELI audioprothésiste of the reference: no commune code, only a postcode."""
    return activity(AUDIO, **{
        "Code civilité d'exercice": "", "Code civilité": "M", "Nom d'exercice": "BERNARD",
        "Prénom d'exercice": "Loïc", "Code profession": "26", "Libellé profession": "Audioprothésiste",
        "Code type savoir-faire": "", "Code savoir-faire": "", "Libellé savoir-faire": "",
        "Identifiant technique de la structure": "C00000003", "Ancien identifiant de la structure": "",
        "Code postal (coord. structure)": "69330", "Code commune (coord. structure)": "",
        "Libellé commune (coord. structure)": "Meyzieu", "Bureau cedex (coord. structure)": "69330 MEYZIEU",
        **columns})


def abroad(**columns: str) -> dict[str, str]:
    """The GP's second site, in London."""
    return activity(**{"Identifiant technique de la structure": "C00000004",
                       "Ancien identifiant de la structure": "", "Code postal (coord. structure)": "SW1A 2AA",
                       "Code commune (coord. structure)": "", "Libellé commune (coord. structure)": "LONDRES",
                       "Code pays (coord. structure)": "99132",
                       "Libellé pays (coord. structure)": "Royaume-Uni",
                       "Code Département (structure)": "", **columns})


@pytest.fixture
async def database(database_url):
    db = Database(database_url, tables)
    await upgrade(db, MIGRATIONS, metadata)
    try:
        yield db
    finally:
        await db.dispose()


async def fetch(database: Database, query) -> list:
    async with database.sessions() as session:
        return list((await session.execute(query)).all())


async def outbox_events(database: Database) -> list:
    outbox = database.tables.outbox
    rows = await fetch(database,
                       sa.select(outbox.c.headers, outbox.c.key, outbox.c.value).order_by(outbox.c.id))
    return [decode([(name, value.encode()) for name, value in headers], key, value)
            for headers, key, value in rows]


# --- reading the file (no database) ------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_utf8_and_latin1_files_read_the_same(tmp_path, encoding):
    path = write_extract(tmp_path / "extract.txt", [activity(), audioprothesiste()], encoding=encoding)
    extract = RppsExtract(path)
    rows = list(extract)
    assert extract.encoding == encoding
    assert [r.family_name for r in rows] == ["LEFÈVRE", "BERNARD"]
    assert rows[0].given_name == "Hélène" and rows[1].idnps == AUDIO


def test_a_latin1_line_in_a_utf8_file_is_read_as_latin1(tmp_path):
    path = write_extract(tmp_path / "extract.txt", [activity()])
    with path.open("ab") as f:
        f.write(("|".join(nurse().get(c, "") for c in COLUMNS) + "|\n").encode("latin-1"))
    extract = RppsExtract(path)
    rows = list(extract)
    assert extract.encoding == "utf-8" and extract.fallback_lines == 1
    assert rows[1].given_name == "Jérôme"


def test_columns_are_mapped_by_header_name_and_the_trailing_separator_is_optional(tmp_path):
    dropped = {"Numéro SIREN site", "Télécopie (coord. structure)", "Libellé pays (coord. structure)"}
    shuffled = [c for c in reversed(COLUMNS) if c not in dropped] + ["Une colonne ajoutée en 2027"]
    path = write_extract(tmp_path / "extract.txt", [activity(), nurse()], columns=shuffled, trailing=False)
    rows = list(RppsExtract(path))
    assert [type(r) for r in rows] == [RppsRow, RppsRow]
    assert (rows[0].idnps, rows[0].family_name, rows[0].commune_code) == (GP, "LEFÈVRE", "69383")
    assert rows[1].profession_code == "60"


def test_malformed_lines_are_rejected_with_their_line_number_and_the_column(tmp_path):
    path = write_extract(tmp_path / "extract.txt", [
        activity(),
        activity("810000000035", **{"Identification nationale PP": "810000000099"}),
        activity("8100000000", **{"Identification nationale PP": "8100000000"}),
        activity("810000000043", **{"Nom d'exercice": ""}),
        activity("810000000050", **{"Code profession": ""}),
        nurse(),
    ])
    with path.open("a", encoding="utf-8") as f:
        f.write("8|10000000068|810000000068|too|few|\n")
    items = list(RppsExtract(path))
    rejected = [(i.line_no, i.reason) for i in items if isinstance(i, RejectedLine)]
    assert rejected == [
        (3, "Identification nationale PP: not type + identifier"),
        (4, "Identifiant PP: not 11 digits for an RPPS id"),
        (5, "Nom d'exercice: empty"),
        (6, "Code profession: empty"),
        (8, f"column count: 5 instead of {len(COLUMNS)}"),
    ]
    assert [i.line_no for i in items if isinstance(i, RppsRow)] == [2, 7]


def test_a_site_abroad_is_skipped_not_rejected(tmp_path):
    path = write_extract(tmp_path / "extract.txt", [activity(), abroad()])
    items = list(RppsExtract(path))
    assert isinstance(items[1], SkippedLine) and items[1].line_no == 3
    assert "abroad" in items[1].reason


def test_a_file_without_the_identity_columns_is_refused(tmp_path):
    path = tmp_path / "extract.txt"
    path.write_text("Nom d'exercice|Prénom d'exercice|\nMARTIN|Jean|\n", encoding="utf-8")
    with pytest.raises(RppsFormatError, match="Identification nationale PP"):
        list(RppsExtract(path))


def test_the_demo_extract_has_the_national_format_and_depends_only_on_its_seed(tmp_path):
    first = generate_demo(tmp_path / "a.txt", rows=300, departements=["69"], seed=4)
    again = generate_demo(tmp_path / "b.txt", rows=300, departements=["69"], seed=4)
    other = generate_demo(tmp_path / "c.txt", rows=300, departements=["69"], seed=5)
    text = first.path.read_text(encoding="utf-8")
    assert text == again.path.read_text(encoding="utf-8") != other.path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 301 and len(COLUMNS) == 52
    assert lines[0] == "|".join(COLUMNS) + "|"
    assert all(line.endswith("|") and line.count("|") == 52 for line in lines)
    items = list(RppsExtract(first.path))
    rows = [i for i in items if isinstance(i, RppsRow)]
    assert not [i for i in items if isinstance(i, RejectedLine)]
    assert [i for i in items if isinstance(i, SkippedLine)]  # the physicians with a site abroad
    assert any(r.id_type == "0" and len(r.pp_id) == 9 for r in rows)  # ADELI ids
    assert any(not r.commune_code and r.postcode for r in rows)  # a site known by its postcode only
    assert {r.departement_code for r in rows} == {"69"}
    share = sum(r.profession_code == "10" for r in rows) / len(rows)
    assert 0.15 < share < 0.4


# --- importing ----------------------------------------------------------------------------------------------

async def test_import_writes_professionals_sites_activities_and_events(database, tmp_path):
    path = write_extract(tmp_path / "extract.txt", [activity(), abroad(), nurse(), audioprothesiste()])
    result = await import_rpps(database, path)
    s = result.summary
    assert (s.rows_read, s.created, s.updated, s.rejected, s.skipped_out_of_territory) == (4, 3, 0, 0, 1)
    assert s.full and s.events == 6
    professionals = {r.idnps: r for r in await fetch(database, sa.select(PROFESSIONAL))}
    gp = professionals[GP]
    assert (gp.civility, gp.family_name, gp.given_name, gp.specialty_code, gp.commune_insee) == (
        "Dr", "LEFÈVRE", "Hélène", "SM54", "69383")
    assert gp.source == "rpps-import" and gp.active and len(gp.content_hash) == 32
    sites = {r.site_id: r for r in await fetch(database, sa.select(SITE))}
    # The former (prefixed) structure id when there is one, else the technical id.
    assert set(sites) == {"335380181104116", "335380181200013", "C00000003"}
    assert sites["335380181104116"].address == "12 Rue DE LA RÉPUBLIQUE" and sites["335380181104116"].lat
    # The site without a commune code is located from its postcode.
    assert sites["C00000003"].commune_insee == "69282" and sites["C00000003"].lat is not None
    assert professionals[AUDIO].commune_insee == "69282"
    activities = await fetch(database, sa.select(ACTIVITY.c.idnps, ACTIVITY.c.site_id))
    assert len(activities) == 3  # not the site abroad

    events = await outbox_events(database)
    assert [(e.type.rsplit(".", 2)[-2], e.key) for e in events] == [
        ("registered", GP), ("changed", GP), ("registered", NURSE), ("changed", NURSE),
        ("registered", AUDIO), ("changed", AUDIO)]
    assert all(e.source == "/cpts/registry" and e.subject == f"professional/{e.key}" for e in events)
    assert events[0].payload.family_name == "LEFÈVRE" and events[0].payload.cpts_ids == []
    assert [s.site_id for s in events[1].payload.sites] == ["335380181104116"]
    assert events[5].payload.sites[0].commune_insee == "69282"


async def test_outbox_rows_are_what_add_events_would_write(database, tmp_path):
    await import_rpps(database, write_extract(tmp_path / "extract.txt", [activity(), nurse()]))
    outbox = database.tables.outbox
    rows = await fetch(database, sa.select(outbox))
    for row in rows:
        event = decode([(n, v.encode()) for n, v in row.headers], row.key, row.value)
        record = encode(event)
        assert [[n, v.decode()] for n, v in record.headers] == row.headers
        assert (record.key, record.value, record.topic, event.id, event.type) == (
            row.key, row.value, row.topic, row.event_id, row.event_type)
    assert sorted(r.event_id for r in rows) == [r.event_id for r in sorted(rows, key=lambda r: r.id)]


def test_event_ids_are_time_ordered_uuids():
    import uuid
    from datetime import UTC, datetime

    ids = new_event_ids(1000, datetime.now(UTC))
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert {uuid.UUID(i).version for i in ids} == {7}


async def test_a_bad_line_is_reported_and_the_others_are_imported(database, tmp_path):
    path = write_extract(tmp_path / "extract.txt", [
        activity(), activity("810000000035", **{"Identification nationale PP": "810000000099"}), nurse()])
    result = await import_rpps(database, path)
    assert result.summary.created == 2 and result.summary.rejected == 1
    assert [(r.line_no, r.reason) for r in result.rejected] == [
        (3, "Identification nationale PP: not type + identifier")]
    report = tmp_path / "rejected.tsv"
    write_rejected_report(result.rejected, report)
    assert report.read_text(encoding="utf-8").splitlines() == [
        "line\treason", "3\tIdentification nationale PP: not type + identifier"]


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
async def test_a_second_import_of_the_same_file_changes_nothing(database, tmp_path, encoding):
    path = generate_demo(tmp_path / "demo.txt", rows=120, departements=["69"], seed=2, encoding=encoding).path
    first = await import_rpps(database, path, chunk_size=25)
    assert first.summary.encoding == encoding
    assert first.summary.created > 90 and first.summary.events == 2 * first.summary.created
    outbox = database.tables.outbox
    count = sa.select(sa.func.count()).select_from(outbox)
    events_before = (await fetch(database, count))[0][0]
    professionals_before = await fetch(database, sa.select(PROFESSIONAL).order_by(PROFESSIONAL.c.idnps))

    again = await import_rpps(database, path, chunk_size=25)
    s = again.summary
    assert (s.created, s.updated, s.deactivated, s.events) == (0, 0, 0, 0)
    assert s.unchanged == first.summary.created
    assert (await fetch(database, count))[0][0] == events_before
    after = await fetch(database, sa.select(PROFESSIONAL).order_by(PROFESSIONAL.c.idnps))
    assert after == professionals_before
    names = {r.family_name for r in professionals_before}
    assert any(set(n) & set("ÈÉÊËÎÏÔÛÇ") for n in names)  # accents read right in both encodings


async def test_a_changed_row_updates_the_professional_with_one_event(database, tmp_path):
    await import_rpps(database, write_extract(tmp_path / "v1.txt", [activity(), nurse()]))
    before = len(await outbox_events(database))
    result = await import_rpps(database, write_extract(tmp_path / "v2.txt", [
        activity(**{"Nom d'exercice": "LEFÈVRE-DURAND"}), nurse()]))
    s = result.summary
    assert (s.created, s.updated, s.unchanged, s.events) == (0, 1, 1, 1)
    events = (await outbox_events(database))[before:]
    assert [e.type for e in events] == ["fr.cpts.registry.professional.updated.v1"]
    assert events[0].key == GP and events[0].payload.family_name == "LEFÈVRE-DURAND"
    gp = (await fetch(database, sa.select(PROFESSIONAL).where(PROFESSIONAL.c.idnps == GP)))[0]
    assert gp.family_name == "LEFÈVRE-DURAND" and gp.updated_at is not None


async def test_a_new_site_gives_a_sites_changed_event_only(database, tmp_path):
    await import_rpps(database, write_extract(tmp_path / "v1.txt", [activity()]))
    before = len(await outbox_events(database))
    second = activity(**{"Identifiant technique de la structure": "R00000009",
                         "Ancien identifiant de la structure": "1690000123", "Code mode exercice": "S",
                         "Code postal (coord. structure)": "69100",
                         "Code commune (coord. structure)": "69266"})
    result = await import_rpps(database, write_extract(tmp_path / "v2.txt", [activity(), second]))
    assert result.summary.updated == 1
    events = (await outbox_events(database))[before:]
    assert [e.type for e in events] == ["fr.cpts.registry.professional.sites.changed.v1"]
    assert [(s.site_id, s.commune_insee, s.practice_mode) for s in events[0].payload.sites] == [
        ("335380181104116", "69383", "L"), ("1690000123", "69266", "S")]
    assert len(await fetch(database, sa.select(ACTIVITY).where(ACTIVITY.c.idnps == GP))) == 2


async def test_a_professional_listed_again_later_keeps_all_activities(database, tmp_path):
    second = activity(**{"Identifiant technique de la structure": "R00000009",
                         "Ancien identifiant de la structure": "1690000123",
                         "Code commune (coord. structure)": "69266"})
    path = write_extract(tmp_path / "extract.txt", [activity(), nurse(), second])
    result = await import_rpps(database, path, chunk_size=1)
    assert result.summary.created == 2
    sites = await fetch(database, sa.select(ACTIVITY.c.site_id).where(ACTIVITY.c.idnps == GP))
    assert sorted(s for (s,) in sites) == ["1690000123", "335380181104116"]
    again = await import_rpps(database, path, chunk_size=1)
    assert (again.summary.unchanged, again.summary.events) == (2, 0)


async def test_a_full_import_deactivates_the_professionals_absent_from_the_file(database, tmp_path):
    await import_rpps(database, write_extract(tmp_path / "v1.txt", [activity(), nurse(), audioprothesiste()]))
    before = len(await outbox_events(database))
    # The audioprothésiste's line is malformed this time: a bad line never deactivates anyone.
    result = await import_rpps(database, write_extract(tmp_path / "v2.txt", [
        activity(), audioprothesiste(**{"Nom d'exercice": ""})]))
    s = result.summary
    assert (s.deactivated, s.unchanged, s.rejected) == (1, 1, 1)
    events = (await outbox_events(database))[before:]
    assert [(e.type, e.key, e.payload.reason) for e in events] == [
        ("fr.cpts.registry.professional.deactivated.v1", NURSE, "absent-from-rpps-import")]
    active = dict(await fetch(database, sa.select(PROFESSIONAL.c.idnps, PROFESSIONAL.c.active)))
    assert active == {GP: True, NURSE: False, AUDIO: True}

    # Back in the file: reactivated, announced by a snapshot.
    back = await import_rpps(database, write_extract(tmp_path / "v3.txt",
                                                     [activity(), nurse(), audioprothesiste()]))
    assert (back.summary.updated, back.summary.deactivated) == (1, 0)
    events = (await outbox_events(database))[before + 1:]
    assert [(e.type, e.payload.active) for e in events] == [
        ("fr.cpts.registry.professional.updated.v1", True)]


async def test_filters_keep_the_territory_and_the_professions(database, tmp_path):
    path = write_extract(tmp_path / "extract.txt", [activity(), abroad(), nurse(), audioprothesiste()])
    result = await import_rpps(database, path, departements=["69"])
    s = result.summary
    assert (s.created, s.skipped_out_of_territory, s.full) == (2, 2, False)
    assert {r.idnps for r in await fetch(database, sa.select(PROFESSIONAL.c.idnps))} == {GP, AUDIO}

    result = await import_rpps(database, path, professions=["60"], departements=["1"])
    assert (result.summary.created, result.summary.skipped_other_profession) == (1, 2)

    # Partial imports never deactivate; a full one restricted to a profession and a département only there.
    result = await import_rpps(database, write_extract(tmp_path / "empty.txt", [activity()]),
                               professions=["26"], departements=["69"], full=True)
    assert result.summary.deactivated == 1
    active = dict(await fetch(database, sa.select(PROFESSIONAL.c.idnps, PROFESSIONAL.c.active)))
    assert active == {GP: True, AUDIO: False, NURSE: True}


async def test_the_outbox_keeps_its_json_headers_format(database, tmp_path):
    await import_rpps(database, write_extract(tmp_path / "extract.txt", [activity()]))
    outbox = database.tables.outbox
    async with database.sessions() as session:
        raw = (await session.execute(sa.select(sa.cast(outbox.c.headers, sa.Text)).limit(1))).scalar_one()
    headers = json.loads(raw)
    assert headers[0][0] == "ce_id" and ["ce_subject", f"professional/{GP}"] in headers


def test_the_cli_generates_a_demo_extract_and_imports_it(tmp_path, monkeypatch):
    from cpts_cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setenv("CPTS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CPTS_REGISTRY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
    runner = CliRunner()
    demo = tmp_path / "demo.txt"
    result = runner.invoke(app, ["registry", "generate-demo", str(demo), "--rows", "200", "--seed", "3"])
    assert result.exit_code == 0, result.output
    with demo.open("a", encoding="utf-8") as f:
        f.write("8|10000000001|810000000019|too few columns|\n")
    report = tmp_path / "rejected.tsv"
    result = runner.invoke(app, ["registry", "import-rpps", str(demo), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "200 rows read" not in result.output and "201 rows read" in result.output
    assert f"line 202: column count: 4 instead of {len(COLUMNS)}" in result.output
    assert report.read_text(encoding="utf-8").splitlines()[1:] == [
        f"202\tcolumn count: 4 instead of {len(COLUMNS)}"]
    result = runner.invoke(app, ["registry", "import-rpps", str(demo), "--departement", "69",
                                 "--profession", "10"])
    assert result.exit_code == 0, result.output
    assert "0 created, 0 updated" in result.output and "partial import" in result.output
