"""Replay of a large event history into a fresh indicators service: time and peak memory.

    .venv/bin/python bench/indicators_replay.py [--events 1000000] [--database sqlite|postgresql] [--cpts 20]

What a rebuild does in production: the indicators service starts on an empty database with a new consumer
group and reads the registry and snp-dispatch topics from the beginning (after `cpts replay` has put the
services' outbox history back on a fresh broker, or from the topics' own retention).

1. `--events` events (the generator of `bench/indicators.py`: CPTS and professionals, then three months of
   slots, care requests, appointments and outcomes) are encoded and sent to the local broker in chunks, so this
   process never holds them all; sending is timed apart.
2. The service runs as `cpts serve indicators` runs it, in its own process; the clock starts when it is
   started. Its progress is read from `processed_event` every few seconds, its memory from
   `/proc/<pid>/status` (VmRSS now, VmHWM the peak).
3. Done when every event is in `processed_event`; then the facts, snapshots and database size are counted.

Results on stdout and in `bench/results/indicators_replay.json` (git-ignored).
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
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import indicators as ib  # noqa: E402  (the event generator of the indicators bench)

from cpts_events import encode, topics  # noqa: E402
from cpts_indicators.app import service  # noqa: E402
from cpts_platform.db import Database  # noqa: E402
from cpts_platform.dev.broker import LocalBroker, free_port  # noqa: E402
from cpts_platform.kafka import ensure_topics, new_producer  # noqa: E402
from cpts_platform.testing import create_postgres_database, drop_postgres_database, postgres_reachable  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)
RESULTS = ib.ROOT / "bench" / "results" / "indicators_replay.json"


def memory_of(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return found


async def send_history(bootstrap: str, prefix: str, n: int, n_cpts: int, chunk: int = 20_000) -> dict:
    producer = new_producer(bootstrap, client_id="bench-replay-producer")
    await producer.start()
    started = time.perf_counter()
    sent = 0
    try:
        batch = []
        for event in ib.iter_events(n, n_cpts):
            batch.append(encode(event))
            if len(batch) >= chunk:
                sent += await _send(producer, prefix, batch)
                batch = []
                print(f"  sent {sent:,} / {n:,}", end="\r", flush=True)
        if batch:
            sent += await _send(producer, prefix, batch)
    finally:
        await producer.stop()
    seconds = time.perf_counter() - started
    print()
    return {"events": sent, "seconds": round(seconds, 1), "events_per_second": round(sent / seconds)}


async def _send(producer, prefix: str, records) -> int:
    futures = [await producer.send(prefix + rec.topic, value=rec.value, key=rec.key, headers=rec.headers)
               for rec in records]
    await asyncio.gather(*futures)
    return len(records)


async def count(database: Database, query: str) -> int:
    async with database.sessions() as session:
        return (await session.execute(sa.text(query))).scalar_one()


async def run(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="cpts-bench-replay-"))
    pg_name = None
    if args.database == "postgresql":
        pg_name, url = await asyncio.to_thread(create_postgres_database)
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'indicators.db'}"
    broker = LocalBroker(port=free_port())
    broker.start()
    process = None
    database = Database(url, service.tables)
    out: dict = {"database": args.database, "events": args.events, "cpts": args.cpts,
                 "started_at": datetime.now(UTC).isoformat()}
    try:
        prefix = f"r{uuid.uuid4().hex[:8]}."
        await ensure_topics(broker.bootstrap_servers, [prefix + t for t in (
            topics.REGISTRY, topics.SNP_DISPATCH, topics.PATIENT_MATCHING, topics.INDICATORS)])
        print(f"sending {args.events:,} events to the local broker ...", flush=True)
        out["send"] = await send_history(broker.bootstrap_servers, prefix, args.events, args.cpts)

        port = free_port()
        env = {**os.environ, "CPTS_PROFILE": "local", "CPTS_VAR_DIR": str(workdir / "var"),
               "CPTS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "CPTS_KAFKA_TOPIC_PREFIX": prefix,
               "CPTS_LOG_LEVEL": "WARNING", "CPTS_INDICATORS_DATABASE_URL": url,
               "CPTS_INDICATORS_HTTP_PORT": str(port)}
        log = open(workdir / "indicators.log", "wb")  # noqa: SIM115
        print(f"replaying into a fresh indicators service ({args.database}) ...", flush=True)
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "cpts_cli.main", "serve", "indicators"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        group = prefix + "indicators.facts"
        progress = []
        done = 0
        while done < out["send"]["events"]:
            await asyncio.sleep(args.poll_seconds)
            if process.poll() is not None:
                raise RuntimeError(f"the service exited: {(workdir / 'indicators.log').read_text()[-2000:]}")
            try:
                done = await count(database, "SELECT count(*) FROM processed_event WHERE consumer_group = "
                                             f"'{group}'")
            except Exception:  # before the service has migrated its database
                continue
            elapsed = time.perf_counter() - started
            progress.append({"s": round(elapsed, 1), "events": done, **memory_of(process.pid)})
            print(f"  {elapsed:7.1f} s  {done:>9,} events  {done / elapsed:7.0f} ev/s  "
                  f"RSS {progress[-1].get('VmRSS')} MiB (peak {progress[-1].get('VmHWM')})", flush=True)
            if elapsed > args.timeout:
                raise RuntimeError(f"not done within {args.timeout} s")
        seconds = time.perf_counter() - started
        memory = memory_of(process.pid)
        async with httpx.AsyncClient() as client:
            ready = (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code
        out["replay"] = {"seconds": round(seconds, 1), "events_per_second": round(done / seconds),
                         "peak_rss_mib": memory.get("VmHWM"), "rss_at_end_mib": memory.get("VmRSS"),
                         "ready_at_end": ready == 200}
        out["facts"] = await count(database, "SELECT count(*) FROM indicator_fact")
        out["snapshots"] = await count(database, "SELECT count(*) FROM indicator_snapshot")
        if args.database == "sqlite":
            out["database_mib"] = round(sum(p.stat().st_size for p in workdir.glob("indicators.db*")) / 2**20, 1)
        else:
            out["database_mib"] = round(await count(database, "SELECT pg_database_size(current_database())")
                                        / 2**20, 1)
        out["progress"] = progress
        return out
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        await database.dispose()
        broker.stop()
        if pg_name:
            await asyncio.to_thread(drop_postgres_database, pg_name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cpts", type=int, default=20)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default=None,
                        help="default: postgresql when it answers at 127.0.0.1:5432, else sqlite")
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=7200.0)
    args = parser.parse_args()
    args.database = args.database or ("postgresql" if postgres_reachable() else "sqlite")
    result = asyncio.run(run(args))
    r = result["replay"]
    print(f"\nreplay of {result['send']['events']:,} events ({args.database}): {r['seconds']} s, "
          f"{r['events_per_second']:,} events/s, peak RSS {r['peak_rss_mib']} MiB; {result['facts']:,} facts, "
          f"{result['snapshots']:,} snapshots, database {result['database_mib']} MiB")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"results: {RESULTS.relative_to(ib.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
