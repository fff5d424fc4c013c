"""The broker stopped for 30 s (`CPTS_FAULTS_BROKER_OUTAGE_SECONDS`) then restarted empty (memory only): the
services stay up, say so on `/readyz`, keep serving reads and accepting writes into their outboxes; afterwards
`cpts topics` and `cpts replay` refill the broker, the consumers catch up, and the indicators are the figures
of before the outage plus what was written during it."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import httpx
import pytest

from cpts_platform.dev.broker import LocalBroker, free_port
from cpts_platform.kafka import ensure_topics, platform_topics
from cpts_platform.testing import wait_for

pytestmark = pytest.mark.system

SERVICES = ["registry", "snp-dispatch", "patient-matching", "indicators"]
PRODUCERS = ["registry", "snp-dispatch", "patient-matching", "indicators"]


def pending_metric(stack, service: str) -> float | None:
    text = httpx.get(f"{stack.url(service)}/metrics", timeout=5).text
    found = re.search(rf'^cpts_outbox_pending_events\{{service="{service}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_broker_outage_keeps_the_services_up_and_loses_no_event(unmasked, faults, tmp_path):
    stack = unmasked
    faults.long_suite(stack)
    broker = LocalBroker(port=free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    stack.bootstrap = broker.bootstrap_servers
    stack.env["CPTS_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    try:
        _outage(stack, broker, faults)
    finally:
        stack.stop()
        broker.stop()


def _outage(stack, broker: LocalBroker, faults) -> None:
    cpts = faults.CPTS
    admin = faults.auth(stack, "admin")
    secretary = faults.auth(stack, "secretary", cpts_ids=[cpts])
    for name in SERVICES:
        stack.start(name)
    stack.wait_ready(*SERVICES, timeout=180)
    registry, matching = stack.url("registry"), stack.url("patient-matching")

    def register(n: int) -> httpx.Response:
        return httpx.post(
            f"{registry}/professionals",
            headers=admin,
            timeout=30,
            json={
                "idnps": f"8{10_000_000_000 + n:011d}",
                "family_name": "Test",
                "given_name": f"P{n}",
                "profession_code": "10",
                "specialty_code": "SM54",
                "commune_insee": "69259",
                "cpts_ids": [cpts],
            },
        )

    def enrol(n: int) -> httpx.Response:
        return httpx.post(
            f"{matching}/cpts/{cpts}/patients",
            headers=secretary,
            timeout=30,
            json={
                "identity": {
                    "birth_name": "MARTIN",
                    "first_names": "Jeanne",
                    "birth_date": f"19{40 + n}-02-03",
                    "sex": "F",
                },
                "commune_insee": "69259",
                "consent": True,
            },
        )

    created = httpx.post(
        f"{registry}/cpts",
        headers=admin,
        json={"cpts_id": cpts, "name": "CPTS test", "communes": ["69259", "69290"]},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    for n in range(8):
        assert register(n).status_code == 201
    wait_for(lambda: enrol(0), lambda r: r.status_code in (200, 201), timeout=60)  # once it knows the CPTS
    for n in range(1, 6):
        assert enrol(n).status_code == 201
    faults.wait_outboxes_drained(stack, PRODUCERS)
    faults.wait_consumers_caught_up(stack)
    before = faults.indicator_values(stack.url("indicators"), admin)
    assert before["registry.members"][0] == 8 and before["mt.patients.enrolled"][0] == 6

    # The outage.
    stopped_at = time.monotonic()
    broker.stop()
    for name in SERVICES:
        wait_for(
            lambda n=name: httpx.get(f"{stack.url(n)}/readyz", timeout=5),
            lambda r: r.status_code == 503 and r.json()["checks"]["broker"] == "unreachable",
            timeout=30,
        )
        assert httpx.get(f"{stack.url(name)}/healthz", timeout=5).status_code == 200
    detected = round(time.monotonic() - stopped_at, 1)
    write_latencies = []
    for n in range(8, 12):
        sent = time.monotonic()
        assert register(n).status_code == 201
        write_latencies.append(time.monotonic() - sent)
    for n in range(6, 9):
        sent = time.monotonic()
        assert enrol(n).status_code == 201
        write_latencies.append(time.monotonic() - sent)
    found = httpx.get(
        f"{registry}/professionals", headers=admin, params={"cpts_id": cpts, "limit": 100}, timeout=10
    )
    assert found.status_code == 200 and found.json()["total"] == 12
    waiting = httpx.get(
        f"{matching}/cpts/{cpts}/patients", headers=secretary, params={"limit": 1}, timeout=10
    )
    assert waiting.status_code == 200 and waiting.json()["total"] == 9
    assert faults.indicator_values(stack.url("indicators"), admin) == before  # reads keep working
    assert faults.pending_outbox(stack, "registry") == 4
    assert faults.pending_outbox(stack, "patient-matching") >= 3
    wait_for(lambda: pending_metric(stack, "registry"), lambda v: v == 4, timeout=30)
    time.sleep(max(0.0, faults.outage_seconds - (time.monotonic() - stopped_at)))
    assert all(process.poll() is None for process in stack.processes.values())
    outage = round(time.monotonic() - stopped_at, 1)
    for name in SERVICES:
        assert httpx.get(f"{stack.url(name)}/readyz", timeout=5).status_code == 503

    # Back, empty: topics, then each service's outbox history.
    broker.start()
    restarted_at = time.monotonic()
    # What `cpts topics` does, at once: a relay publishing to a topic the memory-only broker does not know
    # yet would have it create the topic on the fly, and the replay's first batch would then collide.
    asyncio.run(
        ensure_topics(
            broker.bootstrap_servers, [stack.env["CPTS_KAFKA_TOPIC_PREFIX"] + t for t in platform_topics()]
        )
    )
    cli = [sys.executable, "-m", "cpts_cli.main"]
    subprocess.run([*cli, "topics"], env=stack.env, check=True, stdout=subprocess.DEVNULL)
    # The relays publish what was written during the outage first: the memory-only broker must not see the
    # replay write the first batch of a partition at the same time as a relay.
    faults.wait_outboxes_drained(stack, PRODUCERS)
    drained = round(time.monotonic() - restarted_at, 1)
    replayed = {}
    for name in PRODUCERS:
        out = subprocess.run(
            [*cli, "replay", name], env=stack.env, capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stderr[-3000:]
        replayed[name] = int(re.search(r"(\d+) events re-published", out.stdout).group(1))
    replayed_at = round(time.monotonic() - restarted_at, 1)
    stack.wait_ready(*SERVICES, timeout=120)
    ready_again = round(time.monotonic() - restarted_at, 1)
    applied = faults.wait_consumers_caught_up(stack)
    recovered = round(time.monotonic() - restarted_at, 1)
    after = faults.indicator_values(stack.url("indicators"), admin)
    assert after["registry.members"][0] == before["registry.members"][0] + 4
    assert after["mt.patients.enrolled"][0] == before["mt.patients.enrolled"][0] + 3
    assert after["mt.patients.waiting"][0] == before["mt.patients.waiting"][0] + 3
    unchanged = {k for k in before if k.startswith("snp.")}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    professionals = httpx.get(
        f"{stack.url('indicators')}/indicators/cpts/{cpts}/professionals", headers=admin
    ).json()
    assert professionals["professionals"] == 12

    rebuilt = httpx.post(
        f"{stack.url('indicators')}/indicators/snapshots/rebuild",
        headers=admin,
        params={"cpts_id": cpts},
        timeout=60,
    )
    assert rebuilt.status_code == 200, rebuilt.text
    assert faults.indicator_values(stack.url("indicators"), admin) == after
    faults.figures(
        "broker outage",
        database=stack.database_urls["registry"].split(":")[0],
        outage_seconds=outage,
        readyz_detected_seconds=detected,
        writes_during_outage=len(write_latencies),
        max_write_latency_ms=round(max(write_latencies) * 1000),
        replayed=replayed,
        relays_drained_after_seconds=drained,
        replayed_after_seconds=replayed_at,
        ready_after_seconds=ready_again,
        caught_up_after_seconds=recovered,
        events_applied=sum(applied.values()),
        snapshots_rebuild=rebuilt.json(),
    )
