"""Benchmark of the RPPS import (`cpts registry import-rpps`): rows per second and peak memory.

Generates a demo extract in the national format (500,000 rows by default, all of France, with the demo
generator of the registry), then for each database (SQLite file, and PostgreSQL when it answers): a fresh,
migrated database, a first import (every professional created, two events each in the outbox), then a second
import of the same file (idempotent: nothing written, no event). Each import runs in its own process that does
nothing else, so that its peak RSS (VmHWM) is the import's. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "rpps_import.json"
TARGET_ROWS_PER_SECOND = 20_000
TARGET_PEAK_MB = 300
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ------------------------------------------------------------------------------------------------------------
# The import process (`--worker`): imports, prints its figures as JSON, nothing else.

def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(url: str, path: str, chunk_size: int) -> None:
    from cpts_platform.db import Database
    from cpts_registry.repository import tables
    from cpts_registry.rpps.importer import import_rpps

    async def go() -> dict:
        database = Database(url, tables)
        try:
            result = await import_rpps(database, path, chunk_size=chunk_size)
        finally:
            await database.dispose()
        s = result.summary
        return {"rows": s.rows_read, "seconds": round(s.seconds, 2),
                "rows_per_second": round(s.rows_per_second), "created": s.created, "updated": s.updated,
                "unchanged": s.unchanged, "deactivated": s.deactivated, "rejected": s.rejected,
                "skipped_out_of_territory": s.skipped_out_of_territory, "events": s.events}

    figures = asyncio.run(go())
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
    figures["cpu_seconds"] = round(time.process_time(), 2)
    print(json.dumps(figures))


# ------------------------------------------------------------------------------------------------------------
# The driver

def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _postgres_cpu() -> dict[int, float]:
    found = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    found[int(entry.name)] = _proc_cpu(int(entry.name))
            except OSError:
                pass
    return found


class PostgresCpu:
    """CPU seconds of the PostgreSQL processes while a measurement runs. The import's backend exits with its
    connection, so its CPU is sampled while it lives (every 0.2 s) rather than read at the end."""

    def __init__(self) -> None:
        import threading

        self.before = _postgres_cpu()
        self.seen: dict[int, float] = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.seen.update(_postgres_cpu())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.seen.update(_postgres_cpu())
        return sum(cpu - self.before.get(pid, 0.0) for pid, cpu in self.seen.items())


def run_worker(url: str, path: Path, chunk_size: int, postgres: bool) -> dict:
    meter = PostgresCpu() if postgres else None
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", "--url", url, "--file", str(path),
         "--chunk-size", str(chunk_size)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )
    wall = time.perf_counter() - started
    postgres_cpu = meter.stop() if meter else None
    if completed.returncode != 0:
        sys.exit(f"the import process failed:\n{completed.stderr[-4000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    figures["process_wall_seconds"] = round(wall, 2)
    if postgres_cpu is not None:
        figures["postgresql_cpu_seconds"] = round(postgres_cpu, 2)
    return figures


async def prepare(url: str) -> None:
    import cpts_registry
    from cpts_platform.db import Database
    from cpts_platform.migrations import upgrade
    from cpts_registry.repository import metadata, tables

    database = Database(url, tables)
    try:
        await upgrade(database, Path(cpts_registry.__file__).parent / "migrations", metadata)
    finally:
        await database.dispose()


async def count_outbox(url: str) -> tuple[int, int]:
    """Outbox rows and professionals in the database."""
    import sqlalchemy as sa
    from cpts_platform.db import Database
    from cpts_registry.repository import ProfessionalRow, tables

    database = Database(url, tables)
    try:
        async with database.engine.connect() as connection:
            events = (await connection.execute(
                sa.select(sa.func.count()).select_from(tables.outbox))).scalar_one()
            professionals = (await connection.execute(
                sa.select(sa.func.count()).select_from(ProfessionalRow.__table__))).scalar_one()
    finally:
        await database.dispose()
    return events, professionals


def verdict(run: dict, second: bool) -> str:
    ok = run["rows_per_second"] >= TARGET_ROWS_PER_SECOND and run["peak_rss_mb"] < TARGET_PEAK_MB
    if second:
        ok = ok and run["created"] == run["updated"] == run["deactivated"] == run["events"] == 0
    return "PASS" if ok else "FAIL"


def measure(kind: str, path: Path, workdir: Path, chunk_size: int) -> dict:
    created_db = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'registry.db'}"
    else:
        from cpts_platform.testing import create_postgres_database

        created_db, url = create_postgres_database()
    try:
        asyncio.run(prepare(url))
        first = run_worker(url, path, chunk_size, kind == "postgresql")
        events_after_first, professionals = asyncio.run(count_outbox(url))
        second = run_worker(url, path, chunk_size, kind == "postgresql")
        events_after_second, _ = asyncio.run(count_outbox(url))
        first["outbox_rows_written"] = events_after_first
        second["outbox_rows_written"] = events_after_second - events_after_first
        first["verdict"] = verdict(first, second=False)
        second["verdict"] = verdict(second, second=True)
        size = (workdir / "registry.db").stat().st_size if kind == "sqlite" else None
        return {"first_import": first, "second_import": second, "professionals": professionals,
                "database_mb": round(size / 2**20) if size else None}
    finally:
        if created_db:
            from cpts_platform.testing import drop_postgres_database

            drop_postgres_database(created_db)


def postgres_available() -> bool:
    try:
        from cpts_platform.testing import postgres_reachable

        return postgres_reachable()
    except Exception:
        return False


def code_version() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10,
                                  check=False).stdout
        except Exception:
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "libs", "services").splitlines()
             if "/src/" in line]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": dirty}


def print_table(result: dict) -> None:
    print(f"\nRPPS import - {result['rows']:,} rows, {result['cpus']} CPUs, targets >= "
          f"{TARGET_ROWS_PER_SECOND:,} rows/s and peak RSS < {TARGET_PEAK_MB} MB")
    header = (f"{'database':<11} {'import':<7} {'rows/s':>8} {'seconds':>8} {'created':>8} {'updated':>8} "
              f"{'unchanged':>9} {'events':>8} {'peak MB':>8}  verdict")
    print(header)
    print("-" * len(header))
    for kind, m in result["databases"].items():
        for label, key in (("first", "first_import"), ("again", "second_import")):
            r = m[key]
            print(f"{kind:<11} {label:<7} {r['rows_per_second']:>8,} {r['seconds']:>8.1f} {r['created']:>8,} "
                  f"{r['updated']:>8,} {r['unchanged']:>9,} {r['events']:>8,} {r['peak_rss_mb']:>8.0f}  "
                  f"{r['verdict']}")
    print()
    for kind, m in result["databases"].items():
        first = m["first_import"]
        if "postgresql_cpu_seconds" in first:
            extra = f", PostgreSQL server CPU {first['postgresql_cpu_seconds']} s"
        else:
            extra = f", database file {m['database_mb']} MB"
        print(f"  {kind}: first import: import process CPU {first['cpu_seconds']} s for {first['seconds']} s"
              f"{extra}; outbox rows written {first['outbox_rows_written']:,} then "
              f"{m['second_import']['outbox_rows_written']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--file", type=Path, help="Import this extract instead of generating one.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.url, str(args.file), args.chunk_size)
        return

    if args.database == "sqlite":
        kinds = ["sqlite"]
    elif args.database in ("postgresql", "both"):
        if not postgres_available():
            sys.exit("PostgreSQL is not reachable at 127.0.0.1:5432 (CPTS_TEST_POSTGRES_DSN overrides it)")
        kinds = ["postgresql"] if args.database == "postgresql" else ["sqlite", "postgresql"]
    else:
        kinds = ["sqlite", "postgresql"] if postgres_available() else ["sqlite"]

    load_before = os.getloadavg()
    if load_before[0] > (os.cpu_count() or 1) * 0.5:
        print(f"warning: load average {load_before[0]:.1f} before starting: figures will be low and noisy",
              file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="rpps-bench-") as tmp:
        workdir = Path(tmp)
        generation = None
        if args.file:
            path = args.file
        else:
            from cpts_registry.rpps.demo import generate_demo

            started = time.perf_counter()
            stats = generate_demo(workdir / "PS_LibreAcces_Personne_activite_demo.txt", rows=args.rows,
                                  departements=[], seed=args.seed)
            path = stats.path
            generation = {"seconds": round(time.perf_counter() - started, 1),
                          "professionals": stats.professionals, "sites": stats.sites}
            size_mb = path.stat().st_size / 2**20
            print(f"generated {stats.rows:,} rows ({stats.professionals:,} professionals, "
                  f"{stats.sites:,} sites, {size_mb:.0f} MB) in {generation['seconds']} s", file=sys.stderr)
        rows = sum(1 for _ in path.open("rb")) - 1
        file_mb = round(path.stat().st_size / 2**20)
        databases = {}
        for kind in kinds:
            kind_dir = workdir / kind
            kind_dir.mkdir()
            print(f"{kind}: importing twice...", file=sys.stderr)
            databases[kind] = measure(kind, path, kind_dir, args.chunk_size)

    result = {
        "rows": rows, "file_mb": file_mb,
        "generation": generation, "chunk_size": args.chunk_size, "cpus": os.cpu_count(),
        "targets": {"rows_per_second": TARGET_ROWS_PER_SECOND, "peak_rss_mb": TARGET_PEAK_MB},
        "databases": databases, **code_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print_table(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    failed = [kind for kind, m in databases.items() for r in m.values()
              if isinstance(r, dict) and r.get("verdict") == "FAIL"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
