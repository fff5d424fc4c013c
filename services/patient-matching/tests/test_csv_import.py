"""Import of a CPAM-style CSV list: good lines enrolled (one person, one record), bad lines reported with
their line number and column and skipped, missing columns refused before anything is written; and the CLI."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cpts_cli.main import app as cli
from cpts_patient_matching.app import service
from cpts_platform.identifiers import nir_key
from cpts_patient_matching.domain.priority import PriorityWeights
from cpts_patient_matching.importer import ImportFileError, import_patients
from cpts_platform.db import Database
from cpts_platform.migrations import upgrade

CPTS = "690049999"
BODY = "2500369266012"
NIR = BODY + nir_key(BODY)
FUTURE = (date.today() + timedelta(days=10)).strftime("%d/%m/%Y")

CSV = f"""Nom de naissance;Prénoms;Date de naissance;Sexe;Code INSEE;Téléphone;NIR;ALD;C2S;Consentement
Lambert;Rose;02/03/1950;F;69266;0612345678;{NIR};oui;non;oui
Petit;Paul;1991-01-01;M;69266;;;non;oui;oui
Futur;Jean;{FUTURE};M;69266;;;non;non;oui
Mauvais;Nir;1980-01-01;F;69266;;{BODY} 00;non;non;oui
Commune;Inconnue;1980-01-01;F;69999;;;non;non;oui
Sexe;Faux;1980-01-01;X;69266;;;peut-être;non;oui
Sans;Consentement;1980-01-01;F;69266;;;non;non;non
;Vide;1980-01-01;F;69266;;;non;non;oui
LAMBERT;rose;1950-03-02;F;69266;;;non;non;oui
Lambret;Rose;1950-03-02;F;69266;;;non;non;oui

Court;Ligne
"""


@pytest.fixture
async def database(database_url):
    db = Database(database_url, service.tables)
    await upgrade(db, service.migrations, service.metadata)
    try:
        yield db
    finally:
        await db.dispose()


async def test_bad_lines_are_reported_by_line_and_column_and_never_stop_the_good_ones(database, tmp_path):
    path = tmp_path / "cpam.csv"
    path.write_text(CSV, encoding="utf-8")
    seen: list[tuple[int, int]] = []
    result = await import_patients(database, path, cpts_id=CPTS, weights=PriorityWeights(), chunk_size=4,
                                   progress=lambda done, total: seen.append((done, total)))
    s = result.summary
    figures = (s.rows, s.created, s.existing, s.re_enrolled, s.near_duplicates, s.rejected)
    assert figures == (11, 3, 1, 0, 1, 7)
    assert seen[0] == (0, 11) and seen[-1] == (11, 11)
    report = [(e.line, e.column) for e in result.errors]
    assert report == [(4, "Date de naissance"), (5, "NIR"), (6, "Code INSEE"), (7, "Sexe"), (7, "ALD"),
                      (8, "Consentement"), (9, "Nom de naissance"), (13, "Date de naissance"), (13, "Sexe"),
                      (13, "Code INSEE")]
    messages = {e.line: e.message for e in result.errors}
    assert messages[4] == "date de naissance dans le futur" and messages[5] == "clé du NIR incorrecte"
    assert messages[6] == "commune inconnue (code INSEE attendu)" and messages[8] == "consentement absent"
    assert all(NIR not in str(e) and "Mauvais" not in str(e) for e in result.errors)  # columns, never values
    async with database.sessions() as session:
        rows = (await session.execute(sa.text(
            "SELECT birth_name, source, ald, c2s, ins_nir FROM patient ORDER BY birth_name"))).all()
        events = (await session.execute(sa.text(
            "SELECT event_type, value FROM outbox_event ORDER BY id"))).all()
        duplicates = (await session.execute(sa.text(
            "SELECT reason FROM duplicate_candidate"))).scalars().all()
    assert [tuple(r) for r in rows] == [("Lambert", "cpam_list", True, False, NIR),
                                        ("Lambret", "cpam_list", False, False, None),
                                        ("Petit", "cpam_list", False, True, None)]
    assert [t.rsplit(".", 2)[-2] for t, _ in events] == ["enrolled", "enrolled", "enrolled"]
    assert all(json.loads(v)["source"] == "cpam_list" for _, v in events)
    assert duplicates == ["nom de famille proche (faute de frappe ?)"]

    again = await import_patients(database, path, cpts_id=CPTS, weights=PriorityWeights())
    assert (again.summary.created, again.summary.existing) == (0, 4)  # one person, one record


async def test_missing_columns_or_consent_stop_the_import_before_anything_is_written(database, tmp_path):
    path = tmp_path / "incomplete.csv"
    path.write_text("nom,prenom,date_naissance,commune_insee\nLambert,Rose,1950-03-02,69266\n",
                    encoding="utf-8")
    with pytest.raises(ImportFileError, match="colonnes obligatoires manquantes : sexe"):
        await import_patients(database, path, cpts_id=CPTS, weights=PriorityWeights())
    no_consent = tmp_path / "no-consent.csv"
    no_consent.write_text("nom,prenom,date_naissance,sexe,commune_insee\nLambert,Rose,1950-03-02,2,69266\n",
                          encoding="cp1252")
    with pytest.raises(ImportFileError, match="--consent-collected"):
        await import_patients(database, no_consent, cpts_id=CPTS, weights=PriorityWeights())
    async with database.sessions() as session:
        assert (await session.execute(sa.text("SELECT count(*) FROM patient"))).scalar_one() == 0
    done = await import_patients(database, no_consent, cpts_id=CPTS, weights=PriorityWeights(),
                                 consent_collected=True)
    assert done.summary.created == 1 and done.errors == []


def test_the_cli_imports_with_a_progress_bar_and_a_report(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CPTS_PATIENT_MATCHING_DATABASE_URL", database_url)
    path = tmp_path / "cpam.csv"
    path.write_text(CSV, encoding="utf-8")
    report = tmp_path / "rejected.tsv"
    runner = CliRunner()
    result = runner.invoke(cli, ["matching", "import-patients", str(path), "--cpts", CPTS,
                                 "--report", str(report), "--show", "3"])
    assert result.exit_code == 0, result.output
    assert "11 lignes lues" in result.output and "3 inscrits, 1 déjà sur la liste" in result.output
    assert "ligne 4, colonne Date de naissance : date de naissance dans le futur" in result.output
    assert "7 de plus" in result.output
    assert report.read_text(encoding="utf-8").splitlines()[:2] == [
        "ligne\tcolonne\terreur", "4\tDate de naissance\tdate de naissance dans le futur"]
    missing = tmp_path / "missing.csv"
    missing.write_text("nom;prenoms\nLambert;Rose\n", encoding="utf-8")
    refused = runner.invoke(cli, ["matching", "import-patients", str(missing), "--cpts", CPTS])
    assert refused.exit_code == 2 and "colonnes obligatoires manquantes" in refused.output
    bad_cpts = runner.invoke(cli, ["matching", "import-patients", str(path), "--cpts", "123"])
    assert bad_cpts.exit_code == 2
    shown = runner.invoke(cli, ["matching", "report", "--cpts", CPTS])
    assert shown.exit_code == 0 and "appariement exact" in shown.output
