"""Holds that reach their expiry without a booking are cleared and announced once (`slot.hold_expired`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from cpts_snp_dispatch import handlers


async def publish(d, idnps: str, starts: list[float]) -> list[dict]:
    slots = [{"start": d.at(h), "end": d.at(h + 0.25)} for h in starts]
    response = await d.client.post("/slots", json={"idnps": idnps, "site_id": f"S{idnps[-2:]}", "slots": slots},
                                   headers=d.professional(idnps))
    assert response.status_code == 201, response.text
    return response.json()


async def new_request(d) -> str:
    response = await d.client.post("/care-requests", headers=d.regulator, json={
        "origin": "sas", "patient": {"family_name": "Test", "given_name": "Patient", "birth_date": "1980-01-01",
                                     "sex": "F"},
        "location": {"commune_insee": "69266"}, "reason_category": "fever", "mt_none": True})
    assert response.status_code == 201, response.text
    return response.json()["request_id"]


async def expired_events(d) -> list[dict]:
    async with d.database.sessions() as session:
        rows = (await session.execute(sa.text(
            "SELECT value FROM outbox_event WHERE event_type = 'fr.cpts.snp.slot.hold_expired.v1' ORDER BY id"))).all()
    return [json.loads(r[0]) for r in rows]


async def test_an_expired_hold_is_cleared_and_announced_once_and_a_live_or_booked_one_is_left(dispatch):
    d = dispatch
    lapsing, live, booked = [s["slot_id"] for s in await publish(d, "810100000001", [3, 4, 5])]
    requests = [await new_request(d) for _ in range(3)]
    holds = {}
    for slot_id, request_id in zip((lapsing, live, booked), requests):
        response = await d.client.post(f"/slots/{slot_id}/hold", json={"request_id": request_id},
                                       headers=d.regulator)
        assert response.status_code == 201, response.text
        holds[slot_id] = response.json()["hold_id"]
    done = await d.client.post("/appointments", headers=d.regulator, json={
        "slot_id": booked, "request_id": requests[2], "hold_id": holds[booked]})
    assert done.status_code == 201, done.text
    async with d.database.transaction() as session:  # the first hold's time is up
        await session.execute(sa.text("UPDATE slot SET held_until = :t WHERE slot_id = :s"),
                              {"t": datetime.now(UTC) - timedelta(seconds=1), "s": lapsing})

    assert await handlers.expire_holds(database=d.database) == 1
    assert await handlers.expire_holds(database=d.database) == 0  # announced once
    [event] = await expired_events(d)
    assert (event["slot_id"], event["hold_id"], event["request_id"]) == (lapsing, holds[lapsing], requests[0])
    async with d.database.sessions() as session:
        rows = dict((await session.execute(sa.text(
            "SELECT slot_id, hold_id FROM slot WHERE slot_id IN (:a, :b, :c)"),
            {"a": lapsing, "b": live, "c": booked})).all())
    assert rows[lapsing] is None and rows[live] == holds[live]

    # The slot is free for another request.
    other = await new_request(d)
    again = await d.client.post(f"/slots/{lapsing}/hold", json={"request_id": other}, headers=d.regulator)
    assert again.status_code == 201, again.text
    # A sweep long after every hold's expiry announces the live ones, never the booked slot.
    assert await handlers.expire_holds(database=d.database, now=datetime.now(UTC) + timedelta(hours=1)) == 2
    assert {e["slot_id"] for e in await expired_events(d)} == {lapsing, live}
