"""Throughput of the event backbone against plain Kafka, in one run on one broker.

    .venv/bin/python bench/outbox_pipeline.py [--events N] [--database sqlite|postgresql|both]

RAW       aiokafka producer (``new_producer``, acks=all) -> aiokafka consumer in a group, committing after
          each ``getmany`` batch. Rate = N / (first send -> consumer holds all N).
PIPELINE  domain transactions of 100 events (``add_events`` in ``database.transaction()``) -> ``OutboxRelay``
          -> broker -> ``EventConsumer`` (idempotent, processed-event table) whose handler writes one effect
          row per event in the same transaction. Rate = N / (first outbox write -> effect table has N rows).

The consumer side always runs in a second process (spawn), the producing side in this one, so raw and pipeline
have the same process layout on a 2-core machine. Every measurement uses a fresh topic prefix and consumer
group. Results: a table on stdout and ``bench/results/outbox_pipeline.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import registry

from cpts_events import Event, encode, new_event, topics
from cpts_events.registry import ProfessionalRegistered
from cpts_platform.db import Database, add_platform_tables
from cpts_platform.kafka import ensure_topics, new_producer, platform_topics
from cpts_platform.logging import configure_logging

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "outbox_pipeline.json"
TARGET_RATIO = 0.5
TRANSACTION_SIZE = 100
SOURCE = "/cpts/bench"

metadata = sa.MetaData()
tables = add_platform_tables(metadata)
# No unique constraint on purpose: a duplicate application must show up as a duplicate row, not an error.
effects = sa.Table(
    "bench_effect", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("idnps", sa.String(12), nullable=False),
)


class Effect:
    """The effect row as a mapped object, for `--handler orm` (rows flushed together at commit)."""

    def __init__(self, event_id: str, idnps: str) -> None:
        self.event_id = event_id
        self.idnps = idnps


registry().map_imperatively(Effect, effects)
HANDLERS = ("batch", "execute", "orm")


def quiet_logging() -> None:
    # structlog's default logger prints the consumer's `events_handled` lines to stdout: without this the bench would
    # measure the terminal. WARNING keeps retries, DLQ and commit failures visible.
    configure_logging(service="bench", level="WARNING")


def payload(i: int) -> ProfessionalRegistered:
    return ProfessionalRegistered(idnps=f"8{i:011d}", family_name="Bench", given_name="Pro",
                                  profession_code="10", commune_insee="69123", cpts_ids=["690049999"])


def make_events(n: int) -> list[Event]:
    return [new_event(payload(i), source=SOURCE) for i in range(n)]


def plain_engine(url: str):
    """An engine without the platform's SQLite hooks (no BEGIN IMMEDIATE): counts without taking locks."""
    return create_async_engine(url)


# ------------------------------------------------------------------------------------------------------------
# CPU accounting: where the cycles of the two cores go during a measurement (Linux /proc; empty elsewhere)

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BROKER_PIDS: list[int] = []  # the local broker, when this script started it


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


class CpuMeter:
    """CPU seconds of this process, and of the broker and PostgreSQL processes, between start() and stop()."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self._start: dict[str, float] = {}
        self._pg_start: dict[int, float] = {}

    def _others(self) -> dict[str, float]:
        return {"broker": sum(_proc_cpu(pid) for pid in BROKER_PIDS)} if BROKER_PIDS else {}

    def start(self) -> None:
        self._start = {"producer_process": time.process_time(), **self._others()}
        if self.postgres:
            self._pg_start = {pid: _proc_cpu(pid) for pid in _postgres_pids()}

    def stop(self) -> dict[str, float]:
        now = {"producer_process": time.process_time(), **self._others()}
        used = {k: now[k] - self._start.get(k, 0.0) for k in now}
        if self.postgres:
            # Backends started during the measurement count from zero.
            pids = _postgres_pids()
            used["postgresql"] = sum(_proc_cpu(pid) - self._pg_start.get(pid, 0.0) for pid in pids)
        return used


def cpu_per_event(used: dict[str, float], consumer_cpu: float, n: int, elapsed: float) -> dict:
    used = {**used, "consumer_process": consumer_cpu}
    order = ["producer_process", "consumer_process", "broker", "postgresql"]
    return {
        "us_per_event": {k: round(used[k] / n * 1e6, 1) for k in order if k in used},
        "cores_busy": round(sum(used.values()) / elapsed, 2),
    }


# ------------------------------------------------------------------------------------------------------------
# Inter-process messages (a multiprocessing Pipe, awaited without blocking the event loop)

async def receive(conn, timeout: float):
    loop = asyncio.get_running_loop()
    if not conn.poll():
        ready = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            raise TimeoutError(f"no message from the other process within {timeout:.0f} s") from None
        finally:
            loop.remove_reader(conn.fileno())
    try:
        message = conn.recv()
    except EOFError:
        raise RuntimeError("the consumer process exited without a word (see its traceback above)") from None
    if message[0] == "error":
        raise RuntimeError(f"consumer process failed:\n{message[1]}")
    return message


async def expect(conn, kind: str, timeout: float):
    message = await receive(conn, timeout)
    if message[0] != kind:
        raise RuntimeError(f"expected {kind!r} from the consumer process, got {message!r}")
    return message[1] if len(message) > 1 else None


# ------------------------------------------------------------------------------------------------------------
# Consumer side (second process)

def consumer_process(role: str, params: dict, conn) -> None:
    quiet_logging()
    try:
        coroutine = raw_consumer(params, conn) if role == "raw" else pipeline_consumer(params, conn)
        asyncio.run(coroutine)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


async def raw_consumer(params: dict, conn) -> None:
    from aiokafka import AIOKafkaConsumer

    n = params["events"]
    consumer = AIOKafkaConsumer(
        params["topic"], bootstrap_servers=params["bootstrap"], group_id=params["group"],
        client_id="bench-raw-consumer", enable_auto_commit=False, auto_offset_reset="earliest",
        max_poll_records=params["batch_size"],
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        conn.send(("ready",))
        cpu_at_ready = time.process_time()
        received = 0
        first = None
        done_at = None
        while received < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=params["batch_size"])
            if not batches:
                continue
            if first is None:
                first = time.monotonic()
            offsets = {}
            for tp, records in batches.items():
                received += len(records)
                offsets[tp] = records[-1].offset + 1
            if received >= n:
                done_at = time.monotonic()
            await consumer.commit(offsets)
        conn.send(("done", {"done_at": done_at, "first_received_at": first, "received": received,
                            "cpu": time.process_time() - cpu_at_ready}))
        await expect(conn, "stop", 600)
    finally:
        await consumer.stop()
    conn.send(("stopped", {}))


async def pipeline_consumer(params: dict, conn) -> None:
    from cpts_platform.consumer import EventConsumer, batch_handler

    n = params["events"]
    database = Database(params["url"], tables)
    producer = new_producer(params["bootstrap"], client_id="bench-consumer")  # for the DLQ only
    await producer.start()
    state = {"handled": 0, "first": None}

    async def execute_handler(session, event) -> None:
        # What the services' handlers do: one statement per event, run when the handler runs.
        if state["first"] is None:
            state["first"] = time.monotonic()
        await session.execute(sa.insert(effects).values(event_id=event.id, idnps=event.payload.idnps))
        state["handled"] += 1

    async def orm_handler(session, event) -> None:
        # The unit of work: the rows of a whole batch go in one multi-row INSERT when the transaction commits.
        if state["first"] is None:
            state["first"] = time.monotonic()
        session.add(Effect(event_id=event.id, idnps=event.payload.idnps))
        state["handled"] += 1

    @batch_handler
    async def batched_handler(session, events) -> None:
        # A batch handler: the run of events the consumer holds goes in one multi-row INSERT.
        if state["first"] is None:
            state["first"] = time.monotonic()
        await session.execute(sa.insert(effects), [{"event_id": e.id, "idnps": e.payload.idnps} for e in events])
        state["handled"] += len(events)

    handler = {"orm": orm_handler, "execute": execute_handler, "batch": batched_handler}[params["handler"]]

    consumer = EventConsumer(
        service="bench", group_id=params["group"], topics_=[params["topic"]],
        handlers={ProfessionalRegistered.__event_type__: handler}, database=database, producer=producer,
        bootstrap_servers=params["bootstrap"], batch_size=params["batch_size"],
    )
    counter = plain_engine(params["url"])
    await consumer.start()
    try:
        while not consumer.joined:
            await asyncio.sleep(0.02)
        conn.send(("ready",))
        cpu_at_ready = time.process_time()
        # Count committed effect rows only once the handler has run N times (it runs before the commit), so
        # the polling costs nothing while the pipeline is busy.
        polls = 0
        while True:
            if state["handled"] >= n:
                async with counter.connect() as connection:
                    result = await connection.execute(sa.select(sa.func.count()).select_from(effects))
                    rows = result.scalar_one()
                polls += 1
                if rows >= n:
                    done_at = time.monotonic()
                    break
                await asyncio.sleep(0.002)
            else:
                await asyncio.sleep(0.005)
        conn.send(("done", {"done_at": done_at, "first_handled_at": state["first"],
                            "handled": state["handled"], "count_polls": polls,
                            "cpu": time.process_time() - cpu_at_ready}))
        await expect(conn, "stop", 600)
    finally:
        await consumer.stop()
        await producer.stop()
        await counter.dispose()
        await database.dispose()
    conn.send(("stopped", {"handled": state["handled"]}))


def spawn_consumer(role: str, params: dict):
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=consumer_process, args=(role, params, child),
                              name=f"bench-{role}-consumer")
    process.start()
    child.close()
    return process, parent


def reap(process) -> None:
    process.join(timeout=15)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)


# ------------------------------------------------------------------------------------------------------------
# Producer side (this process)

async def fresh_topics(bootstrap: str) -> str:
    prefix = f"b{uuid.uuid4().hex[:10]}."
    await ensure_topics(bootstrap, [prefix + t for t in platform_topics()])
    return prefix


def phase_timeout(n: int) -> float:
    return max(120.0, n / 100)


async def measure_raw(bootstrap: str, n: int, batch_size: int) -> dict:
    records = [encode(e) for e in make_events(n)]
    prefix = await fresh_topics(bootstrap)
    topic = prefix + topics.REGISTRY
    process, conn = spawn_consumer("raw", {
        "bootstrap": bootstrap, "topic": topic, "events": n, "group": f"bench-raw-{uuid.uuid4().hex[:8]}",
        "batch_size": batch_size,
    })
    producer = new_producer(bootstrap, client_id="bench-raw-producer")
    try:
        await expect(conn, "ready", 120)
        await producer.start()
        meter = CpuMeter(postgres=False)
        meter.start()
        started = time.monotonic()
        futures = [await producer.send(topic, value=r.value, key=r.key, headers=r.headers) for r in records]
        await asyncio.gather(*futures)
        acked = time.monotonic()
        done = await expect(conn, "done", phase_timeout(n))
        used = meter.stop()
        conn.send(("stop",))
        await expect(conn, "stopped", 60)
    finally:
        await producer.stop()
        reap(process)
    elapsed = done["done_at"] - started
    return {
        "events": n, "topic_prefix": prefix, "seconds": round(elapsed, 3),
        "events_per_second": round(n / elapsed, 1), "received": done["received"],
        "stages": {"all_acked_s": round(acked - started, 3),
                   "first_received_s": round(done["first_received_at"] - started, 3)},
        "cpu": cpu_per_event(used, done["cpu"], n, elapsed),
    }


class PipelineSetup:
    """The producing service's database (outbox) and the consuming service's (effects, processed events)."""

    def __init__(self, kind: str, shared: bool) -> None:
        self.kind = kind
        self.shared = shared
        self._dir: str | None = None
        self._pg_names: list[str] = []

    async def __aenter__(self) -> tuple[str, str]:
        if self.kind == "sqlite":
            self._dir = tempfile.mkdtemp(prefix="cpts-bench-")
            producer = f"sqlite+aiosqlite:///{self._dir}/producer.db"
            consumer = producer if self.shared else f"sqlite+aiosqlite:///{self._dir}/consumer.db"
            return producer, consumer
        from cpts_platform.testing import create_postgres_database

        urls = []
        for _ in range(1 if self.shared else 2):
            name, url = await asyncio.to_thread(create_postgres_database)  # it runs its own event loop
            self._pg_names.append(name)
            urls.append(url)
        return urls[0], urls[-1]

    async def __aexit__(self, *exc) -> None:
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        if self._pg_names:
            from cpts_platform.testing import drop_postgres_database

            for name in self._pg_names:
                await asyncio.to_thread(drop_postgres_database, name)


async def create_schema(url: str) -> None:
    engine = plain_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    await engine.dispose()


async def measure_pipeline(bootstrap: str, kind: str, producer_url: str, consumer_url: str, n: int,
                           batch_size: int, settle: float, handler: str, prefill: bool = True) -> dict:
    from cpts_platform.metrics import EVENTS_PUBLISHED
    from cpts_platform.outbox import OutboxRelay, add_events

    events = make_events(n)
    for url in {producer_url, consumer_url}:
        await create_schema(url)
    prefix = await fresh_topics(bootstrap)
    service = f"bench-{uuid.uuid4().hex[:8]}"  # its own metric labels, so the published count starts at 0
    published = EVENTS_PUBLISHED.labels(service, topics.REGISTRY)
    process, conn = spawn_consumer("pipeline", {
        "bootstrap": bootstrap, "topic": prefix + topics.REGISTRY, "events": n, "url": consumer_url,
        "group": f"bench-pipeline-{uuid.uuid4().hex[:8]}", "batch_size": batch_size, "handler": handler,
    })
    database = Database(producer_url, tables)
    producer = new_producer(bootstrap, client_id="bench-relay")
    relay = OutboxRelay(service=service, database=database, producer=producer, batch_size=batch_size,
                        topic_prefix=prefix)
    stages: dict[str, float] = {}
    try:
        await expect(conn, "ready", 120)
        await producer.start()

        async def write() -> None:
            for i in range(0, n, TRANSACTION_SIZE):
                async with database.transaction() as session:
                    await add_events(session, database, events[i:i + TRANSACTION_SIZE])
            stages["all_written_s"] = time.monotonic() - started

        if prefill:
            # The pipeline starts at the committed outbox, as raw starts at encoded events: the domain
            # transactions that write the outbox are timed apart.
            started = time.monotonic()
            await write()
            stages["outbox_write_events_per_second"] = round(n / (time.monotonic() - started), 1)
            del stages["all_written_s"]

        async def watch_relay() -> None:
            while published._value.get() < n:
                await asyncio.sleep(0.005)
            stages["all_published_s"] = time.monotonic() - started

        meter = CpuMeter(postgres=kind == "postgresql")
        meter.start()
        started = time.monotonic()
        relay.start()
        writer = asyncio.create_task(asyncio.sleep(0) if prefill else write())
        watcher = asyncio.create_task(watch_relay())
        try:
            done = await expect(conn, "done", phase_timeout(n))
            used = meter.stop()
            await writer
            await asyncio.wait_for(watcher, 10)
        finally:
            writer.cancel()
            watcher.cancel()
        # Let a redelivery, if any, land before counting (duplicates would show up now).
        await asyncio.sleep(settle)
        conn.send(("stop",))
        await expect(conn, "stopped", 60)
    finally:
        await relay.stop()
        await producer.stop()
        await database.dispose()
        reap(process)
    elapsed = done["done_at"] - started
    stages["first_handled_s"] = done["first_handled_at"] - started
    check = await verify(producer_url, consumer_url, [e.id for e in events])
    return {
        "database": kind, "events": n, "handler": handler, "topic_prefix": prefix,
        "seconds": round(elapsed, 3), "events_per_second": round(n / elapsed, 1),
        "handler_calls": done["handled"],
        "stages": {k: round(v, 3) for k, v in sorted(stages.items(), key=lambda kv: kv[1])},
        "cpu": cpu_per_event(used, done["cpu"], n, elapsed),
        "exactly_once": check,
    }


async def verify(producer_url: str, consumer_url: str, event_ids: list[str]) -> dict:
    engine = plain_engine(consumer_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(sa.select(sa.func.count()).select_from(effects))).scalar_one()
        distinct = (await connection.execute(
            sa.select(sa.func.count(sa.distinct(effects.c.event_id))))).scalar_one()
        applied = set((await connection.execute(sa.select(effects.c.event_id))).scalars())
        processed = (await connection.execute(
            sa.select(sa.func.count()).select_from(tables.processed_event))).scalar_one()
    await engine.dispose()
    engine = plain_engine(producer_url)
    async with engine.connect() as connection:
        pending = (await connection.execute(
            sa.select(sa.func.count()).where(tables.outbox.c.published_at.is_(None)))).scalar_one()
    await engine.dispose()
    n = len(event_ids)
    ok = rows == n and distinct == n and applied == set(event_ids) and processed == n and pending == 0
    return {"ok": ok, "effect_rows": rows, "distinct_event_ids": distinct, "duplicates": rows - distinct,
            "missing": len(set(event_ids) - applied), "processed_event_rows": processed,
            "outbox_pending": pending}


# ------------------------------------------------------------------------------------------------------------

def code_version() -> dict:
    """The commit measured and whether the library had uncommitted changes (results move with the code)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            completed = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10,
                                       check=False)
            return completed.stdout
        except Exception:
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "libs").splitlines() if "/src/" in line]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "libs_uncommitted": dirty}


def postgres_available() -> bool:
    try:
        from cpts_platform.testing import postgres_reachable

        return postgres_reachable()
    except Exception:
        return False


def databases_to_run(choice: str | None) -> list[str]:
    if choice == "sqlite":
        return ["sqlite"]
    if choice in ("postgresql", "both"):
        if not postgres_available():
            sys.exit("PostgreSQL is not reachable at 127.0.0.1:5432 (CPTS_TEST_POSTGRES_DSN overrides it)")
        return ["sqlite", "postgresql"] if choice == "both" else ["postgresql"]
    return ["sqlite", "postgresql"] if postgres_available() else ["sqlite"]


def median_run(runs: list[dict]) -> dict:
    """The run with the median rate (an actual run, so its stages stay consistent)."""
    ordered = sorted(runs, key=lambda r: r["events_per_second"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        chosen["all_events_per_second"] = [r["events_per_second"] for r in runs]
    return chosen


def print_table(result: dict) -> None:
    raw = result["raw"]["events_per_second"]
    print()
    print(f"outbox pipeline vs raw Kafka - {result['events']} events, {result['machine']['cpus']} CPUs, "
          f"handler {result['handler']}, target ratio >= {TARGET_RATIO}")
    header = (f"{'measurement':<22}{'events/s':>12}{'seconds':>10}{'ratio':>9}{'exactly-once':>15}"
              f"{'verdict':>9}")
    print(header)
    print("-" * len(header))
    print(f"{'raw aiokafka':<22}{raw:>12,.0f}{result['raw']['seconds']:>10.2f}{1.0:>9.2f}{'-':>15}{'-':>9}")
    for kind, run in result["pipeline"].items():
        once = "ok" if run["exactly_once"]["ok"] else "VIOLATED"
        print(f"{'pipeline ' + kind:<22}{run['events_per_second']:>12,.0f}{run['seconds']:>10.2f}"
              f"{run['ratio']:>9.2f}{once:>15}{run['verdict']:>9}")
    print()
    print("  stages (seconds from the start of the timed window; outbox write rate in events/s):")
    for kind, run in result["pipeline"].items():
        stages = ", ".join(f"{k} {v:,.0f}/s" if k.endswith("per_second") else f"{k} {v:.2f}s"
                           for k, v in run["stages"].items())
        print(f"    {kind}: {stages}, effects done {run['seconds']:.2f}s")
    print("  CPU microseconds per event (cores busy):")
    for name, run in [("raw", result["raw"]), *result["pipeline"].items()]:
        cpu = run["cpu"]
        parts = ", ".join(f"{k.replace('_process', '')} {v:,.0f}" for k, v in cpu["us_per_event"].items())
        print(f"    {name}: {parts} ({cpu['cores_busy']:.2f})")
    for kind, run in result["pipeline"].items():
        if not run["exactly_once"]["ok"]:
            print(f"  {kind}: exactly-once check failed: {run['exactly_once']}")
    raw_all = result["raw"].get("all_events_per_second")
    if raw_all:
        print(f"  raw runs: {', '.join(f'{r:,.0f}' for r in raw_all)} events/s (the median is used)")
    if result["rounds"] > 1:
        print(f"  (median of {result['rounds']} rounds; ratios use the medians)")
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


async def run_all(args, bootstrap: str, databases: list[str]) -> dict:
    quiet_logging()
    if args.warmup:
        await measure_raw(bootstrap, args.warmup, args.batch_size)
    raw_runs: list[dict] = []
    pipeline_runs: dict[str, list[dict]] = {kind: [] for kind in databases}
    for round_ in range(args.rounds):
        for _ in range(args.raw_repeats):
            raw_runs.append(await measure_raw(bootstrap, args.events, args.batch_size))
            print(f"round {round_ + 1}: raw {raw_runs[-1]['events_per_second']:,.0f} events/s", flush=True)
        for kind in databases:
            async with PipelineSetup(kind, args.shared_database) as (producer_url, consumer_url):
                run = await measure_pipeline(bootstrap, kind, producer_url, consumer_url, args.events,
                                             args.batch_size, args.settle, args.handler,
                                             prefill=not args.with_domain_writes)
            pipeline_runs[kind].append(run)
            print(f"round {round_ + 1}: pipeline {kind} {run['events_per_second']:,.0f} events/s "
                  f"(exactly-once {'ok' if run['exactly_once']['ok'] else 'VIOLATED'})", flush=True)
    raw = median_run(raw_runs)
    pipeline = {}
    for kind, runs in pipeline_runs.items():
        run = median_run(runs)
        run["ratio"] = round(run["events_per_second"] / raw["events_per_second"], 3)
        run["target_ratio"] = TARGET_RATIO
        passed = run["ratio"] >= TARGET_RATIO and all(r["exactly_once"]["ok"] for r in runs)
        run["verdict"] = "PASS" if passed else "FAIL"
        pipeline[kind] = run
    return {"raw": raw, "pipeline": pipeline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="events per measurement (default 20000)")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default=None,
                        help="default: both when PostgreSQL is reachable, else sqlite")
    parser.add_argument("--rounds", type=int, default=1, help="repeat raw + pipelines, report the medians")
    parser.add_argument("--raw-repeats", type=int, default=3,
                        help="raw runs per round (raw lasts under a second, so it is noisy; "
                             "the median is used)")
    parser.add_argument("--batch-size", type=int, default=500,
                        help="relay, consumer and raw poll batch (the platform default is 500)")
    parser.add_argument("--handler", choices=HANDLERS, default="batch",
                        help="batch: a batch handler, one multi-row INSERT per run of events (default); "
                             "execute: one INSERT statement per event; orm: session.add() per event, "
                             "one multi-row INSERT per batch at commit")
    parser.add_argument("--with-domain-writes", action="store_true",
                        help="time the domain transactions that write the outbox too (default: the pipeline "
                             "starts at the committed outbox, as raw starts at encoded events)")
    parser.add_argument("--shared-database", action="store_true",
                        help="outbox and consumer tables in one database (as in the tests) instead of one "
                             "database per service")
    parser.add_argument("--warmup", type=int, default=2000, help="unreported raw warm-up events (0: none)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds to wait after the last effect before checking for duplicates")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when a database does not PASS")
    parser.add_argument("--bootstrap-servers", default=os.environ.get("CPTS_BENCH_KAFKA_BOOTSTRAP_SERVERS"),
                        help="use this broker instead of starting the local one")
    args = parser.parse_args()
    if args.events < TRANSACTION_SIZE or args.events % TRANSACTION_SIZE:
        parser.error(f"--events must be a positive multiple of {TRANSACTION_SIZE}")
    if args.rounds < 1 or args.raw_repeats < 1:
        parser.error("--rounds and --raw-repeats must be at least 1")
    databases = databases_to_run(args.database)
    load_before = os.getloadavg()
    if load_before[0] > 0.7 * (os.cpu_count() or 1):
        print(f"warning: load average {load_before[0]:.2f} before the run - something else is busy; the "
              f"ratios are still comparable within this run, the absolute rates less so", file=sys.stderr)

    from cpts_platform.dev.broker import LocalBroker, free_port

    broker = None
    bootstrap = args.bootstrap_servers
    if not bootstrap:
        broker = LocalBroker(port=free_port())
        broker.start()
        bootstrap = broker.bootstrap_servers
        if broker.process:
            BROKER_PIDS.append(broker.process.pid)
    try:
        measured = asyncio.run(run_all(args, bootstrap, databases))
    finally:
        if broker:
            broker.stop()
    result = {
        "benchmark": "outbox_pipeline",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": args.events,
        "rounds": args.rounds,
        "raw_repeats": args.raw_repeats,
        "transaction_size": TRANSACTION_SIZE,
        "batch_size": args.batch_size,
        "handler": args.handler,
        "domain_writes_timed": args.with_domain_writes,
        "databases": "shared" if args.shared_database else "one per service",
        "code": code_version(),
        "broker": "external " + bootstrap if args.bootstrap_servers else "local (Tansu, memory)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "target_ratio": TARGET_RATIO,
        **measured,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    if not all(run["exactly_once"]["ok"] for run in result["pipeline"].values()):
        sys.exit(2)  # a correctness failure, whatever the speed
    if args.check and any(run["verdict"] != "PASS" for run in result["pipeline"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
