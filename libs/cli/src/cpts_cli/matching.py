"""`cpts matching ...`: patient-matching's admin tasks (import a CPAM list of patients, compare a round with
first come first served). They work on the service's database, from its settings
(`CPTS_PATIENT_MATCHING_*`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

matching_app = typer.Typer(help="Patients sans médecin traitant : import de listes, comparaison des tours.",
                           no_args_is_help=True)

FINESS = r"^\d{2}[0-9AB]\d{6}$"


def _finess(value: str) -> str:
    import re

    if not re.fullmatch(FINESS, value):
        raise typer.BadParameter("FINESS attendu : 9 caractères, ex. 690049999")
    return value


@matching_app.command("import-patients")
def import_patients(
        file: Annotated[Path, typer.Argument(
            exists=True, dir_okay=False, readable=True,
            help="CSV, une ligne par patient (séparateur ; , ou tabulation).")],
        cpts: Annotated[str, typer.Option("--cpts", callback=_finess, help="FINESS de la CPTS.")],
        consent_collected: Annotated[bool, typer.Option(
            "--consent-collected",
            help="Sans colonne consentement : le consentement de chaque patient a été recueilli.")] = False,
        report: Annotated[Optional[Path], typer.Option(
            help="Écrire chaque ligne rejetée (numéro, colonne, erreur) dans ce fichier.")] = None,
        show: Annotated[int, typer.Option(help="Lignes rejetées à afficher.")] = 20,
        chunk_size: Annotated[int, typer.Option(min=1, help="Lignes par transaction.")] = 200) -> None:
    """Inscrire sur la liste de la CPTS les patients d'un fichier (ex. liste CPAM) ; une ligne invalide est
    signalée (numéro et colonne) et n'empêche jamais les autres."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cpts_patient_matching.importer import ImportFileError, import_into_matching, write_error_report

    columns = (TextColumn("inscription"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("import", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            result = asyncio.run(import_into_matching(file, cpts_id=cpts, consent_collected=consent_collected,
                                                      chunk_size=chunk_size, progress=progress))
        except ImportFileError as exc:
            typer.echo(f"import impossible : {exc}", err=True)
            raise typer.Exit(2)
    s = result.summary
    typer.echo(f"{s.rows:,} lignes lues en {s.seconds:.1f} s : {s.created:,} inscrits, {s.existing:,} déjà "
               f"sur la liste, {s.re_enrolled:,} réinscrits, {s.rejected:,} rejetées ; "
               f"{s.near_duplicates:,} doublon(s) possible(s) à examiner")
    shown = max(show, 0)
    for error in result.errors[:shown]:
        typer.echo(f"  {error}")
    if len(result.errors) > shown:
        typer.echo(f"  ... {len(result.errors) - shown:,} de plus" + ("" if report else " (voir --report)"))
    if report:
        write_error_report(result.errors, report)
        typer.echo(f"lignes rejetées : {report}")


@matching_app.command("report")
def report(cpts: Annotated[str, typer.Option("--cpts", callback=_finess, help="FINESS de la CPTS.")]) -> None:
    """Ce que ferait un tour maintenant : appariement exact contre premier arrivé, premier servi (rien n'est
    proposé)."""
    from cpts_patient_matching.app import service
    from cpts_patient_matching.reports import format_report, territory_report
    from cpts_patient_matching.settings import Settings
    from cpts_platform.db import Database

    async def go() -> str:
        database = Database(Settings().database_url, service.tables)
        try:
            return format_report(await territory_report(database, cpts))
        finally:
            await database.dispose()

    typer.echo(asyncio.run(go()))
