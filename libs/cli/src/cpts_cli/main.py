"""`cpts`: one command for every process role and admin task of the platform."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from cpts_cli.matching import matching_app
from cpts_platform.auth import LocalIssuer, Role

app = typer.Typer(help="Plateforme CPTS : services, pile locale, jetons, migrations, reprise.",
                  no_args_is_help=True, add_completion=False)


def _var_dir() -> Path:
    return Path(os.environ.get("CPTS_VAR_DIR", "var"))


@app.command()
def serve(service: str, host: Annotated[Optional[str], typer.Option()] = None,
          port: Annotated[Optional[int], typer.Option()] = None) -> None:
    """Serve one service (HTTP API, outbox relay and consumers in one process) or the web console."""
    import uvicorn

    from cpts_cli.services import build_app

    asgi_app, settings = build_app(service)
    # Idle keep-alive connections live longer than a reverse proxy's (nginx: 60 s), so the proxy, never the
    # service, closes them: a request is never sent on a connection the service is closing.
    uvicorn.run(asgi_app, host=host or settings.http_host, port=port or settings.http_port,
                log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=75)


@app.command()
def run(seed: Annotated[bool, typer.Option(help="Seed the demo data.")] = True) -> None:
    """Run the whole platform locally: broker, topics, migrations, every service, demo data."""
    from cpts_cli.stack import run_stack

    raise typer.Exit(run_stack(var_dir=_var_dir(), seed=seed))


@app.command()
def token(role: Annotated[Role, typer.Option(help="Role of the demo user.")],
          cpts: Annotated[list[str], typer.Option(help="CPTS (FINESS) in scope.")] = [],
          departement: Annotated[list[str], typer.Option(help="Département code in scope.")] = [],
          professional: Annotated[Optional[str], typer.Option(help="The user's IDNPS.")] = None,
          subject: Annotated[Optional[str], typer.Option()] = None,
          ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 8 * 3600) -> None:
    """Print a token signed by the local demo issuer (embedded run only)."""
    if os.environ.get("CPTS_PROFILE") == "production":
        raise typer.BadParameter("the local issuer does not exist in production")
    issuer = LocalIssuer(_var_dir() / "local-issuer")
    typer.echo(issuer.mint(subject=subject or f"demo-{role.value}", roles=[role.value], cpts_ids=cpts,
                           departements=departement, idnps=professional, ttl_seconds=ttl))


@app.command()
def migrate(services: Annotated[Optional[list[str]], typer.Argument()] = None,
            all_: Annotated[bool, typer.Option("--all")] = False) -> None:
    """Apply the database migrations of the given services (or --all)."""
    from cpts_cli.services import load_services
    from cpts_platform.db import Database
    from cpts_platform.migrations import upgrade

    known = load_services()
    names = list(known) if all_ or not services else services
    for name in names:
        if name not in known:
            raise typer.BadParameter(f"unknown service {name!r}")

    async def go() -> None:
        for name in names:
            definition = known[name]
            database = Database(definition.settings_class().database_url, definition.tables)
            try:
                await upgrade(database, definition.migrations, definition.metadata)
            finally:
                await database.dispose()
            typer.echo(f"{name}: migrated")

    asyncio.run(go())


@app.command()
def topics(partitions: Annotated[Optional[int], typer.Option()] = None,
           replication_factor: Annotated[Optional[int], typer.Option()] = None) -> None:
    """Create every topic of the platform and its dead-letter topic."""
    from cpts_platform.kafka import ensure_topics, platform_topics
    from cpts_platform.settings import KafkaSettings

    settings = KafkaSettings()
    created = asyncio.run(ensure_topics(
        settings, [settings.kafka_topic_prefix + t for t in platform_topics()],
        partitions=partitions or settings.topic_partitions,
        replication_factor=replication_factor or settings.topic_replication_factor,
    ))
    typer.echo(f"created: {', '.join(created) or 'none (all exist)'}")


@app.command()
def replay(service: str, since: Annotated[Optional[datetime], typer.Option()] = None) -> None:
    """Re-publish a service's retained outbox history (e.g. into a fresh broker)."""
    from cpts_cli.services import load_service
    from cpts_platform.db import Database
    from cpts_platform.kafka import new_producer
    from cpts_platform.outbox import replay as replay_outbox

    definition = load_service(service)
    settings = definition.settings_class()

    async def go() -> int:
        database = Database(settings.database_url, definition.tables)
        producer = new_producer(settings, client_id=f"{service}-replay")
        await producer.start()
        try:
            return await replay_outbox(database=database, producer=producer, since=since,
                                       topic_prefix=settings.kafka_topic_prefix)
        finally:
            await producer.stop()
            await database.dispose()

    typer.echo(f"{service}: {asyncio.run(go())} events re-published")


@app.command()
def seed(registry_url: Annotated[str, typer.Option()] = "http://127.0.0.1:8001") -> None:
    """Seed the demo data through the registry's API (safe to run again)."""
    from cpts_cli import demo

    demo.import_demo_extract(_var_dir())
    issuer = LocalIssuer(_var_dir() / "local-issuer")
    figures = demo.seed(registry_url, issuer.mint(subject="demo-admin", roles=["admin"], ttl_seconds=600))
    typer.echo(", ".join(f"{k}: {v}" for k, v in figures.items()))


@app.command()
def schemas(out: Annotated[Path, typer.Option()] = Path("libs/events/schemas"),
            check: Annotated[bool, typer.Option(help="Fail if the committed files are stale.")] = False) -> None:
    """Generate the JSON Schemas of every event and the AsyncAPI document of every topic."""
    from cpts_events import schemas as generator

    if check:
        stale = generator.stale(out)
        if stale:
            typer.echo("stale: " + ", ".join(stale) + " (run `cpts schemas`)", err=True)
            raise typer.Exit(1)
        typer.echo("schemas up to date")
        return
    for path in generator.write(out):
        typer.echo(str(path))


@app.command()
def openapi(check: Annotated[bool, typer.Option(help="Fail if a committed document is stale.")] = False) -> None:
    """Write each service's OpenAPI document to services/<name>/openapi.json."""
    from cpts_cli.services import load_services, openapi_document

    stale = []
    for name, definition in load_services().items():
        path = definition.migrations.parents[2] / "openapi.json"
        document = openapi_document(definition)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != document:
                stale.append(str(path))
        else:
            path.write_text(document, encoding="utf-8")
            typer.echo(str(path))
    if stale:
        typer.echo("stale: " + ", ".join(stale) + " (run `cpts openapi`)", err=True)
        raise typer.Exit(1)
    if check:
        typer.echo("OpenAPI documents up to date")


@app.command()
def broker(port: Annotated[int, typer.Option()] = 9092) -> None:
    """Run only the local Kafka-protocol broker (development)."""
    import time

    from cpts_platform.dev.broker import LocalBroker

    local = LocalBroker(port=port)
    local.start()
    typer.echo(f"broker on {local.bootstrap_servers}; Ctrl-C to stop")
    try:
        while local.process and local.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        local.stop()


registry_app = typer.Typer(help="Registry: import the public RPPS extract, generate demo extracts.",
                           no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("import-rpps")
def registry_import_rpps(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                             help="PS_LibreAcces_Personne_activite_<date>.txt")],
        departement: Annotated[list[str], typer.Option(
            help="Keep the sites of this département (repeat).")] = [],
        profession: Annotated[list[str], typer.Option(
            help="Keep this profession code, e.g. 10 (repeat).")] = [],
        full: Annotated[Optional[bool], typer.Option(
            "--full/--no-full",
            help="Deactivate the imported professionals absent from the file (default: when unfiltered).",
        )] = None,
        report: Annotated[Optional[Path], typer.Option(
            help="Write every rejected line (number, reason) to this file.")] = None,
        show: Annotated[int, typer.Option(help="Rejected lines to print.")] = 20,
        chunk_size: Annotated[int, typer.Option(help="Professionals per transaction.")] = 5000) -> None:
    """Import an RPPS extract into the registry (idempotent; events to the outbox)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from cpts_registry.rpps.importer import import_into_registry, write_rejected_report

    columns = (TextColumn("{task.description:<9}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=Console(stderr=True)) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int, rows: int) -> None:
            if phase not in tasks:
                label = "scanning" if phase == "scan" else "importing"
                tasks[phase] = bar.add_task(label, total=total, info="")
            task = tasks[phase]
            info = ""
            if phase == "import":
                elapsed = bar.tasks[task].elapsed or 0.0
                info = f"{rows:>10,} rows {rows / elapsed if elapsed > 0.05 else 0:>8,.0f} rows/s"
            bar.update(task, completed=done, info=info)
            if phase == "scan" and done >= total and "import" not in tasks:
                tasks["import"] = bar.add_task("importing", total=total, info="")  # its clock starts now

        result = asyncio.run(import_into_registry(file, departements=departement, professions=profession,
                                                  full=full, chunk_size=chunk_size, progress=progress))
    s = result.summary
    kind = "full" if s.full else "partial"
    typer.echo(f"{s.rows_read:,} rows read in {s.seconds:.1f} s ({s.rows_per_second:,.0f} rows/s, "
               f"{s.encoding}, {kind} import)")
    typer.echo(f"professionals: {s.created:,} created, {s.updated:,} updated, {s.unchanged:,} unchanged, "
               f"{s.deactivated:,} deactivated; {s.events:,} events")
    typer.echo(f"rows skipped: {s.rejected:,} rejected, {s.skipped_out_of_territory:,} out of territory, "
               f"{s.skipped_other_profession:,} other profession, {s.skipped_without_site:,} without a site")
    shown = max(show, 0)
    for item in result.rejected[:shown]:
        typer.echo(f"  line {item.line_no}: {item.reason}")
    if len(result.rejected) > shown:
        more = len(result.rejected) - shown
        typer.echo(f"  ... {more:,} more" + ("" if report else " (see --report)"))
    if report:
        write_rejected_report(result.rejected, report)
        typer.echo(f"rejected lines: {report}")


@registry_app.command("generate-demo")
def registry_generate_demo(
        out: Annotated[Path, typer.Argument(dir_okay=False, help="File to write.")],
        rows: Annotated[int, typer.Option(min=1, help="Data lines.")] = 2000,
        departement: Annotated[list[str], typer.Option(
            help="Département of the territory (repeat; 'all': France).")] = ["69"],
        seed: Annotated[int, typer.Option(help="Same seed, same file.")] = 1,
        encoding: Annotated[str, typer.Option(
            help="utf-8 (current publications) or latin-1 (older ones).")] = "utf-8") -> None:
    """Write a demo RPPS extract in the national format, for real communes of the territory."""
    from cpts_registry.rpps.demo import generate_demo

    departements = [] if any(d.lower() == "all" for d in departement) else departement
    stats = generate_demo(out, rows=rows, departements=departements, seed=seed, encoding=encoding)
    typer.echo(f"{stats.path}: {stats.rows:,} rows, {stats.professionals:,} professionals, "
               f"{stats.sites:,} sites")

app.add_typer(matching_app, name="matching")

if __name__ == "__main__":
    app()
