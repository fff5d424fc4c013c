"""Consumers killed with SIGKILL while thousands of events flow: after restart, each event applied once."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cpts_platform.testing import wait_for

pytestmark = pytest.mark.system

CPTS = "690049999"
EVENTS = 3000


async def register_many(url: str, token: str, count: int, progress: list[int]) -> None:
    semaphore = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        async def one(i: int) -> None:
            async with semaphore:
                response = await client.post("/professionals", json={
                    "idnps": f"8{10_000_000_000 + i:011d}", "family_name": "Test", "given_name": f"P{i}",
                    "profession_code": "10", "specialty_code": "SM54", "cpts_ids": [CPTS],
                })
                assert response.status_code == 201, response.text
                progress[0] += 1

        await asyncio.gather(*(one(i) for i in range(count)))


async def scalar(url: str, query: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(sa.text(query))).scalar_one()
    finally:
        await engine.dispose()


def test_consumers_killed_mid_stream_apply_every_event_exactly_once(stack):
    for name in ("registry", "snp-dispatch", "indicators"):
        stack.start(name)
    stack.wait_ready("registry", "snp-dispatch", "indicators")
    cpts = httpx.post(f"{stack.url('registry')}/cpts", headers={"Authorization": f"Bearer {stack.token('admin')}"},
                      json={"cpts_id": CPTS, "name": "CPTS test", "communes": ["69259"]})
    assert cpts.status_code == 201, cpts.text
    progress = [0]
    writer = threading.Thread(target=lambda: asyncio.run(
        register_many(stack.url("registry"), stack.token("admin"), EVENTS, progress)))
    writer.start()

    kills = 0
    for victim, at in (("indicators", EVENTS // 4), ("snp-dispatch", EVENTS // 2), ("indicators", EVENTS * 3 // 4)):
        while progress[0] < at and writer.is_alive():
            time.sleep(0.05)
        stack.kill(victim)
        kills += 1
        time.sleep(0.5)
        stack.start(victim)
    writer.join(timeout=300)
    assert progress[0] == EVENTS
    assert kills == 3

    coordinator = {"Authorization": f"Bearer {stack.token('coordinator', cpts_ids=[CPTS])}"}
    counted = wait_for(
        lambda: httpx.get(f"{stack.url('indicators')}/indicators/cpts/{CPTS}/professionals", headers=coordinator),
        lambda r: r.status_code == 200 and r.json()["professionals"] >= EVENTS, timeout=120)
    time.sleep(2)  # anything applied twice would show up as an overcount now
    final = httpx.get(f"{stack.url('indicators')}/indicators/cpts/{CPTS}/professionals", headers=coordinator)
    assert final.json()["professionals"] == EVENTS, counted.text

    dispatch_db = stack.database_urls["snp-dispatch"]
    views = wait_for(lambda: asyncio.run(scalar(dispatch_db, "SELECT count(*) FROM professional_view")),
                     lambda n: n == EVENTS, timeout=60)
    assert views == EVENTS
    # Every registration once, plus the CPTS's registration (snp-dispatch keeps the CPTS territories too).
    assert asyncio.run(scalar(dispatch_db, "SELECT count(*) FROM processed_event")) == EVENTS + 1
    indicators_db = stack.database_urls["indicators"]
    assert asyncio.run(scalar(indicators_db, "SELECT count(*) FROM processed_event "
                                             "WHERE consumer_group LIKE '%indicators.registry'")) == EVENTS
    facts = wait_for(lambda: asyncio.run(scalar(indicators_db, "SELECT count(*) FROM processed_event "
                                                               "WHERE consumer_group LIKE '%indicators.facts'")),
                     lambda n: n == EVENTS + 1, timeout=60)
    assert facts == EVENTS + 1
    assert asyncio.run(scalar(stack.database_urls["registry"],
                              "SELECT count(*) FROM outbox_event WHERE published_at IS NULL")) == 0
