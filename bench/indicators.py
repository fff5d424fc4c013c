"""Consume-and-aggregate throughput of the indicators service against raw aiokafka, in one run on one broker.

    .venv/bin/python bench/indicators.py [--events N] [--cpts C] [--database sqlite|postgresql] [--quick]

RAW         an ``AIOKafkaConsumer`` in a fresh group reads the registry and snp-dispatch topics and decodes
            every value (``json.loads``). Rate = N / (first send -> the consumer holds all N).
INDICATORS  the indicators service (``running_service``: its consumers, relay and API, in this process, the
            heap frozen once started as ``cpts serve`` does) applies the same events in its
            ``indicators.facts`` group: facts inserted, the touched CPTS x periods marked for their snapshots.
            Rate = N / (first send -> N rows in ``processed_event`` for that group). "sent at": first send ->
            every snapshot recomputed and written to the outbox (the snapshot worker waits for a backlog to
            be caught up, at most ``snapshot_max_delay_seconds``).
LATENCY     then, one ``CareRequestReceived`` at a time: published -> the count served by
            ``GET /indicators/cpts/{id}/series/snp.requests.received`` (current month) includes it (polled
            every 10 ms); p50 / p95 / max.

Events (encoded up front, sent with ``cpts_platform.kafka.new_producer``): per CPTS one ``CptsRegistered`` and
its professionals, then snp-dispatch traffic over the last months: slots published, care requests received,
appointments booked and fulfilled (or no-show).
Results: a table on stdout and ``bench/results/indicators.json``.
"""

from __future__ import annotations

import argparse
import warnings
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from cpts_events import encode, new_event, topics
from cpts_events import registry as r
from cpts_events.registry import ProfessionalRegistered
from cpts_events import snp_dispatch as s
from cpts_indicators.app import service
from cpts_indicators.domain.periods import PeriodKind, period_of
from cpts_platform.auth import LocalIssuer
from cpts_platform.db import Database
from cpts_platform.dev.broker import LocalBroker, free_port
from cpts_platform.kafka import ensure_topics, new_producer
from cpts_platform.logging import configure_logging
from cpts_platform.metrics import EVENTS_CONSUMED
from cpts_platform.settings import ServiceSettings
from cpts_platform.testing import (
    create_postgres_database,
    drop_postgres_database,
    postgres_reachable,
    running_service,
    settings_for,
)
from outbox_pipeline import BROKER_PIDS, CpuMeter

warnings.filterwarnings("ignore", category=DeprecationWarning)
ROOT = Path(__file__).resolve().parent.parent
FETCH_MAX_WAIT_MS = ServiceSettings.model_fields["consumer_fetch_max_wait_ms"].default
RESULTS = ROOT / "bench" / "results" / "indicators.json"
TARGET_RATIO = 0.5
TARGET_P95_S = 1.0
WARM_UP_EVENTS = 2000
SNP = "/cpts/snp-dispatch"
REGISTRY = "/cpts/registry"


def _at(payload, when: datetime, source: str):
    return replace(new_event(payload, source=source), time=when)


def cpts_id(i: int) -> str:
    return f"69{i:07d}"


def generate(n: int, n_cpts: int, seed: int = 1, *, first_cpts: int = 0, tag: str = "") -> list:
    """About n events: registry first (CPTS, professionals), then snp-dispatch traffic of the last 90 days.
    `first_cpts` and `tag` keep the CPTS, professionals, slots and requests of another set of events apart."""
    return list(iter_events(n, n_cpts, seed, first_cpts=first_cpts, tag=tag))


def iter_events(n: int, n_cpts: int, seed: int = 1, *, first_cpts: int = 0, tag: str = ""):
    """The events of `generate`, one at a time (for runs too large to hold in memory)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    count = 0
    professionals: dict[str, list[str]] = {}
    for c in range(first_cpts, first_cpts + n_cpts):
        cid = cpts_id(c)
        count += 1
        yield _at(r.CptsRegistered(cpts_id=cid, name=f"CPTS {c}", stage="aci_signed", communes=["69259"],
                                   population=60000 + c, size_band=2, departements=["69"]),
                  now - timedelta(days=200), REGISTRY)
        professionals[cid] = [f"81{c:03d}{p:07d}" for p in range(30)]
        for idnps in professionals[cid]:
            count += 1
            yield _at(r.ProfessionalRegistered(
                idnps=idnps, family_name="Nom", given_name="Prénom", profession_code="10",
                specialty_code="SM54", cpts_ids=[cid]), now - timedelta(days=190), REGISTRY)
    i = 0
    while count < n:
        cid = cpts_id(first_cpts + rng.randrange(n_cpts))
        idnps = rng.choice(professionals[cid])
        received = now - timedelta(days=rng.uniform(1, 90))
        kind = rng.random()
        if kind < 0.3:
            start = received + timedelta(hours=rng.randrange(1, 72))
            count += 1
            yield _at(s.SlotPublished(
                slot_id=f"{tag}slot-{i}", idnps=idnps, cpts_ids=[cid], site_id="S1", start=start,
                end=start + timedelta(minutes=20), service_type="AMB", visibility=["SNP", "PRO"],
                appointment_type="ROUTINE"), received, SNP)
        else:
            request_id = f"{tag}req-{i}"
            count += 1
            yield _at(s.CareRequestReceived(
                request_id=request_id, origin=rng.choice(["sas", "cpts_phone", "member_referral"]),
                cpts_id=cid, commune_insee="69259", departement="69", urgency="24h", reason_category="fievre",
                has_mt=rng.random() < 0.8, age_band="adult", received_at=received), received, SNP)
            if rng.random() < 0.8:
                booked = received + timedelta(minutes=30)
                start = received + timedelta(hours=rng.uniform(1, 72))
                facts = dict(request_id=request_id, idnps=idnps, cpts_ids=[cid], request_cpts_id=cid,
                             origin="sas", kind="slot", request_received_at=received,
                             appointment_id=f"{tag}apt-{i}",
                             start=start, service_type="AMB", slot_id=f"{tag}slot-x-{i}")
                count += 1
                if count > n:
                    return
                yield _at(s.AppointmentBooked(**facts, booked_at=booked), booked, SNP)
                seen = start + timedelta(minutes=30)
                outcome = s.AppointmentFulfilled if rng.random() < 0.9 else s.AppointmentNoShow
                count += 1
                if count > n:
                    return
                yield _at(outcome(**facts, recorded_at=seen), seen, SNP)
        i += 1


def encoded(events) -> list:
    return [encode(e) for e in events]


async def send_all(bootstrap: str, prefix: str, records) -> float:
    producer = new_producer(bootstrap, client_id="bench-producer")
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(prefix + rec.topic, value=rec.value, key=rec.key, headers=rec.headers)
                   for rec in records]
        await asyncio.gather(*futures)
        return started
    finally:
        await producer.stop()


async def raw_run(bootstrap: str, records) -> dict:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    names = [prefix + topics.REGISTRY, prefix + topics.SNP_DISPATCH]
    await ensure_topics(bootstrap, names)
    consumer = AIOKafkaConsumer(*names, bootstrap_servers=bootstrap, group_id=prefix + "raw",
                                enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500,
                                # As the service's consumers: the broker here answers a waiting fetch only at
                                # this deadline, even when records arrive meanwhile.
                                fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    await consumer.start()
    # Wait for the group's assignment, as the service waits to be ready.
    while not consumer.assignment():
        await asyncio.sleep(0.05)
    n = len(records)
    count = 0
    done = asyncio.Event()
    finished = 0.0

    async def consume():
        nonlocal count, finished
        while count < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records_ in batches.values():
                for record in records_:
                    json.loads(record.value)
                    count += 1
            if batches:
                await consumer.commit()
        finished = time.perf_counter()
        done.set()

    task = asyncio.create_task(consume())
    meter = CpuMeter(postgres=False)
    meter.start()
    started = await send_all(bootstrap, prefix, records)
    await asyncio.wait_for(done.wait(), timeout=600)
    used = meter.stop()
    await task
    await consumer.stop()
    seconds = finished - started
    return {"events": n, "seconds": round(seconds, 3), "events_per_second": round(n / seconds, 1),
            "cpu": cpu_per_event(used, n, seconds)}


async def processed(database: Database, group: str) -> int:
    async with database.sessions() as session:
        p = database.tables.processed_event
        return (await session.execute(sa.select(sa.func.count()).select_from(p).where(
            p.c.consumer_group == group))).scalar_one()


async def pending_snapshots(database: Database) -> int:
    async with database.sessions() as session:
        return (await session.execute(sa.text("SELECT count(*) FROM indicator_pending_snapshot"))).scalar_one()


def consumed(prefix: str) -> float:
    """Events the in-process service's consumers applied so far on the bench's topics (their effects
    committed): read from its counter, which costs the database nothing, unlike counting rows (and only that
    counter is read, not the whole registry with its process collector)."""
    wanted = {prefix + t for t in (topics.REGISTRY, topics.SNP_DISPATCH)}
    return sum(sample.value for family in EVENTS_CONSUMED.collect() for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("service") == service.name
               and sample.labels.get("topic") in wanted)


def cpu_per_event(used: dict[str, float], n: int, seconds: float) -> dict:
    """CPU microseconds per event of this process (producer and consumer side), the broker and PostgreSQL
    during a measurement, and how many cores they kept busy on average."""
    used = {("process" if k == "producer_process" else k): v for k, v in used.items()}
    return {"us_per_event": {k: round(v / n * 1e6, 1) for k, v in used.items()},
            "cores_busy": round(sum(used.values()) / seconds, 2)}


def applications(records) -> int:
    """What applying `records` adds to `consumed`: every event by the facts group, and the professionals'
    registrations once more by the registry read model's group."""
    registered = ProfessionalRegistered.__event_type__.encode()
    return len(records) + sum(1 for rec in records if dict(rec.headers).get("ce_type") == registered)


async def outbox_rows(database: Database) -> int:
    async with database.sessions() as session:
        return (await session.execute(sa.text("SELECT count(*) FROM outbox_event"))).scalar_one()


async def indicators_run(bootstrap: str, records, database_url: str, var_dir: Path, *, batch_size: int,
                         latency_samples: int, warm_up: list | None = None, py_spy: str | None = None) -> dict:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, [prefix + t for t in (topics.REGISTRY, topics.SNP_DISPATCH,
                                                         topics.PATIENT_MATCHING, "indicators")])
    settings = settings_for(service, database_url=database_url, kafka_broker=bootstrap, topic_prefix=prefix,
                            var_dir=var_dir, consumer_batch_size=batch_size, log_level="WARNING")
    n = len(records)
    group = prefix + "indicators.facts"
    # As `cpts serve` runs it: what the process holds once started leaves the garbage collector's view.
    async with running_service(service, settings, freeze_heap=True) as client:
        configure_logging(service="bench", level="WARNING")
        database = Database(database_url, service.tables)
        try:
            warmed = 0
            if warm_up:
                # As the raw consumer's warm-up run: the first statements, connections and fetches of a
                # fresh process are not what a running service pays per event. Other CPTS, other ids.
                await send_all(bootstrap, prefix, warm_up)
                warmed = len(warm_up)
                while await processed(database, group) < warmed or await pending_snapshots(database):
                    await asyncio.sleep(0.05)
            outbox_before = await outbox_rows(database)
            target = consumed(prefix) + applications(records)
            meter = CpuMeter(postgres=database.dialect == "postgresql")
            spy = await start_sampling(py_spy, var_dir / "py-spy.txt") if py_spy else None
            meter.start()
            started = await send_all(bootstrap, prefix, records)
            sent_s = time.perf_counter() - started
            while consumed(prefix) < target:
                await asyncio.sleep(0.01)
            seconds = time.perf_counter() - started
            used = meter.stop()
            profile = await stop_sampling(spy, var_dir / "py-spy.txt") if spy else None
            applied = await processed(database, group)
            if applied != warmed + n:
                raise RuntimeError(f"{applied} events applied, {warmed + n} sent")
            # The snapshots wait for the backlog to be caught up (`snapshot_worker`): when they all are sent.
            while await pending_snapshots(database):
                await asyncio.sleep(0.05)
            snapshots_s = time.perf_counter() - started
            outbox = await outbox_rows(database) - outbox_before
            result = {"events": n, "seconds": round(seconds, 3), "events_per_second": round(n / seconds, 1),
                      "all_sent_s": round(sent_s, 3), "snapshots_written": outbox,
                      "snapshots_sent_s": round(snapshots_s, 3), "batch_size": batch_size,
                      "cpu": cpu_per_event(used, n, seconds)}
            if profile is not None:
                result["py_spy"] = profile
            result["latency"] = await latency(client, bootstrap, prefix, var_dir, latency_samples)
            return result
        finally:
            await database.dispose()


# Leaf-first: a sample is charged to the innermost frame belonging to one of these (file fragment, label).
SPY_OWNERS = [
    ("selectors.py", "waiting in epoll"), ("asyncpg/", "asyncpg"), ("sqlalchemy/", "SQLAlchemy"),
    ("pydantic", "pydantic"), ("aiokafka/", "aiokafka"), ("kafka/", "aiokafka"), ("structlog/", "logging"),
    ("logging/", "logging"), ("prometheus_client/", "metrics"), ("orjson", "orjson"),
    ("cpts_indicators/", "indicators code"), ("cpts_events/", "events code (decode)"),
    ("cpts_platform/", "platform code (consumer)"), ("uvloop/", "event loop"), ("asyncio/", "event loop"),
    ("indicators.py", "bench (producer side)"), ("outbox_pipeline.py", "bench (producer side)"),
]
# Inclusive: the share of the samples whose stack holds this function (file fragment, function name).
SPY_MARKERS = [("consumer.py", "EventConsumer._handle"), ("envelope.py", "decode"),
               ("consumer.py", "EventConsumer._apply"), ("consumer.py", "EventConsumer._record_processed"),
               ("consumers.py", "record_facts"), ("snapshots.py", "_before_commit"),
               ("snapshots.py", "changed_periods"), ("snapshots.py", "_insert_facts"),
               ("snapshots.py", "mark_pending"), ("consumer.py", "EventConsumer._commit"),
               ("consumer.py", "EventConsumer._log_handled"), ("fetcher.py", ""), ("indicators.py", "send_all"),
               ("snapshots.py", "snapshot_worker")]


async def start_sampling(py_spy: str, output: Path):
    """py-spy on this process (producer and service) for the measured window only."""
    process = await asyncio.create_subprocess_exec(
        py_spy, "record", "--pid", str(os.getpid()), "--rate", "250", "--format", "raw", "--nonblocking",
        "--output", str(output), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    await asyncio.sleep(1.0)  # attached
    return process


async def stop_sampling(process, output: Path) -> dict:
    process.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
    _, err = await process.communicate()
    if not output.exists():
        return {"error": f"py-spy exited {process.returncode}: {err.decode(errors='replace')[-300:]}"}
    owners: Counter = Counter()
    markers: Counter = Counter()
    total = 0
    for line in output.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        owner = next((label for frame in reversed(frames) for fragment, label in SPY_OWNERS if fragment in frame),
                     "other")
        owners[owner] += n
        for fragment, name in SPY_MARKERS:
            if any(fragment in f and (not name or f.startswith(name + " (")) for f in frames):
                markers[f"{name or fragment}"] += n
    kept = RESULTS.parent / f"indicators-py-spy-{output.parent.name}.txt"  # the collapsed stacks, for a closer look
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(output.read_bytes())
    return {"samples": total, "self_share": {k: round(v / total, 3) for k, v in owners.most_common()},
            "inclusive_share": {k: round(v / total, 3) for k, v in markers.most_common()}, "raw": str(kept)}


async def latency(client, bootstrap: str, prefix: str, var_dir: Path, samples: int) -> dict:
    """Published -> visible through the API, one request at a time."""
    issuer = LocalIssuer(var_dir / "local-issuer")
    headers = {"Authorization": f"Bearer {issuer.mint(subject='bench', roles=['ars'], departements=['69'])}"}
    cid = cpts_id(0)

    async def received_count() -> float | None:
        # One indicator for the current month: what a dashboard polling that figure reads.
        key = period_of(PeriodKind.MONTH, datetime.now(UTC)).key
        body = (await client.get(f"/indicators/cpts/{cid}/series/snp.requests.received",
                                 params={"period": "month", "from": key, "to": key}, headers=headers)).json()
        return body["points"][0]["value"]

    producer = new_producer(bootstrap, client_id="bench-latency")
    await producer.start()
    times = []
    try:
        before = await received_count()
        for k in range(samples):
            now = datetime.now(UTC)
            record = encode(_at(s.CareRequestReceived(
                request_id=f"lat-{k}", origin="sas", cpts_id=cid, commune_insee="69259", departement="69",
                urgency="24h", reason_category="fievre", has_mt=True, age_band="adult", received_at=now),
                now, SNP))
            started = time.perf_counter()
            await (await producer.send(prefix + record.topic, value=record.value, key=record.key,
                                       headers=record.headers))
            while True:
                value = await received_count()
                if value is not None and (before is None or value > before):
                    break
                await asyncio.sleep(0.01)
            times.append(time.perf_counter() - started)
            before = value
    finally:
        await producer.stop()
    times.sort()
    return {"samples": len(times), "p50_s": round(statistics.median(times), 3),
            "p95_s": round(times[max(0, int(round(0.95 * len(times))) - 1)], 3), "max_s": round(times[-1], 3)}


async def main_async(args) -> dict:
    configure_logging(service="bench", level="WARNING")
    events = generate(args.events, args.cpts)
    records = encoded(events)
    warm_up = encoded(generate(WARM_UP_EVENTS, 1, seed=2, first_cpts=900, tag="w"))
    # The events to send are the bench's, not the consumers' (in both runs): out of the collector's view.
    gc.collect()
    gc.freeze()
    mix: dict[str, int] = {}
    for e in events:
        mix[e.type.split(".")[-2]] = mix.get(e.type.split(".")[-2], 0) + 1
    broker = None
    bootstrap = args.bootstrap_servers
    if not bootstrap:
        broker = LocalBroker(port=free_port())
        broker.start()
        BROKER_PIDS.append(broker.process.pid)
        bootstrap = broker.bootstrap_servers
    results: dict = {"events": len(records), "cpts": args.cpts, "mix": mix, "cpus": os.cpu_count(),
                     "python": platform.python_version(), "at": datetime.now(UTC).isoformat(),
                     "load_before": os.getloadavg()}
    try:
        await raw_run(bootstrap, records[: min(2000, len(records))])  # warm-up
        raws = [await raw_run(bootstrap, records) for _ in range(args.raw_repeats)]
        raw = sorted(raws, key=lambda x: x["events_per_second"])[len(raws) // 2]
        results["raw"] = raw
        results["raw_runs"] = [x["events_per_second"] for x in raws]
        with tempfile.TemporaryDirectory() as tmp:
            for db in args.databases:
                pg_name = None
                if db == "sqlite":
                    url = f"sqlite+aiosqlite:///{tmp}/indicators-{uuid.uuid4().hex[:6]}.db"
                else:
                    pg_name, url = await asyncio.to_thread(create_postgres_database)
                try:
                    res = await indicators_run(bootstrap, records, url, Path(tmp) / f"var-{db}",
                                               batch_size=args.batch_size,
                                               latency_samples=args.latency_samples, warm_up=warm_up,
                                               py_spy=args.py_spy)
                finally:
                    if pg_name:
                        await asyncio.to_thread(drop_postgres_database, pg_name)
                res["ratio"] = round(res["events_per_second"] / raw["events_per_second"], 3)
                ok = res["ratio"] >= TARGET_RATIO and res["latency"]["p95_s"] < TARGET_P95_S
                res["verdict"] = "PASS" if ok else "FAIL"
                results[db] = res
    finally:
        if broker:
            broker.stop()
    results["load_after"] = os.getloadavg()
    return results


def loop_factory():
    """uvloop, as `cpts serve` runs a service (uvicorn's `loop="auto"`), for every measurement of the run."""
    try:
        import uvloop
    except ImportError:  # a platform without it: asyncio's loop, as uvicorn would fall back to
        return None
    return uvloop.new_event_loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--cpts", type=int, default=5)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default=None)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--raw-repeats", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="3 000 events, 20 latency samples, SQLite")
    parser.add_argument("--bootstrap-servers", default=os.environ.get("CPTS_BENCH_KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy executable: sample this process (producer and "
                        "service) over each measured window; shares by library and by step in the results")
    parser.add_argument("--check", action="store_true", help="exit 1 when a database does not PASS")
    args = parser.parse_args()
    if args.quick:
        args.events, args.latency_samples = 3000, 20
        args.database = args.database or "sqlite"
    if args.database is None:
        args.database = "both" if postgres_reachable() else "sqlite"
    args.databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        results = runner.run(main_async(args))
    raw = results["raw"]
    print(f"indicators consume-and-aggregate vs raw aiokafka - {results['events']} events, {args.cpts} CPTS, "
          f"{results['cpus']} CPUs, target ratio >= {TARGET_RATIO}, p95 < {TARGET_P95_S} s")
    print(f"{'measurement':<24}{'events/s':>10}{'seconds':>9}{'ratio':>8}{'p95 s':>8}{'snapshots':>11}"
          f"{'sent at s':>11}  verdict")
    print("-" * 80)
    print(f"{'raw aiokafka':<24}{raw['events_per_second']:>10,.0f}{raw['seconds']:>9.2f}")
    for db in args.databases:
        res = results[db]
        print(f"{'indicators ' + db:<24}{res['events_per_second']:>10,.0f}{res['seconds']:>9.2f}"
              f"{res['ratio']:>8.3f}{res['latency']['p95_s']:>8.3f}{res['snapshots_written']:>11}"
              f"{res['snapshots_sent_s']:>11.2f}  {res['verdict']}")
    print(f"  raw runs: {results['raw_runs']} events/s (median used); mix: {results['mix']}")
    print("  CPU microseconds per event (cores busy), this process holding the producer and the consumer side:")
    for name, run in [("raw", raw), *((db, results[db]) for db in args.databases)]:
        parts = ", ".join(f"{k} {v:,.1f}" for k, v in run["cpu"]["us_per_event"].items())
        print(f"    {name}: {parts}; total {sum(run['cpu']['us_per_event'].values()):,.1f} "
              f"({run['cpu']['cores_busy']:.2f})")
    for db in args.databases:
        spy = results[db].get("py_spy")
        if spy and "error" not in spy:
            print(f"  {db}: py-spy over the window, {spy['samples']} samples; self: "
                  + ", ".join(f"{k} {v:.0%}" for k, v in spy["self_share"].items()))
            print(f"  {db}: py-spy inclusive: " + ", ".join(f"{k} {v:.0%}" for k, v in spy["inclusive_share"].items()))
        elif spy:
            print(f"  {db}: py-spy failed: {spy['error']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    if args.check and any(results[db]["verdict"] != "PASS" for db in args.databases):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
