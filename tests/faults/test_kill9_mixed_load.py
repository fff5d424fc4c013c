"""Each service killed with SIGKILL in turn during a mixed load: afterwards every state and every indicator
equals what the load got acknowledged, each event applied once (checked against the outboxes, and against an
indicators service that was never killed, fed by a replay of the same outboxes)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cpts_platform.testing import wait_for

pytestmark = pytest.mark.system

SERVICES = ["registry", "snp-dispatch", "patient-matching", "indicators"]
ITERATIONS = 100
PARIS = ZoneInfo("Europe/Paris")


def replay_into(stack, services, topic_prefix: str) -> int:
    """Re-publish the services' outbox histories under another topic prefix."""
    from cpts_cli.services import load_service
    from cpts_platform.db import Database
    from cpts_platform.kafka import new_producer
    from cpts_platform.outbox import replay

    async def go() -> int:
        total = 0
        producer = new_producer(stack.bootstrap, client_id="faults-oracle-replay")
        await producer.start()
        try:
            for service in services:
                database = Database(stack.database_urls[service], load_service(service).tables)
                try:
                    total += await replay(database=database, producer=producer, topic_prefix=topic_prefix)
                finally:
                    await database.dispose()
        finally:
            await producer.stop()
        return total

    return asyncio.run(go())


def test_every_service_killed_mid_load_loses_nothing_and_applies_nothing_twice(unmasked, faults, tmp_path):
    stack = unmasked
    faults.long_suite(stack)
    for name in SERVICES:
        stack.start(name)
    stack.wait_ready(*SERVICES, timeout=180)
    effecteurs = faults.seed_territory(stack)
    load = faults.MixedLoad(stack, effecteurs, iterations=ITERATIONS)
    worker = threading.Thread(target=load.run)
    started = time.monotonic()
    worker.start()

    downtimes = {}
    for n, victim in enumerate(SERVICES, start=1):
        wait_for(
            lambda: load.ledger.iterations,
            lambda done, n=n: done >= n * ITERATIONS // 5 or not worker.is_alive(),
            timeout=300,
        )
        killed_at = time.monotonic()
        stack.kill(victim)
        time.sleep(0.5)
        stack.start(victim)
        stack.wait_ready(victim, timeout=180)
        downtimes[victim] = round(time.monotonic() - killed_at, 1)
    worker.join(timeout=600)
    assert load.error is None, load.error
    ledger = load.ledger
    assert ledger.iterations == ITERATIONS
    load_seconds = round(time.monotonic() - started, 1)

    faults.wait_outboxes_drained(stack, SERVICES)
    applied = faults.wait_consumers_caught_up(stack)

    # snp-dispatch: every acknowledged slot, request and appointment is there; none twice on a slot.
    dispatch = stack.database_urls["snp-dispatch"]
    unknown = ledger.unknown
    slots = dict(faults.query(dispatch, "SELECT slot_id, status FROM slot"))
    assert set(ledger.slots) <= set(slots)
    assert len(ledger.slots) <= len(slots) <= len(ledger.slots) + unknown.get("slot", 0)
    requests = {r for (r,) in faults.query(dispatch, "SELECT request_id FROM care_request")}
    assert set(ledger.requests) <= requests
    assert len(requests) <= len(ledger.requests) + unknown.get("care_request", 0)
    appointments = dict(
        faults.query(
            dispatch,
            "SELECT appointment_id, slot_id FROM appointment "
            "WHERE status IN ('booked', 'fulfilled', 'noshow')",
        )
    )
    assert set(ledger.appointments.items()) <= set(appointments.items())
    assert len(appointments) <= len(ledger.appointments) + unknown.get("appointment", 0)
    assert len(set(appointments.values())) == len(appointments), "a slot booked twice"
    assert all(slots[slot_id] == "booked" for slot_id in appointments.values())
    outcome_lost = unknown.get("outcome", 0)

    # patient-matching: acknowledged enrolments, referrals from the SAS bookings, proposals of the rounds.
    matching = stack.database_urls["patient-matching"]
    patients = dict(faults.query(matching, "SELECT patient_id, source FROM patient"))
    assert set(ledger.patients) <= set(patients)
    guichet = [p for p, source in patients.items() if source == "guichet"]
    assert len(guichet) <= len(ledger.patients) + unknown.get("patient", 0)
    referrals = faults.scalar(
        dispatch,
        "SELECT count(*) FROM outbox_event WHERE event_type = 'fr.cpts.snp.patient_without_mt.seen.v1'",
    )
    snp_patients = [p for p, source in patients.items() if source == "snp"]
    assert len(ledger.referred_requests) <= referrals <= len(ledger.referred_requests) + outcome_lost
    assert len(snp_patients) == referrals
    proposals = faults.scalar(matching, "SELECT count(*) FROM proposal")
    if not unknown.get("round"):
        assert proposals == ledger.proposals

    # Indicators: the figures the load implies, and every value equal to a never-killed indicators service's.
    admin = faults.auth(stack, "admin")
    values = faults.indicator_values(stack.url("indicators"), admin)
    this_month = datetime.now(PARIS).strftime("%Y-%m")
    slots_this_month = sum(
        1
        for start in (
            r[0] for r in faults.query(dispatch, "SELECT start FROM slot WHERE status <> 'withdrawn'")
        )
        if _month(start) == this_month
    )
    assert values["snp.requests.received"][0] == len(requests)
    assert values["snp.appointments.booked"][0] == len(appointments)
    assert values["snp.slots.count"][0] == slots_this_month
    assert values["mt.patients.enrolled"][0] == len(patients)
    assert values["mt.proposals.made"][0] == proposals

    oracle_prefix = stack.env["CPTS_KAFKA_TOPIC_PREFIX"].rstrip(".") + "o."
    (tmp_path / "oracle").mkdir(exist_ok=True)
    oracle = type(stack)(
        var_dir=tmp_path / "oracle",
        bootstrap=stack.bootstrap,
        topic_prefix=oracle_prefix,
        database_urls={
            name: f"sqlite+aiosqlite:///{tmp_path / 'oracle' / (name + '.db')}" for name in SERVICES
        },
    )
    oracle.env["CPTS_INDICATORS_SMALL_CELL_THRESHOLD"] = "1"
    try:
        oracle.start("indicators")
        oracle.wait_ready("indicators", timeout=180)
        replayed = replay_into(stack, ["registry", "snp-dispatch", "patient-matching"], oracle_prefix)
        facts = applied["indicators.facts"]
        wait_for(
            lambda: faults.scalar(
                oracle.database_urls["indicators"],
                "SELECT count(*) FROM processed_event WHERE consumer_group = :g",
                g=oracle_prefix + "indicators.facts",
            ),
            lambda n: n >= facts,
            timeout=120,
        )
        oracle_admin = faults.auth(oracle, "admin")
        expected = wait_for(
            lambda: faults.indicator_values(oracle.url("indicators"), oracle_admin),
            lambda v: v["mt.proposals.made"][0] == proposals,
            timeout=30,
        )
    finally:
        oracle.stop()
    differing = {k: (values[k], expected[k]) for k in expected if values.get(k) != expected[k]}
    assert not differing

    faults.figures(
        "kill -9 mixed load",
        database=stack.database_urls["registry"].split(":")[0],
        iterations=ledger.iterations,
        load_seconds=load_seconds,
        kills=len(downtimes),
        downtime_seconds=downtimes,
        slots=len(slots),
        care_requests=len(requests),
        searches=ledger.searches,
        appointments=len(appointments),
        patients=len(patients),
        rounds=ledger.rounds,
        proposals=proposals,
        unknown_outcomes=dict(unknown),
        refused=dict(ledger.refused),
        events_applied=sum(applied.values()),
        events_replayed_to_oracle=replayed,
        indicators_compared=len(expected),
        rows_compared=len(slots) + len(requests) + len(appointments) + len(patients) + proposals,
    )


def _month(value) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(PARIS).strftime("%Y-%m")
