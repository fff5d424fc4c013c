"""Load test of snp-dispatch: concurrent regulators searching and booking while slots are being published.

    .venv/bin/python bench/load.py [--database sqlite|postgresql|both] [--regulators 50]
                                   [--publications-per-second 200] [--seconds 120] [--quick]

The service runs as `cpts serve` runs it (uvicorn, its lifespan: outbox relay, consumers) in its own process,
with the local broker, on a Rhône-sized dataset (the same generator as `bench/snp_dispatch.py`: GPs at the
commune points, SAS participants, free slots over the SAS window). During `--seconds`:

- `--regulators` regulators work in a closed loop: create a care request (`POST /care-requests`), get its
  ranked cards (`GET .../candidates`), hold one of the first free slots (`POST /slots/{id}/hold`), book it
  (`POST /appointments` with the hold), pausing `--think-seconds` (on average) after creating the request and
  after reading the cards, as a regulator does on the phone (`--think-seconds 0`: as fast as the service
  answers, a stress far beyond fifty people). A 409 (another regulator was
  faster on that slot) is the expected answer of a race, not an error: the regulator takes the next slot of
  the cards (up to 3 tries), then closes the request with an orientation when nothing is left.
- publishers send `--publications-per-second` new slots a second in an open loop (requests leave at fixed
  instants whatever the service does; latency counts from that instant): `POST /slots` of
  `--slots-per-request` 15-minute slots each, each professional on their own days ahead, so no publication
  overlaps another.

Counted as errors: any 5xx, any transport error or timeout, any 4xx other than the 409 of a race. Reported:
throughput and p50/p95/p99 per operation, journeys completed, and after the run, from the database: live
appointments per slot (any slot with two is a double booking), appointments = 201 bookings, slots published
= slots acknowledged, care requests booked = bookings. Exit status 1 when an error or a double booking is
found, or when the publications fall behind their rate by more than 5 %. Results in `bench/results/load.json`
(git-ignored). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
import snp_dispatch as sd  # noqa: E402  (the dataset, seed and service process of the snp-dispatch bench)

from cpts_platform.auth import LocalIssuer  # noqa: E402
from cpts_snp_dispatch.domain.slots import PARIS  # noqa: E402

RESULTS = sd.ROOT / "bench" / "results" / "load.json"
ORIENTATION = {"orientation": "mmg", "reason": "no_slot_in_window"}


class Recorder:
    """Latencies and statuses per operation; errors kept with a short sample of their answers."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.statuses: dict[str, Counter] = {}
        self.errors: Counter = Counter()
        self.samples: list[str] = []

    def add(self, operation: str, status: int | str, started: float, *, expected: tuple[int, ...],
            text: str = "") -> None:
        self.latencies.setdefault(operation, []).append((time.perf_counter() - started) * 1000)
        self.statuses.setdefault(operation, Counter())[str(status)] += 1
        if status not in expected:
            self.errors[f"{operation} {status}"] += 1
            if len(self.samples) < 10:
                self.samples.append(f"{operation} {status}: {text[:200]}")

    def report(self, seconds: float) -> dict:
        return {operation: {"count": len(values), "per_second": round(len(values) / seconds, 1),
                            "statuses": dict(self.statuses[operation]), "latency_ms": sd.summary(values)}
                for operation, values in sorted(self.latencies.items())}


async def call(client: httpx.AsyncClient, recorder: Recorder, operation: str, method: str, path: str, *,
               expected: tuple[int, ...], **kwargs) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        recorder.add(operation, type(exc).__name__, started, expected=expected, text=repr(exc))
        return None
    recorder.add(operation, response.status_code, started, expected=expected, text=response.text)
    return response


async def regulator(client: httpx.AsyncClient, headers: dict, recorder: Recorder, rng: random.Random,
                    bodies: list[dict], stop_at: float, journeys: Counter, booked: list[str], think: float) -> None:
    async def pause() -> None:
        if think:
            await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))

    await asyncio.sleep(rng.uniform(0, think))  # the regulators do not all start at the same instant
    while time.monotonic() < stop_at:
        body = rng.choice(bodies)
        created = await call(client, recorder, "care_request", "POST", "/care-requests", json=body, headers=headers,
                             expected=(201,))
        if created is None or created.status_code != 201:
            journeys["failed"] += 1
            continue
        request_id = created.json()["request_id"]
        await pause()
        cards = await call(client, recorder, "search", "GET", f"/care-requests/{request_id}/candidates",
                           headers=headers, expected=(200,))
        if cards is None or cards.status_code != 200:
            journeys["failed"] += 1
            continue
        free = [s for card in cards.json()["cards"] for day in card["slots"].values() for s in day if s["bookable"]]
        await pause()
        outcome = "closed"
        for slot in free[:3]:
            hold = await call(client, recorder, "hold", "POST", f"/slots/{slot['slot_id']}/hold", headers=headers,
                              json={"request_id": request_id}, expected=(201, 409))
            if hold is None or hold.status_code != 201:
                continue
            book = await call(client, recorder, "book", "POST", "/appointments", headers=headers, expected=(201, 409),
                              json={"slot_id": slot["slot_id"], "request_id": request_id,
                                    "hold_id": hold.json()["hold_id"]})
            if book is not None and book.status_code == 201:
                booked.append(slot["slot_id"])
                outcome = "booked"
                break
        if outcome == "closed":
            await call(client, recorder, "close", "POST", f"/care-requests/{request_id}/close", headers=headers,
                       json=ORIENTATION, expected=(200,))
        journeys[outcome] += 1


def publication_plan(data: sd.Dataset, per_request: int, total_requests: int) -> list[dict]:
    """Bodies of `POST /slots`: each professional publishes on their own days from day+3 on, 08:00-20:00 Paris,
    so no two publications overlap."""
    first_day = data.now.astimezone(PARIS).date() + timedelta(days=3)
    professionals = [p for p in data.professionals if not p.fresh]
    per_day = 48 // per_request
    bodies = []
    for k in range(total_requests):
        p = professionals[k % len(professionals)]
        turn = k // len(professionals)
        day, block = divmod(turn, per_day)
        first = datetime.combine(first_day + timedelta(days=3 + day), clock(8), PARIS) + timedelta(
            minutes=15 * per_request * block)
        bodies.append({"idnps": p.idnps, "site_id": p.sites[0]["site_id"], "slots": [
            {"start": (first + timedelta(minutes=15 * i)).isoformat(),
             "end": (first + timedelta(minutes=15 * (i + 1))).isoformat(),
             "visibility": ["SNP", "PRO"]} for i in range(per_request)]})
    return bodies


async def publisher(client: httpx.AsyncClient, headers: dict, recorder: Recorder, bodies: list[dict],
                    rate: float, seconds: float, published: list[int]) -> dict:
    """Open loop: request k leaves at start + k / rate; its latency counts from that instant."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    pending: set[asyncio.Task] = set()
    total = min(len(bodies), int(rate * seconds))
    late = 0

    async def send(k: int, planned: float) -> None:
        body = bodies[k]
        sent = time.perf_counter() - max(0.0, loop.time() - planned)
        try:
            response = await client.post("/slots", json=body, headers=headers)
        except httpx.HTTPError as exc:
            recorder.add("publish", type(exc).__name__, sent, expected=(201,), text=repr(exc))
            return
        recorder.add("publish", response.status_code, sent, expected=(201,), text=response.text)
        if response.status_code == 201:
            published.append(len(body["slots"]))

    for k in range(total):
        planned = start + k / rate
        delay = planned - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.5:
            late += 1
        task = asyncio.create_task(send(k, planned))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return {"requests": total, "sent_late_by_over_500ms": late,
            "wall_s": round(loop.time() - start, 2)}


async def verify(url: str, booked_slots: list[str], booked_count: int, published_slots: int, seeded_slots: int
                 ) -> dict:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            live = (await connection.execute(sa.text(
                "SELECT slot_id, COUNT(*) FROM appointment WHERE status IN ('booked', 'fulfilled', 'noshow') "
                "AND slot_id IS NOT NULL GROUP BY slot_id HAVING COUNT(*) > 1"))).all()
            appointments = (await connection.execute(sa.text(
                "SELECT COUNT(*) FROM appointment WHERE status = 'booked'"))).scalar_one()
            slots = (await connection.execute(sa.text("SELECT COUNT(*) FROM slot"))).scalar_one()
            booked_slot_rows = (await connection.execute(sa.text(
                "SELECT COUNT(*) FROM slot WHERE status = 'booked'"))).scalar_one()
            requests_booked = (await connection.execute(sa.text(
                "SELECT COUNT(*) FROM care_request WHERE status = 'booked'"))).scalar_one()
    finally:
        await engine.dispose()
    checks = {"double_bookings": len(live), "appointments": appointments, "bookings_acknowledged": booked_count,
              "distinct_slots_booked": len(set(booked_slots)), "slots_in_status_booked": booked_slot_rows,
              "care_requests_booked": requests_booked, "slots_in_table": slots,
              "slots_expected": seeded_slots + published_slots}
    checks["pass"] = (not live and appointments == booked_count == len(set(booked_slots)) == booked_slot_rows
                      == requests_booked and slots == seeded_slots + published_slots)
    return checks


async def run_database(kind: str, args, bootstrap: str) -> dict:
    from cpts_platform.dev.broker import free_port

    workdir = Path(tempfile.mkdtemp(prefix="cpts-bench-load-"))
    pg_name = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'snp-dispatch.db'}"
    else:
        from cpts_platform.testing import create_postgres_database

        pg_name, url = await asyncio.to_thread(create_postgres_database)
    out: dict = {"database": kind}
    server = None
    try:
        data = sd.generate(args.seed, args.professionals, args.slots, 0, datetime.now(UTC))
        print(f"\n[{kind}] seeding {len(data.professionals):,} professionals and {len(data.slot_rows):,} slots ...",
              flush=True)
        out["seed"] = await sd.seed(url, data)
        var_dir = workdir / "var"
        issuer = LocalIssuer(var_dir / "local-issuer")
        issuer.ensure_key()
        port = free_port()
        server = sd.ServiceProcess({"url": url, "var_dir": str(var_dir), "bootstrap": bootstrap,
                                    "prefix": f"l{uuid.uuid4().hex[:10]}.", "port": port, "log_level": "INFO",
                                    "log_path": str(workdir / "service.log"),
                                    "err_path": str(workdir / "service.err")})
        limits = httpx.Limits(max_connections=args.regulators + 200, max_keepalive_connections=args.regulators + 200)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                     timeout=args.timeout) as client:
            out["service_start_s"] = round(await server.start(client), 2)
            rng = random.Random(args.seed + 2)
            bodies = sd.search_request_bodies(rng, data, 500)
            publisher_headers = {"Authorization": "Bearer " + issuer.mint(subject="bench-publisher", roles=["admin"])}
            plan = publication_plan(data, args.slots_per_request,
                                    int(args.publications_per_second / args.slots_per_request * args.seconds) + 1)
            recorder = Recorder()
            journeys: Counter = Counter()
            booked: list[str] = []
            published: list[int] = []
            print(f"[{kind}] {args.regulators} regulators searching and booking, "
                  f"{args.publications_per_second:g} slots/s published, for {args.seconds:g} s ...", flush=True)
            meter = sd.CpuMeter(server.pid, None, kind == "postgresql")
            before = meter.snapshot()
            started = time.monotonic()
            stop_at = started + args.seconds
            regulators = [asyncio.create_task(regulator(
                client, {"Authorization": "Bearer " + issuer.mint(subject=f"regulator-{i}", roles=["regulator"],
                                                                   departements=[sd.DEPARTEMENT])},
                recorder, random.Random(i), bodies, stop_at, journeys, booked, args.think_seconds))
                for i in range(args.regulators)]
            publishing = await publisher(client, publisher_headers, recorder, plan,
                                         args.publications_per_second / args.slots_per_request, args.seconds,
                                         published)
            await asyncio.gather(*regulators)
            elapsed = time.monotonic() - started
            out["cpu"] = meter.since(before)
        out["seconds"] = round(elapsed, 1)
        out["operations"] = recorder.report(elapsed)
        out["journeys"] = dict(journeys)
        out["journeys_per_second"] = round(sum(journeys.values()) / elapsed, 1)
        out["publication"] = {**publishing, "slots_acknowledged": sum(published),
                              "slots_per_second": round(sum(published) / elapsed, 1)}
        out["errors"] = dict(recorder.errors)
        out["error_samples"] = recorder.samples
        server.stop()
        server = None
        out["checks"] = await verify(url, booked, len(booked), sum(published), len(data.slot_rows))
        service_errors = sd.service_errors(workdir / "service.err")
        out["service_errors"] = service_errors
        behind = sum(published) < 0.95 * args.publications_per_second * args.seconds
        out["pass"] = not recorder.errors and out["checks"]["pass"] and not behind
        return out
    finally:
        if server is not None:
            server.stop()
        if pg_name:
            from cpts_platform.testing import drop_postgres_database

            await asyncio.to_thread(drop_postgres_database, pg_name)


def print_result(r: dict) -> None:
    print(f"\n[{r['database']}] {r['seconds']} s: {r['journeys']} ({r['journeys_per_second']} journeys/s); "
          f"slots published {r['publication']['slots_acknowledged']:,} ({r['publication']['slots_per_second']}/s)")
    print(f"  {'operation':<14}{'count':>8}{'per s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  statuses")
    for name, o in r["operations"].items():
        lat = o["latency_ms"]
        print(f"  {name:<14}{o['count']:>8}{o['per_second']:>8}{lat['p50']:>9}{lat['p95']:>9}{lat['p99']:>9}  "
              f"{o['statuses']}")
    print(f"  errors: {r['errors'] or 'none'}; checks: {r['checks']}; CPU: {r.get('cpu')}")
    print(f"  {'PASS' if r['pass'] else 'FAIL'}")


async def main_async(args, kinds: list[str]) -> dict:
    from cpts_platform.dev.broker import LocalBroker, free_port

    sd.quiet_logging()
    results = {"argv": sys.argv[1:], "started_at": datetime.now(UTC).isoformat(), "runs": []}
    broker = LocalBroker(port=free_port())
    broker.start()
    try:
        for kind in kinds:
            result = await run_database(kind, args, broker.bootstrap_servers)
            print_result(result)
            results["runs"].append(result)
    finally:
        broker.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default=None,
                        help="default: both when PostgreSQL answers at 127.0.0.1:5432, else sqlite")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 s, smaller dataset")
    parser.add_argument("--regulators", type=int, default=50)
    parser.add_argument("--publications-per-second", type=float, default=200.0, help="slots published a second")
    parser.add_argument("--slots-per-request", type=int, default=8)
    parser.add_argument("--think-seconds", type=float, default=3.0,
                        help="a regulator's pause between reading the cards and holding, and after creating the "
                             "request (uniform 0.5x-1.5x); 0: the stress variant, each regulator as fast as "
                             "the service answers")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--professionals", type=int)
    parser.add_argument("--slots", type=int)
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout of one request (s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (20.0 if args.quick else 120.0)
    args.professionals = args.professionals or (500 if args.quick else 2000)
    args.slots = args.slots or (10_000 if args.quick else 50_000)
    if args.database is None:
        from cpts_platform.testing import postgres_reachable

        args.database = "both" if postgres_reachable() else "sqlite"
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    results = asyncio.run(main_async(args, kinds))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {RESULTS.relative_to(sd.ROOT)}")
    return 0 if all(r["pass"] for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
