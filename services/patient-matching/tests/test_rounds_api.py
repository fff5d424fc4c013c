"""Matching rounds end to end: GP capacity from the registry's events, proposals, the GP's answers (accept: a
médecin traitant is declared; decline: the patient waits again, never to be proposed to that GP), expiry,
the monthly capacity, the stored first-come-first-served figures, and what a GP may see."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from cpts_events.registry import (
    MtCapacityChanged,
    PracticeSite,
    ProfessionalRegistered,
    ProfessionalSitesChanged,
)
from cpts_patient_matching import handlers, scheduler
from cpts_patient_matching.reports import format_report, territory_report
from cpts_platform.db import Database
from cpts_platform.testing import eventually

GP_A, GP_B = "810100000011", "810100000029"  # Villeurbanne; Vaulx-en-Velin (69256)


async def registry_gps(m, publish, *, capacity_a: int = 1, capacity_b: int = 1) -> None:
    """Two GPs of the CPTS with capacity, through the registry's events, then wait for the read model."""
    events = []
    for idnps, name, commune, lat, lon, capacity, publics in (
            (GP_A, "Arnaud", "69266", 45.7660, 4.8790, capacity_a, ["adults"]),
            (GP_B, "Bernard", "69256", 45.7790, 4.9290, capacity_b, ["adults", "children"])):
        events += [
            ProfessionalRegistered(idnps=idnps, family_name=name, given_name="Claire", profession_code="10",
                                   specialty_code="SM54", commune_insee=commune, cpts_ids=[m.cpts]),
            ProfessionalSitesChanged(idnps=idnps, sites=[PracticeSite(
                site_id=f"S{idnps[-2:]}", commune_insee=commune, lat=lat, lon=lon)]),
            MtCapacityChanged(idnps=idnps, accepting=True, new_patients_per_month=capacity, publics=publics,
                              until=(datetime.now(UTC) + timedelta(days=365)).date()),
        ]
    await publish(*events)

    async def known():
        views = [await m.client.get(f"/gps/{i}", headers=m.coordinator) for i in (GP_A, GP_B)]
        return all(v.status_code == 200 and v.json()["accepting"] and v.json()["site_commune_insee"]
                   for v in views)

    await eventually(known)


async def enrol_three(m) -> dict[str, str]:
    """An ALD patient and a patient without priority in Villeurbanne, a C2S patient in Vaulx-en-Velin."""
    ald = await m.enrol(m.body(identity={"birth_name": "Aubert", "first_names": "Alice",
                                         "birth_date": "1980-02-02"}, priority={"ald": True}))
    plain = await m.enrol(m.body(identity={"birth_name": "Petit", "first_names": "Paul",
                                           "birth_date": "1991-01-01", "sex": "M"}))
    c2s = await m.enrol(m.body(identity={"birth_name": "Colin", "first_names": "Chloé",
                                         "birth_date": "1985-05-05"},
                               commune_insee="69256", priority={"c2s": True}))
    return {"ald": ald["patient"]["patient_id"], "plain": plain["patient"]["patient_id"],
            "c2s": c2s["patient"]["patient_id"]}


async def pending_of(m, idnps: str) -> list[dict]:
    response = await m.client.get("/proposals", params={"status": "pending"}, headers=m.gp(idnps))
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_round_proposes_by_priority_and_the_gps_answers_follow_the_lifecycle(matching, publish):
    m = matching
    await registry_gps(m, publish)
    ids = await enrol_three(m)

    first = await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)
    assert first.status_code == 201, first.text
    figures = first.json()
    assert (figures["patients"], figures["gps"], figures["capacity"], figures["proposals"]) == (3, 2, 2, 2)
    assert figures["groups"]["ald"] == {"waiting": 1, "exact": 1, "fcfs": 1}
    assert figures["groups"]["c2s"]["exact"] == 1 and figures["fcfs_served"] == 2
    assert figures["weighted_served"] >= figures["fcfs_weighted_served"]
    assert "2 proposition(s) pour 3 patient(s)" in figures["summary"]

    # Each GP sees their own proposal, with what it takes to call the patient, and nothing else.
    [to_a] = await pending_of(m, GP_A)
    [to_b] = await pending_of(m, GP_B)
    assert to_a["patient"]["family_name"] == "Aubert" and to_a["patient"]["phone"] == "0612345678"
    assert set(to_a["patient"]) == {"family_name", "first_name", "birth_year", "age", "phone",
                                    "commune_insee", "commune_name", "needs_home_visit", "is_child"}
    assert to_b["patient"]["family_name"] == "Colin"
    assert (await m.client.get(f"/proposals/{to_b['proposal_id']}", headers=m.gp(GP_A))).status_code == 404
    assert (await m.client.post(f"/proposals/{to_b['proposal_id']}/accept",
                                headers=m.gp(GP_A))).status_code == 404
    assert (await m.client.get("/proposals", headers=m.ars)).status_code == 403
    assert ("professional-user", "read", "proposals of the GP") in await m.audit(ids["ald"])

    accepted = await m.client.post(f"/proposals/{to_a['proposal_id']}/accept", headers=m.gp(GP_A))
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    [(_, declared)] = await m.events("mt.declared")
    assert declared["patient_id"] == ids["ald"] and declared["idnps"] == GP_A
    assert declared["priority_group"] == "ald" and "birth_date" not in declared
    patient = (await m.client.get(f"/cpts/{m.cpts}/patients/{ids['ald']}", headers=m.secretary)).json()
    assert patient["status"] == "mt_declared" and patient["mt_idnps"] == GP_A
    again = await m.client.post(f"/proposals/{to_a['proposal_id']}/decline", json={"reason": "other"},
                                headers=m.gp(GP_A))
    assert again.status_code == 409

    declined = await m.client.post(f"/proposals/{to_b['proposal_id']}/decline",
                                   json={"reason": "no_capacity"}, headers=m.gp(GP_B))
    assert declined.status_code == 200 and declined.json()["patient"] is None  # no longer theirs to see
    c2s = (await m.client.get(f"/cpts/{m.cpts}/patients/{ids['c2s']}", headers=m.secretary)).json()
    assert c2s["status"] == "waiting" and c2s["excluded_gps"] == 1

    # Second round: A used this month's place; B has it back, and never gets the patient who was declined.
    second = (await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).json()
    assert (second["patients"], second["capacity"], second["proposals"]) == (2, 1, 1)
    [to_b_again] = await pending_of(m, GP_B)
    assert to_b_again["patient"]["family_name"] == "Petit"
    assert await pending_of(m, GP_A) == []

    # Expiry: a proposal past its deadline is declined by the GP's silence, swept on read.
    async with m.database.transaction() as session:
        await session.execute(sa.text("UPDATE proposal SET deadline = :past WHERE proposal_id = :id"),
                              {"past": datetime.now(UTC) - timedelta(minutes=1),
                               "id": to_b_again["proposal_id"]})
    assert await pending_of(m, GP_B) == []
    late = await m.client.post(f"/proposals/{to_b_again['proposal_id']}/accept", headers=m.gp(GP_B))
    assert late.status_code == 409
    plain = (await m.client.get(f"/cpts/{m.cpts}/patients/{ids['plain']}", headers=m.secretary)).json()
    assert plain["status"] == "waiting" and plain["excluded_gps"] == 1
    kinds = [k.removeprefix("fr.cpts.matching.") for k, _ in await m.events()]
    assert kinds[3:] == ["proposal.made.v1", "proposal.made.v1", "proposal.accepted.v1", "mt.declared.v1",
                         "proposal.declined.v1", "proposal.made.v1", "proposal.expired.v1"]
    audit = [a[1] for a in await m.audit(ids["plain"]) if a[1] != "read"]
    assert audit == ["create", "propose", "expire"]

    third = (await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).json()
    assert third["proposals"] == 0  # B's last place went to Petit, whom B let expire: nobody else fits
    rounds = (await m.client.get(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).json()
    assert rounds["total"] == 3 and rounds["items"][0]["round_id"] == third["round_id"]
    listed = (await m.client.get(f"/cpts/{m.cpts}/proposals", headers=m.secretary)).json()
    assert sorted(p["status"] for p in listed["items"]) == ["accepted", "declined", "expired"]
    assert {p["gp_name"] for p in listed["items"]} == {"Dr Claire Arnaud", "Dr Claire Bernard"}


async def test_the_patient_may_decline_and_is_then_not_proposed_to_that_gp_again(matching, publish):
    m = matching
    await registry_gps(m, publish, capacity_a=2, capacity_b=0)
    pid = (await m.enrol())["patient"]["patient_id"]
    await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)
    [proposal] = (await m.client.get(f"/cpts/{m.cpts}/proposals", headers=m.secretary)).json()["items"]
    refused = await m.client.post(f"/cpts/{m.cpts}/proposals/{proposal['proposal_id']}/patient-decline",
                                  json={"reason": "too_far"}, headers=m.secretary)
    assert refused.status_code == 200 and refused.json()["declined_by"] == "patient"
    again = (await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).json()
    assert again["patients"] == 1 and again["proposals"] == 0
    [(_, event)] = await m.events("proposal.declined")
    assert event["declined_by"] == "patient" and event["reason"] == "too_far" and event["patient_id"] == pid
    other = await m.client.post(f"/cpts/{m.cpts}/proposals/{proposal['proposal_id']}/patient-decline",
                                json={"reason": "too_far"}, headers=m.other_coordinator)
    assert other.status_code == 404


async def test_withdrawing_a_proposed_patient_frees_the_gps_place(matching, publish):
    m = matching
    await registry_gps(m, publish, capacity_a=1, capacity_b=0)
    first = (await m.enrol(priority={"ald": True}))["patient"]["patient_id"]
    await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)
    second = (await m.enrol(m.body(identity={"birth_name": "Petit", "first_names": "Paul",
                                             "birth_date": "1991-01-01", "sex": "M"})))["patient"]
    withdrawn = await m.client.post(f"/cpts/{m.cpts}/patients/{first}/withdraw",
                                    json={"reason": "patient_request"}, headers=m.secretary)
    assert withdrawn.json()["status"] == "withdrawn" and withdrawn.json()["pending_proposal"] is None
    round_ = (await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).json()
    assert round_["capacity"] == 1 and round_["proposals"] == 1
    [proposal] = await pending_of(m, GP_A)
    assert proposal["patient"]["family_name"] == "Petit"
    assert second["patient_id"] in [e["patient_id"] for _, e in await m.events("proposal.made")]


async def test_concurrent_rounds_never_exceed_a_capacity_and_one_replica_claims_a_job(matching, database_url):
    m = matching
    await m.add_gp("810100000037", capacity=3)
    for i in range(6):
        await m.enrol(m.body(identity={"birth_name": f"Patient{chr(65 + i)}", "first_names": "Test",
                                       "birth_date": f"19{60 + i}-01-01"}))
    settings = m.client.app.state.runtime.settings
    other = Database(database_url, m.database.tables)  # a second replica on the same database
    try:
        results = await asyncio.gather(*(handlers.run_round(db, cpts_id=m.cpts, settings=settings,
                                                            by=handlers.SYSTEM, trigger="manual")
                                         for db in (m.database, other, m.database)))
        assert sorted(r.proposals for r in results) == [0, 0, 3]
        async with m.database.sessions() as session:
            pending = (await session.execute(sa.text(
                "SELECT count(*), count(DISTINCT patient_id) FROM proposal WHERE status = 'pending'"))).one()
        assert tuple(pending) == (3, 3)

        claims = await asyncio.gather(*(handlers.claim_job(db, "test-job", interval=timedelta(hours=1),
                                                           now=datetime.now(UTC) + timedelta(hours=2))
                                        for db in (m.database, other)))
        assert sorted(claims) == [False, False]  # first sight: due one interval later
        later = datetime.now(UTC) + timedelta(hours=4)
        claims = await asyncio.gather(*(
            handlers.claim_job(db, "test-job", interval=timedelta(hours=1), now=later)
            for db in (m.database, other, m.database)))
        assert sorted(claims) == [False, False, True]
    finally:
        await other.dispose()


async def test_the_background_tick_runs_the_scheduled_rounds_when_due_and_the_report_compares(matching):
    m = matching
    await m.add_gp("810100000037", capacity=1)
    await m.add_gp("810100000045", capacity=1, commune="69256")
    await m.enrol(m.body(identity={"birth_name": "Petit", "first_names": "Paul", "birth_date": "1991-01-01",
                                   "sex": "M"}))
    await m.enrol(priority={"ald": True})
    await m.enrol(m.body(identity={"birth_name": "Colin", "first_names": "Chloé", "birth_date": "1985-05-05"},
                         priority={"c2s": True}))
    settings = m.client.app.state.runtime.settings
    report = await territory_report(m.database, m.cpts, settings=settings)
    assert (report.patients, report.capacity) == (3, 2)
    assert report.exact.shares["ald"] == 1.0
    assert report.exact.weighted_coverage >= report.fcfs.weighted_coverage
    assert report.fcfs.shares["ald"] == 1.0 and report.fcfs.served == 2  # first come: Petit, then Lambert
    assert report.fcfs.shares["c2s"] == 0.0 and report.exact.shares["c2s"] == 1.0
    assert "appariement exact" in format_report(report)

    done = await scheduler.tick(m.database, settings)
    assert done["rounds"] == 0  # the first scheduled round comes one interval after the first start
    async with m.database.transaction() as session:
        await session.execute(sa.text("UPDATE scheduler_state SET next_run_at = :past WHERE job = :job"),
                              {"past": datetime.now(UTC) - timedelta(seconds=1),
                               "job": scheduler.SCHEDULED_ROUNDS})
    done = await scheduler.tick(m.database, settings)
    assert done["rounds"] == 1
    [round_] = (await m.client.get(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).json()["items"]
    assert round_["trigger"] == "scheduled" and round_["proposals"] == 2
    assert round_["started_by"] == "system:patient-matching"
    assert (await scheduler.tick(m.database, settings))["rounds"] == 0  # not due again before the interval


async def test_the_background_task_expires_overdue_proposals_without_any_read(start_matching):
    async with start_matching(scheduler_tick_seconds=0.2) as m:
        await m.add_gp("810100000037", capacity=1)
        pid = (await m.enrol())["patient"]["patient_id"]
        assert (await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).json()["proposals"] == 1
        async with m.database.transaction() as session:
            await session.execute(sa.text("UPDATE proposal SET deadline = :past"),
                                  {"past": datetime.now(UTC) - timedelta(seconds=1)})

        async def expired():
            async with m.database.sessions() as session:
                return (await session.execute(sa.text("SELECT status FROM patient WHERE patient_id = :id"),
                                              {"id": pid})).scalar_one() == "waiting"

        await eventually(expired)
        [(_, event)] = await m.events("proposal.expired")
        assert event["patient_id"] == pid and event["idnps"] == "810100000037"


async def test_merging_a_proposed_duplicate_moves_its_proposal_to_the_record_kept(matching):
    m = matching
    await m.add_gp("810100000037", capacity=1)
    rose = (await m.enrol(priority={"ald": True}))["patient"]
    assert (await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).json()["proposals"] == 1
    typo = await m.enrol(m.body(identity={"birth_name": "Lambret"}))
    [flag] = typo["near_duplicates"]
    merged = await m.client.post(f"/cpts/{m.cpts}/duplicates/{flag['candidate_id']}/resolve",
                                 json={"decision": "merge", "keep": typo["patient"]["patient_id"]},
                                 headers=m.secretary)
    assert merged.status_code == 200, merged.text
    kept = merged.json()["kept"]
    assert kept["status"] == "proposed" and kept["enrolled_at"] == rose["enrolled_at"]
    assert kept["priority_facts"]["ald"] is True and kept["pending_proposal"]["idnps"] == "810100000037"
    [proposal] = await pending_of(m, "810100000037")
    accepted = await m.client.post(f"/proposals/{proposal['proposal_id']}/accept",
                                   headers=m.gp("810100000037"))
    assert accepted.status_code == 200
    [(_, declared)] = await m.events("mt.declared")
    assert declared["patient_id"] == kept["patient_id"]
    absorbed = (await m.client.get(f"/cpts/{m.cpts}/patients/{rose['patient_id']}",
                                   headers=m.secretary)).json()
    assert absorbed["status"] == "merged" and absorbed["pending_proposal"] is None
