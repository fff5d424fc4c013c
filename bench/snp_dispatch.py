"""Benchmark of snp-dispatch on a Rhône-sized dataset, over real HTTP: ranked search, FHIR Slot search,
concurrent booking, publication -> visible in search and on Kafka.

    .venv/bin/python bench/snp_dispatch.py [--database sqlite|postgresql|both] [--quick]

Dataset (per database, seeded): 2 000 GPs (profession 10) at the points of the Rhône (69) communes drawn in
proportion to population (site = commune point + ~700 m of jitter), ~60 % SAS participants, 100 000 FREE slots
from now to day+2 23:59 Paris (~85 %) and up to day+4 (the rest), visibility mix SNP/PRO/PUBLIC/CPTS. The slots
are bulk-inserted (the bench is about the search); the real publish path (`handlers.publish_slots`) is timed
apart on 5 000 slots in batches of 500. Care requests are created through `POST /care-requests` (regulator of
the 69).

The service runs as `cpts serve` runs it (uvicorn with uvloop and httptools, its lifespan: outbox relay, consumers) in a second
process, with the local broker (Tansu) running; this process drives it with httpx over TCP, so that HTTP
parsing, JWT verification, the database and the ranking all count. Measures:

1. search latency one request at a time (the unloaded latency, and the CPU a search costs the service and
   PostgreSQL), then at a steady 20 searches/s for 30 s (open loop: requests leave at fixed instants, latency is
   counted from that instant); then the highest offered rate (20, 40, 60 ...; 10, 5, 2, 1 when 20 fails; 10 s
   per step) whose p95 stays under 250 ms, and the same on `GET /healthz` of the same app (doubling from 320/s,
   then a bisection); ratio search / trivial. The ladders use a lean HTTP/1.1 client (`RawHttp`): httpx costs
   ~1.3 ms of CPU a request and saturates before /healthz does on 2 cores. The CPU of one authenticated
   primary-key read (`GET /effecteurs/{idnps}`) is reported beside /healthz's.
2. FHIR `GET /fhir/Slot` for 25 practitioners over the window (skipped when the build does not serve it).
3. 200 concurrent `POST /appointments` on the same 10 slots (20 per slot, one care request each): exactly
   10 x 201 and 190 x 409, one live appointment per slot in the table.
4. `POST /slots` -> (a) the slot appears in the search of a nearby care request, (b) its
   `fr.cpts.snp.slot.published.v1` event is read from `<prefix>snp-dispatch` by an aiokafka consumer.

With `--py-spy PATH` (or py-spy on PATH), the service is sampled while searches run one at a time: self time
by library, event loop thread vs aiosqlite worker threads. Then a profile of the search in this process (the
same app in-process on the same database): time in the database driver per statement, the audit write,
cProfile's top functions (self time only is meaningful for coroutines), the plan of the aggregate; the same
for the FHIR Slot search. Results: a table on stdout and
`bench/results/snp_dispatch.json` (git-ignored). Exit status 1 when a target is missed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import math
import multiprocessing as mp
import os
import platform
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import httpx
import sqlalchemy as sa
from cpts_events import topics
from cpts_geo import Commune, communes
from cpts_platform.auth import LocalIssuer
from cpts_platform.logging import configure_logging
from cpts_snp_dispatch.app import service
from cpts_snp_dispatch.domain.slots import PARIS
from cpts_snp_dispatch.repository import CptsView, ProfessionalView, ScheduleRow, SlotRow
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "snp_dispatch.json"
DEPARTEMENT = "69"
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
SLOT_PUBLISHED = "fr.cpts.snp.slot.published.v1"

TARGET_SEARCH_P95_MS = 50.0
SATURATION_P95_MS = 250.0
TARGET_RATE_RATIO = 0.3
TARGET_FHIR_P95_MS = 100.0
TARGET_VISIBLE_P95_MS = 500.0
MAX_ERROR_SHARE = 0.01  # a load step with more failed requests than this does not count as sustained

# Mixes (shares sum to 1).
VISIBILITY_MIX = [(("SNP", "PRO"), 0.45), (("SNP", "PRO", "PUBLIC"), 0.20), (("PUBLIC",), 0.10), (("PRO",), 0.05),
                  (("SNP",), 0.10), (("CPTS",), 0.05), (("CPTS", "PRO"), 0.05)]
SERVICE_TYPE_MIX = [("AMB", 0.85), ("VR", 0.10), ("HH", 0.05)]
URGENCY_MIX = [("48h", 0.70), ("24h", 0.15), ("same_day", 0.15)]
REASONS = ["fever", "pain", "respiratory", "digestive", "skin", "trauma_minor", "urinary", "ent", "child", "other"]
SAS_PARTICIPANT_SHARE = 0.60
ADDRESS_SHARE = 0.30  # care requests located by a geocoded address; the others by their commune only
WINDOW_SHARE = 0.85  # slots inside the SAS window (today .. day+2); the rest on day+3 and day+4
CPTS_COUNT = 8


def quiet_logging() -> None:
    # structlog prints to stdout by default: the bench's own process would print every library log line.
    configure_logging(service="bench", level="WARNING")
    # sqlmodel's advice on `session.execute` (the service calls it too, in the in-process profile).
    warnings.filterwarnings("ignore", message=r"(?s).*You probably want to use", category=DeprecationWarning)


def pick(rng: random.Random, mix):
    values, weights = zip(*mix)
    return rng.choices(values, weights)[0]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), **{f"p{q}": round(percentile(values, q), 1) if values else None for q in (50, 95, 99)},
            "max": round(max(values), 1) if values else None}


# ------------------------------------------------------------------------------------------------------------
# Dataset

@dataclass
class Professional:
    idnps: str
    commune: str
    sites: list[dict]
    participant: bool
    cpts_ids: list[str]
    fresh: bool = False  # no slot in the dataset: used to time a publication until it shows in the search
    slot_count: int = 0


@dataclass
class Dataset:
    now: datetime
    window_end: datetime
    professionals: list[Professional]
    professional_rows: list[dict]
    schedule_rows: list[dict]
    slot_rows: list[dict]
    cpts_rows: list[dict]
    places: list[Commune]


def commune_points() -> list[Commune]:
    """The communes of the département with a point; Lyon is counted through its arrondissements only."""
    items = [c for c in communes() if c.departement == DEPARTEMENT and c.lat is not None and c.population > 0]
    split = {c.name.split(" ")[0] for c in items if c.kind == "ARM"}
    return [c for c in items if not (c.kind == "COM" and c.name in split)]


def sas_window_end(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(PARIS).date() + timedelta(days=2), clock(23, 59, 59), PARIS)


def generate(seed: int, professional_count: int, slot_count: int, fresh_count: int, now: datetime) -> Dataset:
    rng = random.Random(seed)
    places = commune_points()
    weights = [c.population for c in places]
    by_insee = sorted(c.insee for c in places)
    cpts_ids = [f"6900{i + 1:05d}" for i in range(CPTS_COUNT)]
    cpts_of = {insee: cpts_ids[i * CPTS_COUNT // len(by_insee)] for i, insee in enumerate(by_insee)}
    cpts_rows = [{"cpts_id": cid, "name": f"CPTS bench {i + 1}",
                  "communes": [insee for insee in by_insee if cpts_of[insee] == cid], "departements": [DEPARTEMENT],
                  "updated_at": now} for i, cid in enumerate(cpts_ids)]

    professionals: list[Professional] = []
    rows: list[dict] = []
    homes = rng.choices(places, weights, k=professional_count)
    for i, home in enumerate(homes):
        fresh = i >= professional_count - fresh_count
        sites = [{"site_id": "S1", "commune_insee": home.insee, "lat": round(home.lat + rng.gauss(0, 0.006), 6),
                  "lon": round(home.lon + rng.gauss(0, 0.008), 6)}]
        if not fresh and rng.random() < 0.10:
            other = rng.choices(places, weights)[0]
            sites.append({"site_id": "S2", "commune_insee": other.insee,
                          "lat": round(other.lat + rng.gauss(0, 0.006), 6),
                          "lon": round(other.lon + rng.gauss(0, 0.008), 6)})
        participant = fresh or rng.random() < SAS_PARTICIPANT_SHARE
        in_cpts = [cpts_of[home.insee]] if rng.random() < 0.7 else []
        en_sus = participant and rng.random() < 0.25
        p = Professional(idnps=f"8{10690000000 + i:011d}", commune=home.insee, sites=sites, participant=participant,
                         cpts_ids=in_cpts, fresh=fresh)
        professionals.append(p)
        rows.append({"idnps": p.idnps, "civility": "Dr", "family_name": f"Medecin{i:05d}", "given_name": "Bench",
                     "profession_code": "10", "specialty_code": "SM54", "commune_insee": home.insee,
                     "cpts_ids": in_cpts, "active": True, "sites": sites, "sas_participant": participant,
                     "sas_mode": "plages" if participant else None, "accepts_en_sus": en_sus,
                     "en_sus_weekly_cap": rng.choice([None, 5, 10]) if en_sus else None, "updated_at": now})

    # Slots per professional: participants publish more; every free slot sits on a 15-minute grid, 08:00-20:00
    # Paris, from 20 minutes from now to day+4 (no two slots of one professional overlap).
    publishing = [p for p in professionals if not p.fresh]
    share = [(1.4 if p.participant else 0.4) * rng.uniform(0.5, 1.5) for p in publishing]
    total = sum(share)
    counts = [int(slot_count * s / total) for s in share]
    for j in rng.sample(range(len(publishing)), slot_count - sum(counts)):
        counts[j] += 1
    today = now.astimezone(PARIS).date()
    earliest = now + timedelta(minutes=20)
    grid_in, grid_out = [], []
    for day in range(5):
        for quarter in range(48):
            start = datetime.combine(today + timedelta(days=day), clock(8), PARIS) + timedelta(minutes=15 * quarter)
            if start >= earliest:
                (grid_in if day <= 2 else grid_out).append(start.astimezone(UTC))
    schedules, slots = [], []
    vis_values, vis_weights = zip(*VISIBILITY_MIX)
    type_values, type_weights = zip(*SERVICE_TYPE_MIX)
    for p, k in zip(publishing, counts):
        k_in = min(len(grid_in), round(k * WINDOW_SHARE))
        k_out = min(len(grid_out), k - k_in)
        starts = rng.sample(grid_in, k_in) + rng.sample(grid_out, k_out)
        p.slot_count = len(starts)
        schedule_of = {}
        for site in p.sites:
            schedule_of[site["site_id"]] = str(uuid.uuid4())
            schedules.append({"schedule_id": schedule_of[site["site_id"]], "idnps": p.idnps,
                              "site_id": site["site_id"], "created_by": "bench-seed", "created_at": now})
        visibilities = rng.choices(vis_values, vis_weights, k=len(starts))
        service_types = rng.choices(type_values, type_weights, k=len(starts))
        for start, visibility, service_type in zip(starts, visibilities, service_types):
            site = p.sites[0] if len(p.sites) == 1 or rng.random() < 0.7 else p.sites[1]
            slots.append({
                "slot_id": str(uuid.uuid4()), "idnps": p.idnps, "site_id": site["site_id"],
                "schedule_id": schedule_of[site["site_id"]], "commune_insee": site["commune_insee"],
                "departement": DEPARTEMENT, "lat": site["lat"], "lon": site["lon"], "start": start,
                "end": start + timedelta(minutes=15), "service_type": service_type,
                "vis_public": "PUBLIC" in visibility, "vis_pro": "PRO" in visibility, "vis_snp": "SNP" in visibility,
                "vis_cpts": "CPTS" in visibility, "appointment_type": "WALKIN" if rng.random() < 0.03 else "ROUTINE",
                "status": "free", "held_until": None, "hold_id": None, "hold_request_id": None, "comment": None,
                "published_by": "bench-seed", "published_at": now, "updated_at": now})
    return Dataset(now=now, window_end=sas_window_end(now), professionals=professionals, professional_rows=rows,
                   schedule_rows=schedules, slot_rows=slots, cpts_rows=cpts_rows, places=places)


def derived_slot_columns() -> dict:
    """Columns the service derives when it publishes a slot, and the bulk seed must fill the same way (the
    map cell of the site, where the schema has one)."""
    out = {}
    if "geo_cell" in SlotRow.__table__.c:
        from cpts_snp_dispatch.domain.cells import cell_of

        out["geo_cell"] = lambda row: cell_of(row["lat"], row["lon"]) if row["lat"] is not None else None
    return out


async def seed(url: str, data: Dataset) -> dict:
    """Migrate, then bulk-insert the read model, schedules and slots (one multi-row INSERT per 2 000 rows)."""
    from cpts_platform.db import Database
    from cpts_platform.migrations import upgrade
    from cpts_snp_dispatch.repository import tables

    database = Database(url, tables)
    started = time.perf_counter()
    derived = derived_slot_columns()
    if derived:
        for row in data.slot_rows:
            for name, compute in derived.items():
                row[name] = compute(row)
    try:
        await upgrade(database, service.migrations, service.metadata)
        migrated = time.perf_counter()
        async with database.transaction() as session:
            await session.execute(sa.insert(CptsView.__table__), data.cpts_rows)
            await session.execute(sa.insert(ProfessionalView.__table__), data.professional_rows)
            await session.execute(sa.insert(ScheduleRow.__table__), data.schedule_rows)
        for i in range(0, len(data.slot_rows), 10_000):
            async with database.transaction() as session:
                chunk = data.slot_rows[i:i + 10_000]
                for j in range(0, len(chunk), 2_000):
                    await session.execute(sa.insert(SlotRow.__table__), chunk[j:j + 2_000])
        inserted = time.perf_counter()
        if database.dialect == "postgresql":
            # What autovacuum does within a minute of such an insert (migration 0007 sets its thresholds on the
            # slot table): statistics for the planner, and the visibility map that keeps the search's scan
            # index-only.
            async with database.engine.connect() as connection:
                await connection.execute(sa.text("COMMIT"))
                await connection.execute(sa.text("VACUUM ANALYZE"))
    finally:
        await database.dispose()
    return {"migrate_s": round(migrated - started, 2), "insert_s": round(inserted - migrated, 2),
            "slots_per_second": round(len(data.slot_rows) / (inserted - migrated)),
            "analyze_s": round(time.perf_counter() - inserted, 2)}


async def measure_publish(url: str, data: Dataset, total: int, batch: int) -> dict:
    """The real publish path (`handlers.publish_slots`: checks, overlap query, schedule, rows, outbox events),
    `total` slots in transactions of `batch` slots (10 professionals x batch/10 slots each), on day+5 onwards."""
    from cpts_platform.db import Database
    from cpts_snp_dispatch import handlers
    from cpts_snp_dispatch.domain.slots import SlotSpec
    from cpts_snp_dispatch.repository import tables

    per_professional = max(1, batch // 10)
    rng = random.Random(7)
    candidates = [p for p in data.professionals if not p.fresh]
    chosen = rng.sample(candidates, min(len(candidates), math.ceil(total / per_professional)))
    first_day = data.now.astimezone(PARIS).date() + timedelta(days=5)
    specs_all = []
    for p in chosen:
        for k in range(per_professional):
            day, quarter = divmod(k, 40)
            start = datetime.combine(first_day + timedelta(days=day), clock(8), PARIS) + timedelta(minutes=15 * quarter)
            specs_all.append((p, start))
    specs_all = specs_all[:total]
    database = Database(url, tables)
    durations = []
    try:
        for i in range(0, len(specs_all), batch):
            specs = [SlotSpec(idnps=p.idnps, site_id=p.sites[0]["site_id"], start=start,
                              end=start + timedelta(minutes=15), field=f"slots[{j}]")
                     for j, (p, start) in enumerate(specs_all[i:i + batch])]
            started = time.perf_counter()
            await handlers.publish_slots(database=database, by="bench-publisher", specs=specs)
            durations.append(time.perf_counter() - started)
    finally:
        await database.dispose()
    seconds = sum(durations)
    return {"slots": len(specs_all), "batch": batch, "transactions": len(durations), "seconds": round(seconds, 2),
            "slots_per_second": round(len(specs_all) / seconds), "batch_ms": summary([d * 1000 for d in durations])}


# ------------------------------------------------------------------------------------------------------------
# CPU accounting (Linux /proc)

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_cpu() -> dict[int, float]:
    out = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    out[int(entry.name)] = proc_cpu(int(entry.name))
            except OSError:
                pass
    return out


class CpuMeter:
    """CPU seconds used by this process (the load generator), the service, the broker and PostgreSQL."""

    def __init__(self, server_pid: int, broker_pid: int | None, postgres: bool) -> None:
        self.server_pid, self.broker_pid, self.postgres = server_pid, broker_pid, postgres

    def snapshot(self) -> dict:
        return {"wall": time.monotonic(), "client": time.process_time(), "server": proc_cpu(self.server_pid),
                "broker": proc_cpu(self.broker_pid) if self.broker_pid else 0.0,
                "postgresql": postgres_cpu() if self.postgres else {}}

    def since(self, before: dict) -> dict:
        after = self.snapshot()
        wall = after["wall"] - before["wall"]
        used = {k: after[k] - before[k] for k in ("client", "server", "broker")}
        if self.postgres:
            used["postgresql"] = sum(v - before["postgresql"].get(pid, 0.0) for pid, v in after["postgresql"].items())
        return {"wall_s": round(wall, 2), **{f"{k}_cpu_s": round(v, 2) for k, v in used.items()},
                "cores_busy": round(sum(used.values()) / wall, 2) if wall > 0 else None,
                "client_core_share": round(used["client"] / wall, 2) if wall > 0 else None,
                "server_core_share": round(used["server"] / wall, 2) if wall > 0 else None}


# ------------------------------------------------------------------------------------------------------------
# The service, in a second process, as `cpts serve` runs it

def server_main(params: dict, conn) -> None:
    try:
        # The service's JSON log lines (one per request at INFO) go to a file, as a deployment ships stdout.
        # They stay open for the life of the process (it ends with the server).
        sys.stdout = open(params["log_path"], "a", buffering=1)  # noqa: SIM115
        sys.stderr = open(params["err_path"], "a", buffering=1)  # noqa: SIM115  (tracebacks, library warnings)
        import uvicorn
        from cpts_platform.service import create_app
        from cpts_snp_dispatch.app import service as definition

        settings = definition.settings_class(
            profile="local", var_dir=Path(params["var_dir"]), database_url=params["url"],
            kafka_bootstrap_servers=params["bootstrap"], kafka_topic_prefix=params["prefix"],
            log_level=params["log_level"], http_port=params["port"],
            rate_limit_enabled=False)  # the bench is the load a rate limit exists to refuse
        app = create_app(definition, settings, freeze_heap=True)
        config = uvicorn.Config(app, host="127.0.0.1", port=params["port"], log_level="warning", access_log=False,
                                lifespan="on", timeout_keep_alive=75)  # as `cpts serve`
        conn.send(("started", os.getpid()))
        uvicorn.Server(config).run()
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class ServiceProcess:
    def __init__(self, params: dict) -> None:
        self.params = params
        self.process = None
        self.pid: int | None = None

    async def start(self, client: httpx.AsyncClient, timeout: float = 90.0) -> float:
        context = mp.get_context("spawn")
        parent, child = context.Pipe()
        self.process = context.Process(target=server_main, args=(self.params, child), name="snp-dispatch-server")
        started = time.monotonic()
        self.process.start()
        child.close()
        self.pid = self.process.pid
        deadline = started + timeout
        last = None
        while time.monotonic() < deadline:
            if parent.poll():
                try:
                    message = parent.recv()
                except EOFError:
                    message = ("error", "the service process exited")
                if message[0] == "error":
                    raise RuntimeError(f"the service failed to start:\n{message[1]}")
            if not self.process.is_alive():
                raise RuntimeError(f"the service process exited ({self.process.exitcode}); see {self.params['log_path']}")
            try:
                response = await client.get("/readyz", timeout=2.0)
                last = response.text
                if response.status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError as exc:
                last = repr(exc)
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the service was not ready within {timeout:.0f} s: {last}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM: uvicorn shuts down gracefully (lifespan: relay, consumers, pool)
            self.process.join(timeout=20)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.process = None


# ------------------------------------------------------------------------------------------------------------
# Load generation

class RawResponse:
    __slots__ = ("content", "status_code")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code, self.content = status_code, content


class RawHttp:
    """A lean HTTP/1.1 keep-alive client for the rate ladders. httpx spends about 1.3 ms of CPU per request
    here, so on 2 cores it saturates before a trivial endpoint does (measured: httpx at 0.92 core while uvicorn
    used 0.17); this one writes the request bytes and reads status, headers and body (Content-Length or
    chunked) on a fixed set of connections, for a few tens of microseconds."""

    def __init__(self, host: str, port: int, connections: int = 64) -> None:
        self.host, self.port, self.size = host, port, connections
        self.free: asyncio.Queue = asyncio.Queue()

    async def start(self) -> RawHttp:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))
        return self

    async def close(self) -> None:
        while not self.free.empty():
            _, writer = self.free.get_nowait()
            writer.close()

    async def get(self, path: str, headers: dict | None = None, timeout: float = 10.0) -> RawResponse:
        connection = await self.free.get()
        for attempt in (1, 2):
            try:
                response = await asyncio.wait_for(self._exchange(connection, path, headers or {}), timeout)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                # uvicorn closes a keep-alive connection idle for 5 s: retry once on a new one.
                connection[1].close()
                connection = await asyncio.open_connection(self.host, self.port)
                if attempt == 2 or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                    self.free.put_nowait(connection)
                    raise
                continue
            except BaseException:
                connection[1].close()  # state unknown (timeout, cancel): replace the connection
                self.free.put_nowait(await asyncio.open_connection(self.host, self.port))
                raise
            self.free.put_nowait(connection)
            return response
        raise AssertionError("unreachable")

    async def _exchange(self, connection, path: str, headers: dict) -> RawResponse:
        reader, writer = connection
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head[9:12])
        at = head.find(b"content-length:")
        if at >= 0:
            body = await reader.readexactly(int(head[at + 15:head.find(b"\r\n", at)]))
        elif b"transfer-encoding: chunked" in head:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            body = b""
        return RawResponse(status, body)

async def open_loop(client: httpx.AsyncClient, send, rate: float, seconds: float, meter: CpuMeter, *,
                    expect: int = 200, max_backlog_s: float = 2.0) -> dict:
    """Requests leave at t0 + i/rate whatever the answers; latency runs from that instant (queueing included).
    The step is abandoned when more than `max_backlog_s` seconds of requests are in flight."""
    loop = asyncio.get_running_loop()
    n = max(1, round(rate * seconds))
    latencies: list[float] = []
    statuses: Counter = Counter()
    state = {"inflight": 0, "last": 0.0}
    max_inflight = max(10, int(rate * max_backlog_s))

    async def one(i: int, scheduled: float) -> None:
        state["inflight"] += 1
        try:
            response = await send(client, i)
            statuses[response.status_code] += 1
        except Exception as exc:  # timeouts, refused connections
            statuses[type(exc).__name__] += 1
        finally:
            state["inflight"] -= 1
            done = loop.time()
            state["last"] = max(state["last"], done)
            latencies.append((done - scheduled) * 1000)

    before = meter.snapshot()
    t0 = loop.time() + 0.01
    tasks = []
    i = 0
    aborted = False
    while i < n:
        now = loop.time()
        while i < n and t0 + i / rate <= now:
            tasks.append(asyncio.create_task(one(i, t0 + i / rate)))
            i += 1
        if state["inflight"] > max_inflight:
            aborted = True
            break
        if i < n:
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
    await asyncio.gather(*tasks)
    cpu = meter.since(before)
    ok = statuses.get(expect, 0)
    failed = n - ok
    elapsed = max(state["last"] - t0, 1e-9)
    return {"offered_per_second": rate, "planned": n, "sent": i, "ok": ok, "failed": failed, "aborted": aborted,
            "statuses": {str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))},
            "achieved_per_second": round(ok / elapsed, 1), "latency_ms": summary(latencies), "cpu": cpu,
            "server_cpu_ms_per_request": round(cpu["server_cpu_s"] * 1000 / max(ok, 1), 2)}


def sustained(step: dict) -> bool:
    p95 = step["latency_ms"]["p95"]
    return (not step["aborted"] and p95 is not None and p95 < SATURATION_P95_MS
            and step["failed"] <= MAX_ERROR_SHARE * step["planned"])


PROBE: dict = {}  # what `settle` sends: an authenticated read through the database pool, on the httpx client


async def settle(_client=None, timeout: float = 90.0) -> float:
    """Wait until the service answers an authenticated database read quickly again: an overloaded step leaves
    requests behind on the server (the client gave up on them, the server did not). Returns the seconds waited."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < timeout and quiet < 2:
        # Idle: the service process used under 5 % of a core for half a second, and answers a pooled read fast.
        cpu = proc_cpu(PROBE["pid"])
        await asyncio.sleep(0.5)
        idle = proc_cpu(PROBE["pid"]) - cpu < 0.025
        sent = time.monotonic()
        try:
            response = await PROBE["client"].get(PROBE["path"], headers=PROBE["headers"], timeout=timeout)
            fast = response.status_code == 200 and time.monotonic() - sent < 0.05
        except httpx.HTTPError:
            fast = False
        quiet = quiet + 1 if idle and fast else 0
    return round(time.monotonic() - started, 1)


def print_step(label: str, step: dict) -> None:
    lat = step["latency_ms"]
    print(f"    {label:<10} {step['offered_per_second']:>7.0f}/s  achieved {step['achieved_per_second']:>7.1f}/s  "
          f"p50 {lat['p50']:>8.1f}  p95 {lat['p95']:>8.1f}  p99 {lat['p99']:>8.1f} ms  failed {step['failed']:>4}"
          f"{'  ABORTED' if step['aborted'] else ''}  server {step['cpu']['server_core_share']:.2f} core"
          f"  client {step['cpu']['client_core_share']:.2f} core  ({'ok' if sustained(step) else 'saturated'})",
          flush=True)


async def search_ladder(client, send, meter, seconds: float, start: float, step: float, limit: float,
                        label: str) -> dict:
    """Offered rate up by `step` (x1.25 past 200/s) until p95 >= 250 ms, errors or a runaway backlog; when
    the first rate already fails, down (10, 5, 2, 1/s) until one holds."""
    steps = []
    rate = start
    best = None
    waits = []
    while rate <= limit:
        result = await open_loop(client, send, rate, seconds, meter)
        steps.append(result)
        print_step(label, result)
        if not sustained(result):
            break
        best = rate
        rate = rate + step if rate < 200 else round(rate * 1.25)
        await asyncio.sleep(0.5)
    if best is None:
        for rate in (r for r in (10, 5, 2, 1) if r < start):
            waits.append(await settle(client))
            result = await open_loop(client, send, rate, seconds, meter)
            steps.append(result)
            print_step(label, result)
            if sustained(result):
                best = rate
                break
    waits.append(await settle(client))
    return {"max_sustained_per_second": best, "steps": steps, "settle_s": waits}


async def doubling_ladder(client, send, meter, seconds: float, start: float, limit: float, label: str,
                          refinements: int = 1) -> dict:
    """Doubling from `start` until a step fails, then `refinements` bisections between the last pass and it."""
    steps = []
    best, worst = None, None
    rate = start
    while rate <= limit:
        result = await open_loop(client, send, rate, seconds, meter)
        steps.append(result)
        print_step(label, result)
        if not sustained(result):
            worst = rate
            break
        best = rate
        rate = min(rate * 2, limit) if rate < limit else rate * 2
        await asyncio.sleep(0.5)
    for _ in range(refinements if best is not None and worst is not None else 0):
        await asyncio.sleep(1.0)
        rate = round(math.sqrt(best * worst))
        if rate in (best, worst):
            break
        result = await open_loop(client, send, rate, seconds, meter)
        steps.append(result)
        print_step(label, result)
        if sustained(result):
            best = rate
        else:
            worst = rate
    await settle(client)
    return {"max_sustained_per_second": best, "first_failed_per_second": worst, "limit": limit, "steps": steps}


# ------------------------------------------------------------------------------------------------------------
# Care requests

PATIENT = {"family_name": "Bench", "given_name": "Patient", "sex": "F", "phone": "0612345678"}


def care_request_body(rng: random.Random, place: Commune, *, point: tuple[float, float] | None = None,
                      mt: str | None = None, urgency: str = "48h", tele: bool = False, home: bool = False) -> dict:
    location: dict = {"commune_insee": place.insee}
    if point is not None:
        location |= {"address": f"{rng.randint(1, 120)} rue de la République", "lat": point[0], "lon": point[1]}
    body = {"origin": "sas", "location": location, "reason_category": rng.choice(REASONS), "urgency": urgency,
            "teleconsultation_ok": tele, "needs_home_visit": home,
            "patient": {**PATIENT, "sex": rng.choice("FM"),
                        "birth_date": (date(1940, 1, 1) + timedelta(days=rng.randint(0, 29_000))).isoformat()}}
    if mt:
        body["mt_idnps"] = mt
    else:
        body |= {"mt_none": True, "consent_mt_referral": rng.random() < 0.5}
    return body


async def create_requests(client: httpx.AsyncClient, headers: dict, bodies: list[dict], concurrency: int = 4
                          ) -> tuple[list[str], list[float]]:
    ids: list[str | None] = [None] * len(bodies)
    latencies: list[float] = []
    queue = list(enumerate(bodies))

    async def worker() -> None:
        while queue:
            i, body = queue.pop()
            started = time.perf_counter()
            response = await client.post("/care-requests", json=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 201:
                raise RuntimeError(f"POST /care-requests answered {response.status_code}: {response.text[:500]}")
            ids[i] = response.json()["request_id"]

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids, latencies  # type: ignore[return-value]


def search_request_bodies(rng: random.Random, data: Dataset, count: int) -> list[dict]:
    weights = [c.population for c in data.places]
    with_slots = [p for p in data.professionals if p.slot_count]
    bodies = []
    for place in rng.choices(data.places, weights, k=count):
        point = None
        if rng.random() < ADDRESS_SHARE:
            point = (round(place.lat + rng.gauss(0, 0.006), 6), round(place.lon + rng.gauss(0, 0.008), 6))
        mt = rng.choice(with_slots).idnps if rng.random() < 0.2 else None
        bodies.append(care_request_body(rng, place, point=point, mt=mt, urgency=pick(rng, URGENCY_MIX),
                                        tele=rng.random() < 0.3, home=rng.random() < 0.05))
    return bodies


# ------------------------------------------------------------------------------------------------------------
# Measures 2, 3, 4

def fhir_params(ids: list[str], start: datetime, end: datetime) -> list[tuple[str, str]]:
    return [("_include", "Slot:schedule"), ("_include:iterate", "Schedule:actor"),
            ("start", "ge" + start.astimezone(PARIS).isoformat(timespec="seconds")),
            ("start", "le" + end.astimezone(PARIS).isoformat(timespec="seconds")),
            ("schedule.actor:Practitioner.identifier", ",".join(f"{IDNPS_SYSTEM}|{i}" for i in ids)),
            ("status", "free")]


async def measure_fhir(client, headers: dict, data: Dataset, meter: CpuMeter, rate: float, seconds: float) -> dict:
    paths = (await client.get("/openapi.json")).json().get("paths", {})
    if "/fhir/Slot" not in paths:
        return {"skipped": "GET /fhir/Slot is not served by this build (services/snp-dispatch/src/"
                           "cpts_snp_dispatch/api/fhir.py missing or not wired into the app)"}
    rng = random.Random(11)
    pool = [p.idnps for p in data.professionals if p.slot_count]
    batches = [rng.sample(pool, 25) for _ in range(64)]
    window_end = sas_window_end(datetime.now(UTC))

    async def send(c, i):
        return await c.get("/fhir/Slot", params=fhir_params(batches[i % len(batches)], datetime.now(UTC), window_end),
                           headers={**headers, "Accept": "application/fhir+json"})

    probe = await send(client, 0)
    if probe.status_code != 200:
        return {"skipped": f"GET /fhir/Slot answered {probe.status_code} to a regulator: {probe.text[:300]}"}
    bundle = probe.json()
    kinds = Counter(e.get("resource", {}).get("resourceType") for e in bundle.get("entry", []))
    for i in range(5):
        await send(client, i)
    step = await open_loop(client, send, rate, seconds, meter)
    return {"practitioners_per_request": 25, "probe_bundle": dict(kinds), "probe_bytes": len(probe.content), **step}


async def measure_booking(base_url: str, headers: dict, url: str, data: Dataset, request_ids: list[str],
                          slots_count: int = 10, per_slot: int = 20) -> dict:
    """`slots_count * per_slot` concurrent bookings, `per_slot` on each slot, each with its own care request."""
    rng = random.Random(5)
    soon = datetime.now(UTC) + timedelta(hours=2)
    by_professional: dict[str, dict] = {}
    for row in data.slot_rows:
        if (row["appointment_type"] == "ROUTINE" and row["start"] > soon and row["start"] < data.window_end
                and (row["vis_snp"] or row["vis_pro"] or row["vis_public"])):
            by_professional.setdefault(row["idnps"], row)
    slots = [row["slot_id"] for row in rng.sample(list(by_professional.values()), slots_count)]
    total = slots_count * per_slot
    assert len(request_ids) >= total
    limits = httpx.Limits(max_connections=total + 10, max_keepalive_connections=total + 10)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0) as client:
        await asyncio.gather(*(client.get("/healthz") for _ in range(total)))  # open the connections first
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def book(k: int):
            await gate.wait()
            started = loop.time()
            try:
                response = await client.post("/appointments", headers=headers,
                                             json={"slot_id": slots[k % slots_count], "request_id": request_ids[k]})
                return response.status_code, (loop.time() - started) * 1000, response.text[:200]
            except Exception as exc:
                return type(exc).__name__, (loop.time() - started) * 1000, repr(exc)[:200]

        tasks = [asyncio.create_task(book(k)) for k in range(total)]
        await asyncio.sleep(0.05)
        started = loop.time()
        gate.set()
        answers = await asyncio.gather(*tasks)
        wall = loop.time() - started
    statuses = Counter(str(a[0]) for a in answers)
    winners = Counter(slots[k % slots_count] for k, a in enumerate(answers) if a[0] == 201)
    others = sorted({a[2] for a in answers if a[0] not in (201, 409)})[:5]
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            live = dict((await connection.execute(sa.text(
                "SELECT slot_id, COUNT(*) FROM appointment WHERE status IN ('booked', 'fulfilled', 'noshow') "
                "AND slot_id IN :ids GROUP BY slot_id").bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": slots})).all())
            slot_status = Counter(r[0] for r in (await connection.execute(sa.text(
                "SELECT status FROM slot WHERE slot_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": slots})).all())
            booked_requests = (await connection.execute(sa.text(
                "SELECT COUNT(*) FROM care_request WHERE status = 'booked' AND request_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)), {"ids": request_ids[:total]})).scalar_one()
    finally:
        await engine.dispose()
    double = sum(max(0, n - 1) for n in live.values())
    ok = (statuses.get("201", 0) == slots_count and statuses.get("409", 0) == total - slots_count
          and all(live.get(s) == 1 for s in slots) and double == 0 and slot_status == Counter({"booked": slots_count})
          and booked_requests == slots_count and all(winners[s] == 1 for s in slots))
    return {"attempts": total, "slots": slots_count, "statuses": dict(statuses), "winners_per_slot": sorted(winners.values()),
            "live_appointments_per_slot": sorted(live.get(s, 0) for s in slots), "double_bookings": double,
            "slot_status": dict(slot_status), "requests_booked": booked_requests, "wall_s": round(wall, 3),
            "latency_ms": summary([a[1] for a in answers]), "other_answers": others, "pass": ok}


async def measure_visibility(client, issuer: LocalIssuer, regulator: dict, bootstrap: str, topic: str,
                             fresh: list[tuple[Professional, str]], timeout: float = 10.0) -> dict:
    """POST /slots for a professional without slots, then (a) poll the search of a care request at their site
    until the slot is on their card, (b) wait for its slot.published event on the topic."""
    from aiokafka import AIOKafkaConsumer

    loop = asyncio.get_running_loop()
    arrivals: dict[str, float] = {}
    # fetch_max_wait_ms: the local broker answers an empty fetch only when it runs out (see outbox_pipeline).
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest",
                                enable_auto_commit=False, fetch_max_wait_ms=10, client_id="bench-visibility")
    await consumer.start()

    async def read() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=20)
            at = loop.time()
            for records in batches.values():
                for record in records:
                    h = {k: v.decode() for k, v in record.headers or ()}
                    if h.get("ce_type") == SLOT_PUBLISHED and h.get("ce_subject", "").startswith("slot/"):
                        arrivals.setdefault(h["ce_subject"][5:], at)

    reader = None
    rows = []
    try:
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await consumer.seek_to_end()
        reader = asyncio.create_task(read())
        await asyncio.sleep(1.0)
        for k, (p, request_id) in enumerate(fresh):
            headers = {"Authorization": f"Bearer {issuer.mint(subject=f'pro-{p.idnps}', roles=['professional'], idnps=p.idnps)}"}
            start = (datetime.now(UTC) + timedelta(minutes=60 + 20 * k)).replace(second=0, microsecond=0)
            body = {"idnps": p.idnps, "site_id": p.sites[0]["site_id"],
                    "slots": [{"start": start.isoformat(), "end": (start + timedelta(minutes=15)).isoformat()}]}
            t0 = loop.time()
            response = await client.post("/slots", json=body, headers=headers)
            posted = loop.time()
            if response.status_code != 201:
                rows.append({"error": f"POST /slots {response.status_code}: {response.text[:200]}"})
                continue
            slot_id = response.json()[0]["slot_id"]
            visible, polls, rank = None, 0, None
            while loop.time() - t0 < timeout:
                polls += 1
                found = await client.get(f"/care-requests/{request_id}/candidates", params={"limit": 5},
                                         headers=regulator)
                if found.status_code == 200:
                    for card in found.json()["cards"]:
                        if card["idnps"] == p.idnps and any(s["slot_id"] == slot_id for day in card["slots"].values()
                                                            for s in day):
                            visible, rank = loop.time(), card["rank"]
                    if visible:
                        break
                await asyncio.sleep(0.005)
            while slot_id not in arrivals and loop.time() - t0 < timeout:
                await asyncio.sleep(0.002)
            rows.append({"post_ms": (posted - t0) * 1000, "visible_ms": (visible - t0) * 1000 if visible else None,
                         "kafka_ms": (arrivals[slot_id] - t0) * 1000 if slot_id in arrivals else None,
                         "polls": polls, "rank": rank})
            await asyncio.sleep(0.05)
    finally:
        if reader:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
    good = [r for r in rows if "error" not in r]
    return {"publications": len(fresh), "errors": [r["error"] for r in rows if "error" in r][:5],
            "post_ms": summary([r["post_ms"] for r in good]),
            "visible_ms": summary([r["visible_ms"] for r in good if r["visible_ms"] is not None]),
            "kafka_ms": summary([r["kafka_ms"] for r in good if r["kafka_ms"] is not None]),
            "not_visible": sum(1 for r in good if r["visible_ms"] is None),
            "not_on_kafka": sum(1 for r in good if r["kafka_ms"] is None),
            "polls_per_publication": summary([r["polls"] for r in good]),
            "ranks": dict(Counter(r["rank"] for r in good))}


# ------------------------------------------------------------------------------------------------------------
# Sampling profile of the running service (py-spy, optional)

# Leaf-first: a sample is charged to the innermost frame that belongs to one of these (file fragment, label).
SPY_OWNERS = [
    ("selectors.py", "waiting in epoll (not CPU)"), ("threading.py", "waiting (thread)"),
    ("queue.py", "waiting (thread)"), ("aiosqlite/", "aiosqlite / SQLite"), ("asyncpg/", "asyncpg (PostgreSQL protocol)"),
    ("cpts_geo/", "cpts_geo (within, haversine)"), ("jwt/", "JWT verification"),
    ("cryptography/", "JWT verification"), ("sqlalchemy/", "SQLAlchemy (compile, ORM, rows)"),
    ("pydantic", "pydantic (validation, serialisation)"), ("httptools/", "HTTP (uvicorn, httptools)"),
    ("h11/", "HTTP (uvicorn, h11)"), ("uvicorn/", "HTTP (uvicorn)"), ("uvloop/", "event loop (uvloop)"), ("structlog/", "logging"), ("logging/", "logging"),
    ("prometheus_client/", "metrics"), ("aiokafka/", "Kafka client (relay, consumer)"),
    ("cpts_snp_dispatch/", "snp-dispatch code (search, ranking, routes)"),
    ("cpts_platform/", "platform code (auth, audit, middleware)"), ("fastapi/", "FastAPI / Starlette"),
    ("starlette/", "FastAPI / Starlette"), ("json/", "json"), ("asyncio/", "asyncio event loop"),
]
# Inclusive: the share of samples whose stack holds this function (file fragment, function name).
SPY_MARKERS = [("queries.py", "search"), ("queries.py", "_first_slots"), ("routes.py", "_request_for"),
               ("auth.py", "verify"), ("routing.py", "serialize_response"), ("communes.py", "within"),
               ("ranking.py", "rank"), ("aiosqlite/", ""), ("asyncpg/", "")]


def summarise_collapsed(path: Path) -> dict:
    """py-spy's raw (collapsed) output: `thread (tid);func (file:line);... count` per distinct stack. The event
    loop thread does all the Python work; aiosqlite runs each SQLite connection in a thread of its own."""
    owners: Counter = Counter()
    markers: Counter = Counter()
    threads: Counter = Counter()
    main_owners: Counter = Counter()
    total = 0
    lines = []
    sqlite_threads = set()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            lines.append((stack, int(count)))
            frames = stack.split(";")
            if len(frames) > 1 and frames[1].startswith("_bootstrap (") and "aiosqlite/" in stack:
                sqlite_threads.add(frames[0])  # a worker thread: its root is threading's _bootstrap
    for stack, n in lines:
        total += n
        frames = stack.split(";")
        owner = "other"
        for frame in reversed(frames):
            hit = next((label for fragment, label in SPY_OWNERS if fragment in frame), None)
            if hit:
                owner = hit
                break
        owners[owner] += n
        # SQLAlchemy runs the ORM in greenlets of the event loop thread: their stacks do not show the loop, and
        # aiosqlite's coroutines show on it too; the SQLite work itself runs in aiosqlite's worker threads.
        main = frames[0] not in sqlite_threads
        threads["event loop thread" if main else "aiosqlite worker threads"] += n
        if main:
            main_owners[owner] += n
        for fragment, name in SPY_MARKERS:
            if any(fragment in f and (not name or f.startswith(name + " (")) for f in frames):
                markers[f"{fragment.rstrip('/')}:{name}" if name else fragment.rstrip("/")] += n
    main_total = sum(main_owners.values())

    def shares(counter: Counter, of: int) -> dict:
        return {k: round(v / of, 3) for k, v in counter.most_common()} if of else {}

    return {"samples": total, "samples_by_thread": dict(threads), "self_share_by_owner": shares(owners, total),
            "main_thread_self_share": shares(main_owners, main_total), "inclusive_share": shares(markers, total)}


async def closed_loop(client, send, seconds: float, meter: CpuMeter) -> dict:
    """One request at a time, back to back: the latency of an unloaded service, and its sequential rate."""
    latencies, statuses = [], Counter()
    before = meter.snapshot()
    started = time.monotonic()
    i = 0
    while time.monotonic() - started < seconds:
        sent = time.monotonic()
        try:
            statuses[(await send(client, i)).status_code] += 1
        except Exception as exc:
            statuses[type(exc).__name__] += 1
        latencies.append((time.monotonic() - sent) * 1000)
        i += 1
    cpu = meter.since(before)
    return {"requests": i, "statuses": {str(k): v for k, v in statuses.items()},
            "per_second": round(i / (time.monotonic() - started), 2), "latency_ms": summary(latencies), "cpu": cpu,
            "server_cpu_ms_per_request": round(cpu["server_cpu_s"] * 1000 / max(i, 1), 1),
            "postgresql_cpu_ms_per_request": round(cpu["postgresql_cpu_s"] * 1000 / max(i, 1), 1)
            if "postgresql_cpu_s" in cpu else None}


async def sample_server(py_spy: str, pid: int, workdir: Path, client, send, meter, seconds: float) -> dict:
    """py-spy on the service while searches run one at a time (no queueing: where one search's time goes)."""
    output = workdir / "py-spy.txt"
    process = await asyncio.create_subprocess_exec(
        py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200", "--format", "raw",
        "--nonblocking", "--threads", "--output", str(output),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    await asyncio.sleep(1.0)
    step = await closed_loop(client, send, max(1.0, seconds - 2), meter)
    _, err = await process.communicate()
    if process.returncode != 0 or not output.exists():
        return {"error": f"py-spy exited {process.returncode}: {err.decode(errors='replace')[-300:]}"}
    return {"sequential": {k: step[k] for k in ("requests", "per_second", "latency_ms")},
            **summarise_collapsed(output)}


# ------------------------------------------------------------------------------------------------------------
# Profile of the search: the same app in this process (ASGI, no TCP), on the same database

def classify(statement: str) -> str:
    s = " ".join(statement.split()).lower()
    if s.startswith("insert into audit_log"):
        return "audit insert"
    if "row_number()" in s:
        return "first slots (window function)"
    if "group by slot.idnps" in s:
        return "free slots per site (aggregate)"
    if "from professional_view" in s and "in (" in s or "from professional_view" in s and "any" in s:
        return "professionals of the area"
    if s.startswith("select slot.slot_id") and "order by slot.start, slot.slot_id" in s:
        return "fhir: slots page"
    if s.startswith("select count(*)") and "from slot" in s:
        return "fhir: slot count"
    if "from schedule" in s:
        return "fhir: schedules"
    if "from cpts_view" in s:
        return "fhir: cpts"
    if "from care_request" in s:
        return "care request by id"
    if "from appointment" in s:
        return "en sus usage"
    if s.startswith(("begin", "commit", "select 1", "select pg_", "release", "savepoint")):
        return "transaction control"
    return "other: " + s[:60]


async def profile_fhir(client, regulator: dict, batches: list[list[str]], db_time: dict, n: int) -> dict:
    window_end = sas_window_end(datetime.now(UTC))

    async def send(i: int):
        return await client.get("/fhir/Slot", params=fhir_params(batches[i % len(batches)], datetime.now(UTC),
                                                                 window_end), headers=regulator)

    for i in range(3):
        await send(i)
    db_time.clear()
    walls, sizes = [], []
    for i in range(n):
        started = time.perf_counter()
        response = await send(i)
        walls.append((time.perf_counter() - started) * 1000)
        sizes.append(len(response.content))
    db_total = sum(db_time.values()) * 1000 / n
    mean = sum(walls) / n
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        await send(i)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(20)
    return {"requests": n, "in_process_ms": summary(walls), "mean_ms": round(mean, 2), "db_ms": round(db_total, 2),
            "python_ms": round(mean - db_total, 2), "db_ms_by_statement": {k: round(v * 1000 / n, 2) for k, v in
                                                                          sorted(db_time.items(), key=lambda kv: -kv[1])},
            "response_bytes": summary([float(x) for x in sizes]), "cprofile_tottime": stream.getvalue()}


async def profile_search(url: str, var_dir: Path, bootstrap: str, request_ids: list[str], regulator: dict,
                         searches: int, dialect: str, fhir_batches: list[list[str]]) -> dict:
    from cpts_platform import audit
    from cpts_platform.auth import Principal, Role
    from cpts_platform.testing import running_service
    from cpts_snp_dispatch import queries
    from cpts_snp_dispatch.queries import Audience
    from cpts_snp_dispatch.repository import CareRequestRow

    settings = service.settings_class(profile="local", var_dir=var_dir, database_url=url,
                                      kafka_bootstrap_servers=bootstrap,
                                      kafka_topic_prefix=f"p{uuid.uuid4().hex[:10]}.", log_level="WARNING",
                                      rate_limit_enabled=False)
    db_time: dict[str, float] = defaultdict(float)
    db_count: Counter = Counter()
    captured: dict[str, tuple] = {}
    out: dict = {"searches": searches}
    async with running_service(service, settings) as client:
        database = client.app.state.runtime.database
        engine = database.engine.sync_engine

        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info.setdefault("bench_t", []).append(time.perf_counter())

        def after(conn, cursor, statement, parameters, context, executemany):
            started = conn.info["bench_t"].pop()
            kind = classify(statement)
            db_time[kind] += time.perf_counter() - started
            db_count[kind] += 1
            if kind == "free slots per site (aggregate)" and kind not in captured:
                captured[kind] = (statement, parameters)

        sa.event.listen(engine, "before_cursor_execute", before)
        sa.event.listen(engine, "after_cursor_execute", after)
        try:
            ids = [request_ids[i % len(request_ids)] for i in range(searches)]
            for rid in ids[:10]:  # warm
                await client.get(f"/care-requests/{rid}/candidates", headers=regulator)
            db_time.clear()
            db_count.clear()
            # 1. The endpoint in-process (auth, audit, search, response model), no profiler.
            walls = []
            for rid in ids:
                started = time.perf_counter()
                response = await client.get(f"/care-requests/{rid}/candidates", headers=regulator)
                walls.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            endpoint_db = dict(db_time)
            endpoint_counts = dict(db_count)
            out["endpoint_in_process_ms"] = summary(walls)
            out["endpoint_db_ms_per_search"] = {k: round(v * 1000 / searches, 2) for k, v in
                                                sorted(endpoint_db.items(), key=lambda kv: -kv[1])}
            out["endpoint_statements_per_search"] = {k: round(v / searches, 2) for k, v in endpoint_counts.items()}
            db_total = sum(endpoint_db.values()) * 1000 / searches
            out["endpoint_db_total_ms"] = round(db_total, 2)
            out["endpoint_mean_ms"] = round(sum(walls) / len(walls), 2)
            out["endpoint_python_ms"] = round(out["endpoint_mean_ms"] - db_total, 2)

            # 2. The pieces, called directly: the audit write, then queries.search alone.
            principal = Principal(subject="regulator-bench", roles=frozenset({Role.REGULATOR}),
                                  departements=frozenset({DEPARTEMENT}))
            audits = []
            for rid in ids:
                started = time.perf_counter()
                async with database.transaction() as session:
                    await audit.record(session, principal, action="read", record_type="care_request",
                                       record_id=rid, purpose="bench")
                audits.append((time.perf_counter() - started) * 1000)
            out["audit_write_ms"] = summary(audits)
            db_time.clear()
            db_count.clear()
            audience = Audience.of(principal)
            searches_ms = []
            sizes = []
            for rid in ids:
                started = time.perf_counter()
                async with database.sessions() as session:
                    request = await session.get(CareRequestRow, rid)
                    result = await queries.search(session, request=request, audience=audience, settings=settings,
                                                  now=datetime.now(UTC))
                searches_ms.append((time.perf_counter() - started) * 1000)
                sizes.append((result.total_cards, result.professionals_with_slots, result.radius_km))
            search_db = sum(db_time.values()) * 1000 / searches
            out["search_function_ms"] = summary(searches_ms)
            out["search_function_mean_ms"] = round(sum(searches_ms) / len(searches_ms), 2)
            out["search_function_db_ms"] = round(search_db, 2)
            out["search_function_python_ms"] = round(out["search_function_mean_ms"] - search_db, 2)
            out["search_db_ms_by_statement"] = {k: round(v * 1000 / searches, 2) for k, v in
                                                sorted(db_time.items(), key=lambda kv: -kv[1])}
            out["result_sizes"] = {
                "total_cards": summary([float(s[0]) for s in sizes]),
                "professionals_with_slots": summary([float(s[1]) for s in sizes]),
                "radius_km": dict(Counter(s[2] for s in sizes))}

            # 3. cProfile of the endpoint in-process.
            profiler = cProfile.Profile()
            profiler.enable()
            for rid in ids:
                await client.get(f"/care-requests/{rid}/candidates", headers=regulator)
            profiler.disable()
            stream = io.StringIO()
            stats = pstats.Stats(profiler, stream=stream)
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(25)
            out["cprofile"] = stream.getvalue()
            # Cumulative time of the functions that matter, per search (with the profiler's own overhead).
            wanted = {"search": "queries.py", "_first_slots": "queries.py", "_en_sus": "queries.py",
                      "rank": "ranking.py", "verify": "auth.py", "_request_for": "routes.py",
                      "serialize_response": "routing.py", "haversine_km": "communes.py", "within": "communes.py",
                      "_site_distance": "queries.py", "neutral_key": "ranking.py", "record": "audit.py",
                      "condition": "queries.py", "model_validate": "main.py"}
            per = {}
            for (filename, _, name), (cc, nc, tt, ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
                if name in wanted and filename.endswith(wanted[name]):
                    per[f"{wanted[name]}:{name}"] = {"cumulative_ms_per_search": round(ct * 1000 / searches, 2),
                                                     "calls_per_search": round(nc / searches, 1)}
            out["cprofile_key_functions"] = dict(sorted(per.items(), key=lambda kv: -kv[1]["cumulative_ms_per_search"]))

            # 5. The FHIR Slot search in-process, when the build serves it.
            if "/fhir/Slot" in client.app.openapi().get("paths", {}):
                out["fhir"] = await profile_fhir(client, regulator, fhir_batches, db_time, max(5, searches // 3))
        finally:
            sa.event.remove(engine, "before_cursor_execute", before)
            sa.event.remove(engine, "after_cursor_execute", after)

        # 4. The plan of the aggregate, with the parameters of a real search.
        if captured:
            statement, parameters = captured["free slots per site (aggregate)"]
            prefix = "EXPLAIN (ANALYZE, BUFFERS) " if dialect == "postgresql" else "EXPLAIN QUERY PLAN "
            try:
                async with database.engine.connect() as connection:
                    rows = (await connection.exec_driver_sql(prefix + statement, tuple(parameters))).all()
                out["aggregate_plan"] = [" | ".join(str(v) for v in row) for row in rows]
            except Exception as exc:
                out["aggregate_plan"] = [f"EXPLAIN failed: {type(exc).__name__}: {exc}"[:300]]
            out["aggregate_sql"] = " ".join(statement.split())
        async with database.engine.connect() as connection:
            now = datetime.now(UTC)
            window = (await connection.execute(sa.text(
                "SELECT COUNT(*) FROM slot WHERE status = 'free' AND start >= :a AND start <= :b"),
                {"a": now, "b": sas_window_end(now)})).scalar_one()
        out["free_slots_in_48h_window"] = window
    return out


def service_errors(path: Path) -> dict:
    """The exceptions the service logged (stderr): how many tracebacks, by exception line."""
    import re

    kinds: Counter = Counter()
    tracebacks = 0
    pattern = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Timeout)\w*)(: |$)")
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                tracebacks += 1
            match = pattern.match(line)
            if match:
                kinds[line[:160]] += 1
    except OSError:
        pass
    return {"tracebacks": tracebacks, "exceptions": dict(kinds.most_common(8))}


# ------------------------------------------------------------------------------------------------------------
# One database

async def run_database(kind: str, args, bootstrap: str, broker_pid: int | None) -> dict:
    from cpts_platform.dev.broker import free_port

    workdir = Path(tempfile.mkdtemp(prefix="cpts-bench-snp-"))
    pg_name = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'snp-dispatch.db'}"
    else:
        from cpts_platform.testing import create_postgres_database

        pg_name, url = await asyncio.to_thread(create_postgres_database)
    out: dict = {"database": kind, "phase_s": {}}
    server = None
    phase_started = [time.monotonic()]

    def phase(name: str) -> None:
        now_ = time.monotonic()
        out["phase_s"][name] = round(now_ - phase_started[0], 1)
        phase_started[0] = now_
    try:
        now = datetime.now(UTC)
        data = generate(args.seed, args.professionals, args.slots, args.fresh, now)
        out["dataset"] = {
            "professionals": len(data.professionals), "participants": sum(p.participant for p in data.professionals),
            "with_slots": sum(1 for p in data.professionals if p.slot_count), "slots": len(data.slot_rows),
            "slots_in_sas_window": sum(1 for r in data.slot_rows if r["start"] <= data.window_end),
            "visible_to_regulator": sum(1 for r in data.slot_rows if r["vis_snp"] or r["vis_pro"] or r["vis_public"]),
            "communes": len({p.commune for p in data.professionals}), "generated_at": now.isoformat(),
            "window_end": data.window_end.isoformat()}
        print(f"\n[{kind}] seeding {len(data.professionals):,} professionals and {len(data.slot_rows):,} slots ...",
              flush=True)
        out["seed"] = await seed(url, data)
        phase("seed")
        print(f"[{kind}] seeded in {out['seed']['insert_s']} s; publish_slots: {args.publish_total} slots in batches "
              f"of {args.publish_batch} ...", flush=True)
        out["publish_handler"] = await measure_publish(url, data, args.publish_total, args.publish_batch)
        phase("publish_handler")
        print(f"[{kind}] publish_slots: {out['publish_handler']['slots_per_second']:,} slots/s", flush=True)

        var_dir = workdir / "var"
        issuer = LocalIssuer(var_dir / "local-issuer")
        issuer.ensure_key()
        regulator = {"Authorization": "Bearer " + issuer.mint(subject="regulator-bench", roles=["regulator"],
                                                                departements=[DEPARTEMENT])}
        port = free_port()
        prefix = f"b{uuid.uuid4().hex[:10]}."
        base_url = f"http://127.0.0.1:{port}"
        server = ServiceProcess({"url": url, "var_dir": str(var_dir), "bootstrap": bootstrap, "prefix": prefix,
                                 "port": port, "log_level": args.service_log_level,
                                 "log_path": str(workdir / "service.log"), "err_path": str(workdir / "service.err")})
        PROBE.update(path=f"/effecteurs/{data.professionals[0].idnps}", headers=regulator)
        limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10.0) as client:
            out["service_start_s"] = round(await server.start(client), 2)
            PROBE.update(client=client, pid=server.pid)
            meter = CpuMeter(server.pid, broker_pid, kind == "postgresql")
            rng = random.Random(args.seed + 1)

            # Care requests: searches, fresh professionals' sites (measure 4), bookings (measure 3).
            bodies = search_request_bodies(rng, data, args.requests)
            fresh = [p for p in data.professionals if p.fresh][:args.publications]
            fresh_bodies = [care_request_body(rng, communes().get(p.commune),
                                              point=(p.sites[0]["lat"], p.sites[0]["lon"])) for p in fresh]
            booking_bodies = [care_request_body(rng, place) for place in
                              rng.choices(data.places, [c.population for c in data.places], k=200)]
            started = time.perf_counter()
            search_ids, intake_ms = await create_requests(client, regulator, bodies)
            fresh_ids, more = await create_requests(client, regulator, fresh_bodies)
            booking_ids, more2 = await create_requests(client, regulator, booking_bodies)
            out["care_requests"] = {"search": len(search_ids), "publication": len(fresh_ids),
                                    "booking": len(booking_ids),
                                    "address_located": sum(1 for b in bodies if "lat" in b["location"]),
                                    "seconds": round(time.perf_counter() - started, 2),
                                    "post_ms": summary(intake_ms + more + more2)}
            phase("service_start_and_care_requests")
            print(f"[{kind}] {len(search_ids) + len(fresh_ids) + len(booking_ids)} care requests created "
                  f"(POST p50 {out['care_requests']['post_ms']['p50']} ms); warming up ...", flush=True)

            # Warm-up: one search per request in turn (caches, connections, the planner's statistics).
            seen = []
            for rid in search_ids[:min(len(search_ids), 20)]:
                response = await client.get(f"/care-requests/{rid}/candidates", headers=regulator)
                if response.status_code == 200:
                    seen.append(response.json()["professionals_with_slots"])
            out["warm_up"] = {"searches": len(seen), "professionals_with_slots": summary([float(x) for x in seen])}
            if not any(seen):
                # The seeded slots are invisible to the search: the schema derives a column the seed does not fill.
                raise RuntimeError("no warm-up search found a professional with free slots: check that the bulk "
                                   "seed fills every column the service derives at publication (seed())")

            order = list(search_ids)
            random.Random(3).shuffle(order)

            async def search(c, i):
                return await c.get(f"/care-requests/{order[i % len(order)]}/candidates", headers=regulator)

            # 1. One at a time (the unloaded latency), steady 20/s, then the ladders.
            phase("warm_up")
            print(f"[{kind}] 1. search one at a time for {args.sequential_seconds:.0f} s ...", flush=True)
            out["search_sequential"] = await closed_loop(client, search, args.sequential_seconds, meter)
            q = out["search_sequential"]
            print(f"    sequential {q['per_second']}/s  p50 {q['latency_ms']['p50']}  p95 {q['latency_ms']['p95']} ms, "
                  f"server CPU {q['server_cpu_ms_per_request']} ms/search"
                  + (f", PostgreSQL CPU {q['postgresql_cpu_ms_per_request']} ms/search"
                     if q["postgresql_cpu_ms_per_request"] is not None else ""), flush=True)
            await settle()
            phase("sequential")
            # The cost of trivial requests, one at a time: /healthz (no auth, no database, not logged) and an
            # authenticated read by primary key (JWT, pooled session, log line, response model).
            effecteur = data.professionals[1].idnps

            async def healthz(c, i):
                return await c.get("/healthz")

            async def effecteurs(c, i):
                return await c.get(f"/effecteurs/{effecteur}", headers=regulator)

            out["trivial_sequential"] = {
                "healthz": await closed_loop(client, healthz, args.trivial_seconds, meter),
                "effecteur_read": await closed_loop(client, effecteurs, args.trivial_seconds, meter)}
            t = out["trivial_sequential"]
            print(f"    one at a time: /healthz p50 {t['healthz']['latency_ms']['p50']} ms, server CPU "
                  f"{t['healthz']['server_cpu_ms_per_request']} ms; GET /effecteurs/{{idnps}} p50 "
                  f"{t['effecteur_read']['latency_ms']['p50']} ms, server CPU "
                  f"{t['effecteur_read']['server_cpu_ms_per_request']} ms", flush=True)
            print(f"[{kind}]    search at a steady {args.steady_rate}/s for {args.steady_seconds} s ...", flush=True)
            steady = await open_loop(client, search, args.steady_rate, args.steady_seconds, meter)
            print_step("steady", steady)
            out["search_steady"] = steady
            await settle()
            phase("steady")
            # The ladders use the lean client (RawHttp) so that the load generator is not what saturates.
            raw = await RawHttp("127.0.0.1", port, 64).start()
            auth = {"Authorization": regulator["Authorization"]}

            async def raw_search(c, i):
                return await c.get(f"/care-requests/{order[i % len(order)]}/candidates", auth)

            async def raw_healthz(c, i):
                return await c.get("/healthz")

            try:
                print(f"[{kind}]    search ladder ({args.step_seconds} s per step) ...", flush=True)
                out["search_ladder"] = await search_ladder(raw, raw_search, meter, args.step_seconds, 20, 20, 2000,
                                                           "search")
                start = max(args.trivial_start, out["search_ladder"]["max_sustained_per_second"] or 0)
                print(f"[{kind}]    /healthz ladder (doubling from {start:.0f}/s, then a bisection) ...", flush=True)
                out["trivial_ladder"] = await doubling_ladder(raw, raw_healthz, meter, args.step_seconds, start,
                                                              args.trivial_limit, "healthz")
                if args.py_spy:
                    print(f"[{kind}]    py-spy on the service for {args.py_spy_seconds:.0f} s of searches one at a "
                          "time ...", flush=True)
                    out["py_spy"] = await sample_server(args.py_spy, server.pid, workdir, raw, raw_search, meter,
                                                        args.py_spy_seconds)
                    await settle()
            finally:
                await raw.close()
            s_max = out["search_ladder"]["max_sustained_per_second"]
            t_max = out["trivial_ladder"]["max_sustained_per_second"]
            out["rate_ratio"] = round(s_max / t_max, 3) if s_max and t_max else None

            phase("ladders_and_py_spy")
            # 2. FHIR.
            print(f"[{kind}] 2. FHIR Slot search, 25 practitioners ...", flush=True)
            out["fhir"] = await measure_fhir(client, regulator, data, meter, args.fhir_rate, args.fhir_seconds)
            if "skipped" in out["fhir"]:
                print(f"    SKIPPED: {out['fhir']['skipped']}", flush=True)
            else:
                print_step("fhir", out["fhir"])
                await settle()

            phase("fhir")
            # 3. Concurrent booking.
            print(f"[{kind}] 3. 200 concurrent bookings on 10 slots ...", flush=True)
            out["booking"] = await measure_booking(base_url, regulator, url, data, booking_ids)
            b = out["booking"]
            print(f"    statuses {b['statuses']}, live appointments per slot {b['live_appointments_per_slot']}, "
                  f"double bookings {b['double_bookings']}, {b['wall_s']} s -> {'PASS' if b['pass'] else 'FAIL'}",
                  flush=True)

            phase("booking")
            # 4. Publication -> search and Kafka.
            print(f"[{kind}] 4. {len(fresh)} publications -> visible in search / read from Kafka ...", flush=True)
            out["publish_to_visible"] = await measure_visibility(
                client, issuer, regulator, bootstrap, prefix + topics.SNP_DISPATCH, list(zip(fresh, fresh_ids)))
            v = out["publish_to_visible"]
            print(f"    search p50 {v['visible_ms']['p50']} p95 {v['visible_ms']['p95']} ms; Kafka p50 "
                  f"{v['kafka_ms']['p50']} p95 {v['kafka_ms']['p95']} ms", flush=True)
            out["service_log_lines"] = (workdir / "service.log").read_bytes().count(b"\n")
        out["service_errors"] = service_errors(workdir / "service.err")
        server.stop()
        server = None

        phase("visibility_and_stop")
        # Profile (service stopped: the search runs alone on the machine).
        print(f"[{kind}] profile of the search (in-process, {args.profile_searches} searches) ...", flush=True)
        pool = [p.idnps for p in data.professionals if p.slot_count]
        fhir_batches = [random.Random(13 + i).sample(pool, 25) for i in range(32)]
        out["profile"] = await profile_search(url, var_dir, bootstrap, search_ids, regulator, args.profile_searches,
                                              "postgresql" if kind == "postgresql" else "sqlite", fhir_batches)
        phase("profile")
        prof = out["profile"]
        print(f"    endpoint in-process mean {prof['endpoint_mean_ms']} ms = DB {prof['endpoint_db_total_ms']} ms + "
              f"Python {prof['endpoint_python_ms']} ms; search() alone {prof['search_function_mean_ms']} ms "
              f"(DB {prof['search_function_db_ms']} ms)", flush=True)
        return out
    finally:
        if server is not None:
            server.stop()
        if pg_name:
            from cpts_platform.testing import drop_postgres_database

            await asyncio.to_thread(drop_postgres_database, pg_name)
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------------
# Verdicts and report

def verdicts(r: dict) -> list[tuple[str, str, str, str]]:
    """(measure, figure, target, verdict) rows of one database."""
    rows = []
    s = r["search_steady"]["latency_ms"]
    steady_ok = (s["p95"] is not None and s["p95"] < TARGET_SEARCH_P95_MS
                 and r["search_steady"]["failed"] <= MAX_ERROR_SHARE * r["search_steady"]["planned"])
    rows.append((f"search @{r['search_steady']['offered_per_second']:.0f}/s p50/p95/p99 ms",
                 ("overloaded, " if r["search_steady"]["aborted"] else "") + f"{s['p50']}/{s['p95']}/{s['p99']}",
                 f"p95 < {TARGET_SEARCH_P95_MS:.0f}", "PASS" if steady_ok else "FAIL"))
    s_max = r["search_ladder"]["max_sustained_per_second"]
    t = r["trivial_ladder"]
    q = r["search_sequential"]["latency_ms"]
    rows.insert(0, ("search one at a time p50/p95 ms", f"{q['p50']}/{q['p95']}", "", ""))
    rows.append(("search max rate (p95 < 250 ms)", f"{s_max}/s" if s_max else "< 1/s", "", ""))
    peak = max((st["achieved_per_second"] for st in r["search_ladder"]["steps"] + [r["search_steady"]]), default=0)
    rows.append(("search throughput at saturation (achieved)", f"{peak}/s", "", ""))
    rows.append(("/healthz max rate (p95 < 250 ms)",
                 f"{t['max_sustained_per_second'] or 0:.0f}/s" + ("" if t["first_failed_per_second"] else " (limit)"),
                 "", ""))
    ratio = r["rate_ratio"]
    rows.append(("ratio search / trivial", f"{ratio}" if ratio is not None else "~0 (search < 1/s)",
                 f">= {TARGET_RATE_RATIO}", "PASS" if ratio is not None and ratio >= TARGET_RATE_RATIO else "FAIL"))
    f = r["fhir"]
    if "skipped" in f:
        rows.append(("FHIR Slot, 25 practitioners p95 ms", "-", f"p95 < {TARGET_FHIR_P95_MS:.0f}", "SKIP"))
    else:
        fl = f["latency_ms"]
        ok = fl["p95"] is not None and fl["p95"] < TARGET_FHIR_P95_MS and f["failed"] == 0
        rows.append(("FHIR Slot, 25 practitioners p50/p95 ms", f"{fl['p50']}/{fl['p95']}",
                     f"p95 < {TARGET_FHIR_P95_MS:.0f}", "PASS" if ok else "FAIL"))
    b = r["booking"]
    others = b["attempts"] - b["statuses"].get("201", 0) - b["statuses"].get("409", 0)
    figure = f"{b['statuses'].get('201', 0)}/{b['statuses'].get('409', 0)}/{others}, {b['double_bookings']} double"
    rows.append(("200 bookings on 10 slots: 201/409/other", figure, "10/190/0, 0 double",
                 "PASS" if b["pass"] else "FAIL"))
    v = r["publish_to_visible"]
    for key, label in (("visible_ms", "publish -> in search p50/p95 ms"), ("kafka_ms", "publish -> on Kafka p50/p95 ms")):
        x = v[key]
        missing = v["not_visible"] if key == "visible_ms" else v["not_on_kafka"]
        ok = x["p95"] is not None and x["p95"] < TARGET_VISIBLE_P95_MS and missing == 0 and not v["errors"]
        rows.append((label, f"{x['p50']}/{x['p95']}", f"p95 < {TARGET_VISIBLE_P95_MS:.0f}", "PASS" if ok else "FAIL"))
    p = r["publish_handler"]
    rows.append((f"publish_slots ({p['slots']} slots, batches of {p['batch']})", f"{p['slots_per_second']:,} slots/s",
                 "", ""))
    return rows


def git_info() -> dict:
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10,
                                  check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    import hashlib

    dirty = [line[3:] for line in git("status", "--porcelain", "services/snp-dispatch", "libs").splitlines()]
    # A fingerprint of the code measured: the diff against HEAD and the untracked files' contents.
    digest = hashlib.sha1(git("diff", "HEAD", "--", "services/snp-dispatch", "libs").encode())
    for name in sorted(line[3:] for line in git("status", "--porcelain", "--untracked-files=all",
                                                "services/snp-dispatch", "libs").splitlines() if line.startswith("??")):
        try:
            digest.update((ROOT / name).read_bytes())
        except OSError:
            pass
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": dirty,
            "code_fingerprint": digest.hexdigest()[:12]}


def postgres_available() -> bool:
    try:
        from cpts_platform.testing import postgres_reachable

        return postgres_reachable()
    except Exception:
        return False


def databases(choice: str | None) -> list[str]:
    if choice == "sqlite":
        return ["sqlite"]
    if choice in ("postgresql", "both"):
        if not postgres_available():
            sys.exit("PostgreSQL is not reachable at 127.0.0.1:5432 (CPTS_TEST_POSTGRES_DSN overrides it)")
        return ["sqlite", "postgresql"] if choice == "both" else ["postgresql"]
    return ["sqlite", "postgresql"] if postgres_available() else ["sqlite"]


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default=None,
                        help="default: both when PostgreSQL is reachable, else sqlite")
    parser.add_argument("--quick", action="store_true", help="a smoke run: smaller dataset, short steps")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--professionals", type=int)
    parser.add_argument("--slots", type=int)
    parser.add_argument("--requests", type=int, help="care requests searched in turn (measure 1)")
    parser.add_argument("--steady-rate", type=float, default=20.0)
    parser.add_argument("--steady-seconds", type=float)
    parser.add_argument("--step-seconds", type=float, help="duration of a load step")
    parser.add_argument("--trivial-start", type=float, default=320.0, help="first /healthz rate offered")
    parser.add_argument("--trivial-limit", type=float, default=4000.0, help="highest /healthz rate offered")
    parser.add_argument("--service-log-level", default="INFO",
                        help="the service's log level (INFO: one JSON line per request, written to a file)")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of starting the local one")
    parser.add_argument("--py-spy", default=shutil.which("py-spy"),
                        help="py-spy executable: sample the service under search load (default: py-spy on PATH)")
    parser.add_argument("--py-spy-seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"professionals": 400 if quick else 2000, "slots": 20_000 if quick else 100_000,
                "requests": 60 if quick else 300, "steady_seconds": 8.0 if quick else 30.0,
                "step_seconds": 3.0 if quick else 10.0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.fresh = 10 if quick else 50
    args.publications = args.fresh
    args.publish_total = 1000 if quick else 5000
    args.publish_batch = 500
    args.fhir_rate = 2.0  # unloaded latency: a request every 500 ms
    args.fhir_seconds = 5.0 if quick else 15.0
    args.profile_searches = 15 if quick else 20
    args.sequential_seconds = 4.0 if quick else 10.0
    args.trivial_seconds = 2.0 if quick else 3.0
    return args


async def main_async(args, kinds: list[str]) -> dict:
    from cpts_platform.dev.broker import LocalBroker, free_port

    broker = None
    broker_pid = None
    bootstrap = args.bootstrap_servers
    if not bootstrap:
        broker = LocalBroker(port=free_port())
        broker.start()
        bootstrap = broker.bootstrap_servers
        broker_pid = broker.process.pid if broker.process else None
    try:
        results = {}
        for kind in kinds:
            results[kind] = await run_database(kind, args, bootstrap, broker_pid)
        return results
    finally:
        if broker:
            broker.stop()


def main(argv: list[str] | None = None) -> int:
    quiet_logging()
    args = parse_args(argv)
    kinds = databases(args.database)
    load_before = os.getloadavg()
    cpus = os.cpu_count()
    if load_before[0] > (cpus or 1) * 0.5:
        print(f"warning: load average {load_before[0]:.2f} on {cpus} CPUs before starting: figures will be noisy",
              flush=True)
    started = time.monotonic()
    code_before = git_info()
    results = asyncio.run(main_async(args, kinds))
    elapsed = time.monotonic() - started

    first = next(iter(results.values()))
    d = first["dataset"]
    print(f"\nsnp-dispatch - {d['professionals']:,} GPs (69, {d['participants']:,} SAS participants), "
          f"{d['slots']:,} free slots ({d['slots_in_sas_window']:,} in the SAS window), "
          f"{args.requests} care requests searched; {cpus} CPUs; uvicorn (uvloop, httptools) + httpx over TCP"
          f"{'; QUICK' if args.quick else ''}")
    header = f"{'database':<11} {'measure':<44} {'figure':>26}  {'target':<20} verdict"
    print(header)
    print("-" * len(header))
    missed = []
    for kind, r in results.items():
        for measure, figure, target, verdict in verdicts(r):
            print(f"{kind:<11} {measure:<44} {figure:>26}  {target:<20} {verdict}")
            if verdict == "FAIL":
                missed.append(f"{kind}: {measure} = {figure} (target {target})")
    print()
    for kind, r in results.items():
        st = r["search_steady"]
        prof = r["profile"]
        print(f"  {kind}: server CPU per search {st['server_cpu_ms_per_request']} ms at {st['offered_per_second']:.0f}/s "
              f"(server {st['cpu']['server_core_share']} core, cores busy {st['cpu']['cores_busy']}); "
              f"search in-process {prof['endpoint_mean_ms']} ms = DB {prof['endpoint_db_total_ms']} + "
              f"Python {prof['endpoint_python_ms']}; audit write p50 {prof['audit_write_ms']['p50']} ms")
        print(f"  {kind}: DB per search {prof['endpoint_db_ms_per_search']}")
        t = r["trivial_sequential"]
        q = r["search_sequential"]
        print(f"  {kind}: server CPU one at a time: search {q['server_cpu_ms_per_request']} ms"
              + (f" (+ PostgreSQL {q['postgresql_cpu_ms_per_request']} ms)" if q["postgresql_cpu_ms_per_request"]
                 is not None else " (SQLite included)")
              + f", GET /effecteurs/{{idnps}} {t['effecteur_read']['server_cpu_ms_per_request']} ms, "
              f"/healthz {t['healthz']['server_cpu_ms_per_request']} ms")
        top = list(prof["cprofile_key_functions"].items())[:6]
        print(f"  {kind}: cProfile (cumulative ms per search) " +
              ", ".join(f"{k} {v['cumulative_ms_per_search']}" for k, v in top))
        if "skipped" in r["fhir"]:
            print(f"  {kind}: FHIR skipped: {r['fhir']['skipped']}")
        elif "fhir" in prof:
            f = prof["fhir"]
            print(f"  {kind}: FHIR in-process mean {f['mean_ms']} ms = DB {f['db_ms']} + Python {f['python_ms']}; "
                  f"response p50 {f['response_bytes']['p50']:,.0f} bytes")
        spy = r.get("py_spy")
        if spy and "error" not in spy:
            print(f"  {kind}: py-spy, searches one at a time, samples {spy['samples_by_thread']}; all threads, self: "
                  + ", ".join(f"{k} {v:.0%}" for k, v in list(spy["self_share_by_owner"].items())[:5]))
            print(f"  {kind}: py-spy event loop thread, self: " +
                  ", ".join(f"{k} {v:.0%}" for k, v in list(spy["main_thread_self_share"].items())[:8]))
            print(f"  {kind}: py-spy inclusive: " + ", ".join(f"{k} {v:.0%}" for k, v in spy["inclusive_share"].items()))
        elif spy:
            print(f"  {kind}: py-spy failed: {spy['error']}")
        errors = r.get("service_errors", {})
        if errors.get("tracebacks"):
            print(f"  {kind}: the service logged {errors['tracebacks']} tracebacks: " +
                  "; ".join(f"{n} x {k[:110]}" for k, n in list(errors["exceptions"].items())[:3]))
    if code_before["code_fingerprint"] != git_info()["code_fingerprint"]:
        print("\n  WARNING: the service or library code changed during the run: the figures mix two versions")
    print(f"\n  total {elapsed:.0f} s; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")

    report = {
        "benchmark": "snp_dispatch", "quick": args.quick, "seconds": round(elapsed, 1),
        "targets": {"search_p95_ms": TARGET_SEARCH_P95_MS, "saturation_p95_ms": SATURATION_P95_MS,
                    "rate_ratio": TARGET_RATE_RATIO, "fhir_p95_ms": TARGET_FHIR_P95_MS,
                    "publish_visible_p95_ms": TARGET_VISIBLE_P95_MS},
        "args": {k: v for k, v in vars(args).items()},
        "machine": {"cpus": cpus, "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        **git_info(), "code_changed_during_run": code_before["code_fingerprint"] != git_info()["code_fingerprint"],
        "results": results, "missed": missed,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str))
    print(f"  results: {RESULTS.relative_to(ROOT)}")
    if missed:
        print("\nTargets missed:")
        for line in missed:
            print(f"  - {line}")
        return 1
    print("\nEvery target met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
